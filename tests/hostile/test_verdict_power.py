"""A verdict that can always see: a gate that passes when it cannot see is worse than none. Each case plants outputs
a verdict could pass without looking at anything informative (constant task outputs under a compare rule, Python
constants left beside ignored tensors, caches judged as class scores, a key on one side of a batch variant, a NaN
on one stack only) and runs the real CLI. One multi-check spec per expectation keeps the worker starts few."""

import json
import math
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, reprocheck, write_spec

HERE = Path(__file__).resolve().parent


@pytest.fixture
def models(tmp_path: Path) -> Path:
    folder = tmp_path / "spec"
    folder.mkdir()
    shutil.copy(HERE / "verdict_models.py", folder / "verdict_models.py")
    return folder


def _entries(cases: dict[str, str]) -> str:
    return "".join(f"  - name: {name}\n{body}" for name, body in cases.items())


def _run(spec: Path, *extra: str):
    report = spec.with_suffix(".json")
    r = reprocheck("run", "-q", str(spec), "--report", str(report), *extra, cwd=spec.parent)
    checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]} if report.exists() else {}
    return r, checks


INPUT = "input: {random: {shape: [4, 8]}}\n"


def _model(factory: str, kwargs: str = "") -> str:
    return f"    model: {{factory: 'verdict_models:{factory}'{', kwargs: {' + kwargs + '}' if kwargs else ''}}}\n"


STRICT = "    strict: true\n"
# Constant class scores, boxes and masks judged by their task: blind. Strict fails them; without it they pass, with the
# note (the note is the same either way: boxes without strict, scores and masks with it).
BLIND = {
    "scores": _model("constant_scores") + "    compare: {outputs: {logits: {as: classification}}}\n" + STRICT,
    "boxes": _model("constant_boxes") + "    compare: {outputs: {'*': {as: detection}}}\n",
    "masks": _model("constant_masks") + "    compare: {outputs: {out: {as: segmentation}}}\n" + STRICT,
}
BLIND_LINES = {
    "scores": ["logits is constant 0 in every run"],
    "boxes": ["0.boxes is constant 0 in every run", "0.scores is constant 0.5", "0.labels is constant 1"],
    "masks": ["out is constant 0 in every run"],
}
EVERY = "every compared output is constant: this check cannot see a change"


def test_constant_task_outputs_are_blind_and_every_report_names_constants(models):
    cases = {
        **BLIND,
        # informative class scores beside one constant output: the check sees, through its task output
        "informative": _model("informative_beside_constant")
        + "    compare: {outputs: {logits: {as: classification}}}\n"
        + STRICT,
        "failing": _model("constant_beside_noise"),  # a failing check still names the constant outputs that matched
        "nan": _model("nan_in_run_two"),
    }
    spec = write_spec(models, f"version: 1\nrecipe: {{threads: 1}}\n{INPUT}checks:\n" + _entries(cases))
    r, checks = _run(spec)
    assert r.code == 1, r
    for name, lines in BLIND_LINES.items():
        blind = checks[name]["blind"]
        assert all(any(line in b for b in blind) for line in lines), (name, blind)
        assert any(EVERY in b for b in blind), (name, blind)
    assert checks["scores"]["status"] == checks["masks"]["status"] == "fail", r
    assert r.out.count("every compared output is constant: blind (strict: true)") == 2, r.out
    assert checks["boxes"]["status"] == "pass" and "`strict: true` makes that a failure" in checks["boxes"]["blind"][-1]
    assert "PASS  boxes" in r.out and "blind: 0.boxes is constant 0 in every run" in r.out
    informative = checks["informative"]
    assert informative["status"] == "pass", r
    assert [b.split(":")[0] for b in informative["blind"]] == ["zero is constant 0 in every run"], informative
    assert checks["failing"]["status"] == "fail"
    assert any(b.startswith("zero is constant 0 in every run") for b in checks["failing"]["blind"]), r.out
    assert "blind: zero is constant 0 in every run" in r.out
    # NaN in one run only is a NaN mismatch, never "max abs diff 0"
    assert checks["nan"]["status"] == "fail"
    assert "output: 1 of 32 values (3.1%) differ between run 1 and run 2; 1 NaN/inf in one run only;" in r.out, r.out
    assert "max abs diff 0," not in r.out


