"""The one protocol between the two sides: every message is a declared model, validated when read; the helper
table matches the worker's functions; the modules that talk across the boundary speak nothing else."""

import ast
import math
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from helpers import ROOT
from reprocheck import protocol as p
from reprocheck.golden_result import BaselineResult, BaselineStatus, FieldDiff
from reprocheck.results import Comparison, Fragile, Kind, OutputResult, TaskResult, Tolerance
from reprocheck.spec import CompareSpec, ToleranceSpec, load_spec

PACKAGE = ROOT / "runner" / "reprocheck"


def _check():
    (lc,) = [c for c in load_spec(ROOT / "examples" / "retinanet.yaml")]
    return lc.check


def _comparison() -> Comparison:
    out = OutputResult(
        "0.boxes",
        Kind.VALUES,
        Tolerance(1e-5, 0.0, "*.boxes"),
        shape=(3, 4),
        first_index=(0, 1),
        max_abs_diff=math.inf,
        expected_value=math.nan,
        task=TaskResult("detection", "*", {"missing": [[0, 1]]}),
        nonfinite=1,
        members=("0.boxes", "0.scores"),
    )
    return Comparison((out,), ("unused*",), 3, 1, 2)


def samples() -> list[p.Message]:
    check = _check()
    tol = ToleranceSpec(atol=1e-4)
    rules = CompareSpec.model_validate({"outputs": {"*": {"as": "detection", "iou": 0.9}}})
    golden = BaselineResult(
        BaselineStatus.DRIFT, Path("/g.safetensors"), None, _comparison(), (FieldDiff("torch", "a", "b"),), True
    )
    fragile = Fragile("0.scores", "detection", "score-threshold", 2, 1e-4, 0.05, ({"index": 1},))
    job = p.GoldenJob(golden="g", check="c", config_hash="h", seed=1, tolerance=tol, regenerate="r", update=False)
    return [
        p.NameRequests(
            requests=[p.NameRequest(model="resnet18", weights=3), p.NameRequest(source="huggingface", class_="X")]
        ),
        p.NameProblems(problems=[p.NameProblem(index=0, key="compare", message="m", pattern="*")]),
        p.RunJob(check=p.worker_check(check), base_dir="/x", threads=1, names=[p.NameRequest(model="m")], batch=8),
        p.VariantOp(dir="/d", changes=p.VariantChanges(check=p.worker_check(check), float64=True)),
        p.RunReport(ok=True, device="cpu", timings={"forward": 0.1}, facts={"score_thresh": 0.05}, samples=2),
        p.RunReport(ok=False, stage="forward", error="boom", traceback=["a", "b"], unavailable=True),
        p.VerdictRequest(
            runs=[p.RunRef(index=1, outputs="/o")], tolerance=tol, compare=rules, golden=job, batch=(1, 8)
        ),
        p.VerdictAnswer(
            comparison=_comparison(), golden=golden, fragile=[fragile], error=p.RuleProblem(pattern="*", message="m")
        ),
        p.VerdictAnswer(
            comparison=Comparison((OutputResult("n", Kind.MATCH, Tolerance(), python=True),)), root_ignored=True
        ),
        p.DistancesRequest(reference="r", expected="e", obtained="o", batch=(2, 1)),
        p.Distances(items=[p.Distance(path="x", expected=math.inf, obtained=0.5)]),
        p.GradeRequest(checks=[p.GradeJob(name="n", from_="a", to="b", compare=rules, tolerance=tol, k=2, ulps=4)]),
        p.Grades(
            checks=[p.GradedCheck(name="n", outputs=[p.GradedOutput(grade="noise", result=_comparison().outputs[0])])]
        ),
        p.CompareRequest(check=p.worker_check(check), runs=["a", "b"]),
        p.CompareAnswer(rule_error=p.RuleProblem(pattern="x", message="y", unfit=True)),
        p.TracesRequest(runs=["a"], tolerance=tol, diverge=True),
        p.TracesAnswer(training=[{"drop": "Dropout"}], params=[{"w": "ab12"}]),
        p.FingerprintRequest(cuda=True),
        p.FingerprintAnswer(fingerprint={"torch": "2", "env": {"A": "1"}}),
        p.Answer(ok=False, error="x"),
        p.Call.of(p.FingerprintRequest(), Path("/a.json")),
        p.ReadyEvent(problems=[p.NameProblem(index=0, key="timm", message="m")]),
        p.RunEvent(dir="/r", returncode=-9, timed_out=False, duration=1.5),
        p.AnsweredEvent(op="verdict"),
    ]