def test_ignore_leaving_only_python_values_compares_nothing(models):
    # Any one Python value counted as compared would make its check pass: each kind must count for nothing.
    cases = {
        "strings": _model("noise_beside", "kinds: [str, none]"),
        "numbers": _model("noise_beside", "kinds: [int, float, bool]"),
        "tensor0d": _model("noise_beside", "kinds: [tensor0d]"),  # a model's 0-d tensor is compared
        "root": _model("informative_beside_constant") + "    ignore: ['o*']\n",  # the root is `output`
    }
    head = f"version: 1\nrecipe: {{threads: 1}}\nstrict: true\n{INPUT}ignore: [noise]\n"
    r, checks = _run(write_spec(models, head + "checks:\n" + _entries(cases)))
    assert r.code == 3, r
    for name in ("strings", "numbers"):
        assert checks[name]["status"] == "error", (name, r)
        assert "spec.yaml:5: nothing left to compare: ignore left out noise and " in checks[name]["error"], r
    assert "nothing else holds a tensor; ignore less" in checks["strings"]["error"]
    assert (
        "what is left holds only Python values (int, float, bool), which say nothing of the model's tensors"
        in checks["numbers"]["error"]
    )
    assert "ERROR numbers  (2/2 runs, cpu, seed 3407," in r.out
    assert checks["tensor0d"]["status"] == "pass" and not checks["tensor0d"]["error"], checks["tensor0d"]
    assert [o["path"] for o in checks["tensor0d"]["outputs"]] == ["tensor0d"]
    assert checks["root"]["status"] == "error"
    assert "ignore pattern 'o*' matches output, the root: the whole output is left out" in checks["root"]["error"]


def test_a_classification_glob_never_judges_caches_or_boxes_as_class_scores(models):
    spec = write_spec(
        models,
        "version: 1\nrecipe: {threads: 1}\ninput: {random: {shape: [2, 8]}}\n"
        + _model("scores_cache_and_boxes").replace("    ", "", 1)
        + "compare: {outputs: {'*': {as: classification}}}\n",
    )
    r, checks = _run(spec)
    assert r.code == 1, r
    (check,) = checks.values()
    outputs = {o["path"]: o for o in check["outputs"]}
    assert (outputs["logits"]["task"] or {}).get("task") == "classification"  # real class scores still are
    for path in ("past_key_values.layers.0.keys", "past_key_values.layers.0.values", "pred_boxes"):
        assert outputs[path]["task"] is None and outputs[path]["status"] == "values", (path, outputs[path])
    assert "compare pattern '*' leaves past_key_values.layers.0.keys elementwise: it is a 4-d tensor" in r.out
    assert "compare pattern '*' leaves pred_boxes elementwise: it is named like features or boxes" in r.out


def test_batch_variants_see_a_key_on_one_side_and_say_why_outputs_are_left_out(models):
    spec = write_spec(
        models,
        "version: 1\nrecipe: {threads: 1}\ninput: {random: {shape: [4, 8]}}\ninvariance: {batch: [1]}\nchecks:\n"
        + _entries(
            {"grows": _model("key_at_one_batch"), "ignored": _model("per_sample_cache") + "    ignore: [cache]\n"}
        ),
    )
    r, checks = _run(spec)
    assert r.code == 1, r
    (grows,) = checks["grows"]["invariance"]
    assert grows["status"] == "fail", grows
    assert "output: structure differs (run 1 (batch of 4) vs batch of 1): extra keys extra in the obtained run" in r.out
    (ignored,) = checks["ignored"]["invariance"]
    assert ignored["status"] == "pass" and ignored["left_out"] == [] and ignored["ignored"] == ["cache"], ignored
    assert "not per-sample" not in r.out and "ignored by the spec: cache" in r.out, r.out