@pytest.mark.parametrize("message", samples(), ids=lambda m: type(m).__name__)
def test_every_message_survives_the_trip_unchanged(message):
    again = type(message).from_json(message.to_json())
    assert repr(again) == repr(message)  # repr: NaN equals itself there
    assert again.to_json() == message.to_json()


@pytest.mark.parametrize("message", samples(), ids=lambda m: type(m).__name__)
def test_a_renamed_or_missing_field_is_refused_not_guessed(message):
    import json

    data = json.loads(message.to_json())
    key = next(iter(data))
    renamed = {**{k: v for k, v in data.items() if k != key}, key + "_renamed": data[key]}
    with pytest.raises(p.ProtocolError, match=type(message).__name__):
        type(message).from_json(json.dumps(renamed))


def test_a_field_of_the_wrong_type_is_refused():
    with pytest.raises(p.ProtocolError, match="RunEvent"):
        p.RunEvent.from_json('{"event": "run", "dir": "/r", "returncode": "zero", "timed_out": false, "duration": 1}')
    with pytest.raises(p.ProtocolError, match="event"):
        p.read_event('{"event": "finished"}')
    with pytest.raises(p.ProtocolError, match="command"):
        p.read_command('{"op": "variant", "dir": "/d"}')


def test_the_helper_table_is_the_workers_functions():
    from reprocheck.worker.__main__ import _helpers

    fns = _helpers()
    assert set(fns) == set(p.OPS) == set(typing.get_args(p.Op))
    for op, (request, answer) in p.OPS.items():
        assert request.op == op
        hints = typing.get_type_hints(fns[op])
        assert list(hints.values()) == [request, answer], op  # the request in, the answer out


def test_an_answer_of_another_model_is_refused(tmp_path):
    from reprocheck.host.workers.helper_client import WorkerFailed, answer_kind, read_answer

    with pytest.raises(p.ProtocolError, match="VerdictAnswer"):
        p.Call.of(p.VerdictAnswer(), Path("/a"))
    with pytest.raises(p.ProtocolError, match="verdict answers a VerdictAnswer, not a Distances"):
        answer_kind(p.VerdictRequest(runs=[], tolerance=ToleranceSpec()), p.Distances)
    f = tmp_path / "a.json"
    p.Answer(ok=True, answer={"problems": [{"index": 0, "key": "k"}]}).write(f)  # a NameProblem without its message
    with pytest.raises(WorkerFailed, match="NameProblems"):
        read_answer(f, p.NameProblems)


def test_an_event_line_that_does_not_fit_is_an_error_never_a_dead_worker(tmp_path):
    """A real process printing a malformed event: the parent raises, it does not wait out a timeout."""
    import time

    from reprocheck.host.workers.zygote import Events

    script = 'print(\'not ours\'); print(\'{"event": "run", "dir": "/r"}\', flush=True)'
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        with pytest.raises(p.ProtocolError, match="event"):
            Events(proc).next(time.monotonic() + 30)
    finally:
        proc.wait()


# The modules that talk across the boundary: nothing but protocol models goes through them.
BOUNDARY = [
    "host/workers/isolated.py",
    "host/workers/helper_client.py",
    "host/workers/zygote.py",
    "host/workers/run_result.py",
    "host/checks/pipeline.py",
    "host/checks/invariance.py",
    "host/analyses/diagnose.py",
    "worker/__main__.py",
    "worker/zygote.py",
    "worker/verdict.py",
    "worker/diagnose.py",
    "worker/grade.py",
]


@pytest.mark.parametrize("module", BOUNDARY)
def test_the_boundary_speaks_only_the_protocol(module):
    tree = ast.parse((PACKAGE / module).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "json" not in imported, f"{module} reads or writes JSON itself: use a protocol model"
    gets = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "get"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id in ("request", "answer", "job", "event", "message", "result", "found")
    ]
    assert not gets, f"{module}: .get() on a message at lines {gets}"