def test_keyword_inputs_without_a_shared_batch_are_refused_before_any_run(models):
    spec = write_spec(
        models,
        "version: 1\nmodel: {factory: 'verdict_models:text_and_images'}\ninput:\n  kwargs:\n"
        "    text: {random: {shape: [2, 8]}}\n    images: {random: {shape: [3, 8]}}\ninvariance: {batch: [1, 4]}\n",
    )
    r = reprocheck("run", str(spec), cwd=models)
    assert r.code == 2, r
    assert "invariance.batch: the keyword inputs do not share dim 0 (text 2, images 3)" in r.err, r
    assert "Traceback" not in r.err and "run 1" not in r.err + r.out


def test_a_run_traceback_is_printed_once_on_a_terminal(models):
    import pty

    (models / "raising.py").write_text(
        "import torch\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
        "        raise ValueError('planted failure in forward')\n\ndef build():\n    return M()\n"
    )
    spec = write_spec(models, "version: 1\nmodel: {factory: 'raising:build'}\ninput: {random: {shape: [2, 8]}}\n")
    main, side = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runner"), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reprocheck", "run", str(spec)], stdout=side, stderr=side, cwd=models, env=env
    )
    os.close(side)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=120) == 3
    out = b"".join(chunks).decode(errors="replace")
    assert out.count("raise ValueError('planted failure in forward')") == 1, out


def test_a_nan_on_the_old_stack_never_makes_any_change_within_noise(models, tmp_path):
    stacks = {}
    for side in ("old", "new"):  # the same interpreter, told which stack it plays
        wrapper = tmp_path / f"{side}-python"
        wrapper.write_text(f'#!/bin/sh\nVERDICT_TEST_STACK={side} exec "{sys.executable}" "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        stacks[side] = f"python:{wrapper}"
    spec = write_spec(
        models,
        f"version: 1\nrecipe: {{threads: 1}}\n{INPUT}model: {{factory: 'verdict_models:nan_on_old_stack'}}\n",
    )
    report = tmp_path / "upgrade.json"
    r = reprocheck(
        "upgrade", str(spec), "--from", stacks["old"], "--to", stacks["new"], "--report", str(report), cwd=models
    )
    assert r.code == 1, r
    (check,) = json.loads(report.read_text())["checks"]
    assert check["verdict"] == "changed", check
    assert [o["grade"] for o in check["outputs"]] == ["changed"], check
    assert "NaN or inf where the other stack holds another value: no noise bound applies there" in r.out, r.out


def test_the_stacks_differences_come_from_the_first_check_that_ran():
    from reprocheck.host.analyses.stacks import Side
    from reprocheck.host.analyses.upgrade import _fingerprint
    from reprocheck.host.report.shape import CheckReport, Report

    # A side's report as upgrade reads it (the report's own models); only the fields that matter here are set.
    checks = [
        CheckReport.model_construct(name="broken", fingerprint=None),
        CheckReport.model_construct(name="ok", fingerprint={"torch": "2.14.1"}),
    ]
    assert _fingerprint(Side(3, Report.model_construct(checks=checks), "")) == {"torch": "2.14.1"}
    assert _fingerprint(Side(2, None, "")) == {}


def test_a_masking_value_never_widens_the_noise_bound():
    """Logits masked with -1e9 beside real ones: the allowance is each element's own, so a shift of the real logits
    that changes the top class is not within noise; a last-bit difference of them still is."""
    import torch

    from reprocheck.worker.grade import noise

    torch.manual_seed(0)
    ref = torch.randn(2, 16, dtype=torch.float64)
    ref[:, 8:] = -1e9
    old = ref.float()
    shifted = old.clone()
    shifted[:, :8] += 0.25
    assert noise(old, shifted, ref, k=3, ulps=4)["ok"] == 0.0
    nudged = old.clone()
    nudged[:, :8] = torch.nextafter(nudged[:, :8], torch.full_like(nudged[:, :8], math.inf))
    assert noise(old, nudged, ref, k=3, ulps=4)["ok"] == 1.0
    huge = ref.clone()
    huge[:, 8:] = torch.finfo(torch.float32).min
    assert noise(huge.float(), huge.float(), huge, k=3, ulps=4)["ok"] == 1.0


@pytest.mark.parametrize("kind", ["float8", "complex"])
def test_narrow_and_complex_outputs_are_compared_and_can_be_blind(tmp_path, kind):
    (tmp_path / "odd.py").write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        f"        if {kind!r} == 'float8':\n"
        "            return {'y': (x * 2).to(torch.float8_e4m3fn), 'zero': torch.zeros(4, 8).to(torch.float8_e4m3fn)}\n"
        "        return {'y': torch.complex(x, x), 'zero': torch.zeros(4, 8, dtype=torch.complex64)}\n"
        "def build():\n"
        "    return M()\n"
    )
    spec = write_spec(tmp_path, 'version: 1\nmodel: {factory: "odd:build"}\ninput: {random: {shape: [4, 8]}}\n')
    r = reprocheck("run", str(spec))
    assert r.code == 0, r
    assert "zero is constant 0" in r.out, r.out


def test_a_change_of_container_type_is_a_structure_difference(tmp_path):
    """A namedtuple in one run and a dict with the same fields in the next: a change of output form."""
    (tmp_path / "forms.py").write_text(
        "import collections, os, torch\n"
        "Out = collections.namedtuple('Out', ['a', 'b'])\n"
        "class M(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        counter = os.path.join(os.path.dirname(__file__), 'count')\n"
        "        n = len(open(counter).read()) if os.path.exists(counter) else 0\n"
        "        open(counter, 'a').write('x')\n"
        "        return Out(x, x * 2) if n % 2 == 0 else {'a': x, 'b': x * 2}\n"
        "def build():\n"
        "    return M()\n"
    )
    spec = write_spec(tmp_path, 'version: 1\nmodel: {factory: "forms:build"}\ninput: {random: {shape: [2, 4]}}\n')
    r = reprocheck("run", str(spec))
    assert r.code == 1, r
    assert "a Out in the expected run but a dict in the obtained one" in r.out, r.out


def test_a_one_class_mask_and_a_hidden_state_are_never_blind_to_segmentation(tmp_path):
    """A binary mask's one-channel logits flip sign between runs; a hidden state moves a little: neither may pass
    because a segmentation rule took it (an argmax over one class is always 0)."""
    (tmp_path / "masks.py").write_text(
        "import os, torch\n"
        "def _n():\n"
        "    counter = os.path.join(os.path.dirname(__file__), 'count')\n"
        "    n = len(open(counter).read()) if os.path.exists(counter) else 0\n"
        "    open(counter, 'a').write('x')\n"
        "    return n\n"
        "class Flip(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return {'out': x.reshape(1, 1, 4, 4) * (1 if _n() % 2 == 0 else -1)}\n"
        "class Hidden(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return {'last_hidden_state': x.reshape(1, 4, 4) + 1e-5 * _n()}\n"
    )
    spec = write_spec(
        tmp_path,
        "version: 1\ninput: {random: {shape: [16]}}\nchecks:\n"
        '  - name: mask\n    model: {factory: "masks:Flip"}\n    compare: {outputs: {out: {as: segmentation}}}\n'
        '  - name: hidden\n    model: {factory: "masks:Hidden"}\n    compare: {outputs: {"*": {as: segmentation}}}\n',
    )
    r = reprocheck("run", str(spec))
    assert r.code == 1, r
    assert "FAIL  mask" in r.out and "FAIL  hidden" in r.out, r.out


def test_a_batch_dimension_squeezed_away_at_batch_one_is_a_structure_difference(tmp_path):
    (tmp_path / "squeeze.py").write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return {'z': (x * 2).squeeze(0), 'kept': x + 1, 'table': torch.arange(2.0)}\n"
        "def build():\n"
        "    return M()\n"
    )
    spec = write_spec(
        tmp_path,
        'version: 1\nmodel: {factory: "squeeze:build"}\ninput: {random: {shape: [2, 8]}}\ninvariance: {batch: [1]}\n',
    )
    r = reprocheck("run", str(spec))
    assert r.code == 1, r
    assert "z" in r.out and "table" in r.out, r.out  # z differs in structure; table (same at every batch) left out
