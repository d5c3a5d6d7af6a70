"""Verdicts users can trust: no false pass, every error an error (never exit 1), no traceback, outputs only where
asked."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import ROOT, planted_spec, reprocheck, write_spec
from reprocheck.host.checks.outcome import Status, exit_code
from reprocheck.host.exitcodes import ExitCode
from reprocheck.tree import SEPARATOR, decode_component, split_path
from reprocheck.worker import outputs

# --- output paths never collide --------------------------------------------------------------------


def test_a_dotted_key_and_a_nested_key_get_different_paths():
    flat = outputs.flatten({"a.b": torch.zeros(1), "a": {"b": torch.ones(1)}})
    assert set(flat.tensors) == {'"a.b"', "a.b"}


def test_a_str_key_and_an_int_key_get_different_paths():
    flat = outputs.flatten({"1": torch.zeros(1), 1: torch.ones(1), False: torch.ones(1), None: torch.ones(1)})
    assert set(flat.tensors) == {'"1"', "1", "<False>", "<None>"}


def test_paths_round_trip_through_split():
    tree = {"x": [{"a.b": torch.zeros(1), 'q"uote': torch.zeros(1), 7: torch.zeros(1), (1, 2): torch.zeros(1)}]}
    for path in outputs.flatten(tree).tensors:
        parts = split_path(path)
        assert SEPARATOR.join(parts) == path
        assert parts[0] == "x" and parts[1] == "0"
    assert [decode_component(c) for c in split_path('x.0."a.b"')] == ["x", 0, "a.b"]
    assert split_path("boxes") == ["boxes"]


def test_keys_that_still_read_the_same_are_refused_not_merged():
    class K:
        def __repr__(self) -> str:
            return "same"

    with pytest.raises(outputs.UnsupportedOutput, match="cannot be told apart"):
        outputs.flatten({K(): torch.zeros(1), K(): torch.ones(1)})


@pytest.mark.parametrize("factory,changing", [("dotted_key_collision", '"a.b"'), ("str_int_key_collision", '"1"')])
def test_a_changing_leaf_beside_a_lookalike_is_compared_and_fails(spec_dir, factory, changing):
    r = reprocheck("run", str(planted_spec(spec_dir, factory)), "--report", str(spec_dir / "r.json"))
    assert r.code == 1, r
    outs = {o["path"]: o["status"] for o in json.loads((spec_dir / "r.json").read_text())["checks"][0]["outputs"]}
    assert outs[changing] == "values" and len(outs) == 2


# --- every error is an error ------------------------------------------------------------------------


def test_exit_codes_precedence_is_the_highest():
    assert exit_code([]) is ExitCode.OK
    for statuses, expected in [
        ((Status.PASS, Status.PASS), 0),
        ((Status.PASS, Status.FAIL), 1),
        ((Status.FAIL, Status.ERROR, Status.PASS), 3),
        ((Status.ERROR, Status.FAIL), 3),
    ]:
        results = [type("R", (), {"status": s})() for s in statuses]
        assert exit_code(results) == expected  # type: ignore[arg-type]
    assert sorted(int(c) for c in ExitCode)[:5] == [0, 1, 2, 3, 4]


def test_a_nested_tensor_output_is_a_run_failure(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "nested_output")))
    assert r.code == 3, r
    assert "nested (jagged) tensor" in r.out and "Traceback" not in r.out + r.err


def test_the_zygote_dying_is_a_run_failure_naming_it(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "kills_zygote", "timeout: 60\n")), "--isolation", "fork")
    assert r.code == 3, r
    assert "worker process was killed by SIGKILL" in r.out


# A bug in reprocheck itself cannot be planted through a spec (that is the point of the guard), so this
# one test makes reading the second check's verdict raise inside reprocheck's own process, through the real
# CLI entry point in a real process.
CRASHING = r"""
import sys
sys.path.insert(0, sys.argv[1])
from reprocheck.host.checks import pipeline
from reprocheck.host.commands import main as cli
real = pipeline._verdict
def _verdict(*args, **kwargs):
    if len(_verdict.calls) == 1:
        raise KeyError("planted bug")
    _verdict.calls.append(1)
    return real(*args, **kwargs)
_verdict.calls = []
pipeline._verdict = _verdict
sys.exit(cli.main(sys.argv[2:]))
"""


def test_an_internal_failure_is_exit_4_with_a_crash_log_and_the_completed_reports(spec_dir, tmp_path):
    spec = write_spec(
        spec_dir,
        """version: 1
input: {random: {shape: [4, 8]}}
checks:
  - name: first
    model: {factory: "planted:os_entropy"}
  - name: second
    model: {factory: "planted:seeded_init"}
""",
    )
    crash_dir = tmp_path / "crashes"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING,
            str(ROOT / "runner"),
            "run",
            "-q",
            str(spec),
            "--report",
            str(tmp_path / "r.json"),
            "--summary",
            str(tmp_path / "s.md"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "REPROCHECK_CRASH_DIR": str(crash_dir)},
    )
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("reprocheck:")]
    assert "internal error (KeyError: 'planted bug')" in line
    (log,) = crash_dir.glob("reprocheck-crash-*.log")
    assert str(log) in line and "Traceback" in log.read_text() and "planted bug" in log.read_text()
    data = json.loads((tmp_path / "r.json").read_text())
    assert [c["name"] for c in data["checks"]] == ["first"] and data["checks"][0]["status"] == "fail"
    assert "first" in (tmp_path / "s.md").read_text()


def test_an_internal_failure_under_github_is_result_error(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "seeded_init")
    out, summary = tmp_path / "out", tmp_path / "summary"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING.replace("len(_verdict.calls) == 1", "True"),
            str(ROOT / "runner"),
            "run",
            "-q",
            "--github",
            str(spec),
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "GITHUB_OUTPUT": str(out),
            "GITHUB_STEP_SUMMARY": str(summary),
            "REPROCHECK_CRASH_DIR": str(tmp_path),
        },
    )
    assert proc.returncode == 4
    assert "result=error" in out.read_text()
    assert "::error title=reprocheck%3A internal error::" in proc.stdout


# --- bounded parsing -------------------------------------------------------------------------------


MEASURED = r"""
import contextlib, io, json, sys, time
sys.path.insert(0, sys.argv[1])
from reprocheck.host.commands.main import main
start = time.perf_counter()
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        code = main(["validate", sys.argv[2]])
    except SystemExit as exc:
        code = exc.code
# VmHWM, not ru_maxrss: the latter counts the forking parent's memory from before exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"code": code, "s": time.perf_counter() - start, "err": err.getvalue(), "out": out.getvalue(),
                  "rss_kb": hwm}))
"""


def _timed_validate(path: Path) -> dict:
    """`validate` in a fresh process of its own, with its time and peak memory."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED, str(ROOT / "runner"), str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_an_alias_bomb_is_refused_quickly_in_little_memory(tmp_path):
    lines = ["version: 1", 'a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    r = _timed_validate(write_spec(tmp_path, "\n".join(lines) + "\n"))
    assert r["code"] == 2 and "alias bomb" in r["err"] and "Traceback" not in r["err"], r
    assert r["s"] < 5 and r["rss_kb"] < 200_000, r  # 7 levels took 37 s and 1.9 GB before the limit


def test_deep_nesting_is_refused_without_a_recursion_error(tmp_path):
    r = reprocheck("validate", str(write_spec(tmp_path, "version: 1\nx: " + "[" * 1000 + "]" * 1000 + "\n")))
    assert r.code == 2 and "nested more than 64 levels" in r.err and "Traceback" not in r.err, r


def test_a_thousand_checks_validate_in_one_parse(tmp_path):
    entries = "".join(
        f"  - name: c{i}\n    model: {{torchvision: resnet18, kwargs: {{weights: null}}}}\n" for i in range(1000)
    )
    r = _timed_validate(write_spec(tmp_path, "version: 1\ninput: {random: {shape: [1, 3, 8, 8]}}\nchecks:\n" + entries))
    assert r["code"] == 0, r
    assert r["out"].count("ok  ") == 1000
    assert r["s"] < 15, r["s"]  # re-parsing per check took 120 s; one parse takes a few


@pytest.mark.parametrize(
    "extra,fragment",
    [
        ("timeout: .inf\n", "timeout: Input should be less than or equal to 604800"),
        ("timeout: .nan\n", "timeout: Input should be less than or equal to 604800, got NaN"),
        ("tolerance: {atol: .inf}\n", "tolerance.atol: Input should be a finite number"),
        ("timeout: 1e400\n", "timeout: Input should be less than or equal to 604800, got Infinity"),
        ("runs: 100000\n", "runs: Input should be less than or equal to 1000"),
        ("recipe: {threads: 100000000}\n", "recipe.threads: Input should be less than or equal to 4096"),
    ],
)
def test_numbers_have_upper_bounds(tmp_path, extra, fragment):
    spec = write_spec(tmp_path, 'version: 1\nmodel: {factory: "m:f"}\ninput: {random: {shape: [2]}}\n' + extra)
    r = reprocheck("validate", str(spec))
    assert r.code == 2 and fragment in r.err, r


def test_a_huge_random_input_is_refused_before_it_runs(tmp_path):
    spec = write_spec(
        tmp_path, 'version: 1\nmodel: {factory: "m:f"}\ninput: {random: {shape: [100000, 100000, 100000]}}\n'
    )
    r = reprocheck("validate", str(spec))
    assert r.code == 2 and "more than 2,147,483,648" in r.err, r


# --- outputs land where asked, only there ----------------------------------------------------------


def test_report_folders_are_created(spec_dir):
    spec = planted_spec(spec_dir, "seeded_init")
    r = reprocheck(
        "run",
        "-q",
        str(spec),
        "--report",
        str(spec_dir / "a" / "b" / "r.json"),
        "--summary",
        str(spec_dir / "c" / "s.md"),
        "--keep",
        str(spec_dir / "k" / "runs"),
    )
    assert r.code == 0, r
    assert json.loads((spec_dir / "a" / "b" / "r.json").read_text())["exit_code"] == 0
    assert (spec_dir / "c" / "s.md").is_file() and (spec_dir / "k" / "runs" / "001-spec").is_dir()


def _special_targets(tmp_path: Path) -> list[tuple[str, str]]:
    (tmp_path / "plain").write_text("x")
    (tmp_path / "link.json").symlink_to(tmp_path / "elsewhere.json")
    os.mkfifo(tmp_path / "fifo")
    cases = [
        (str(tmp_path / "link.json"), "symbolic link"),
        (str(tmp_path / "fifo"), "FIFO, socket or device"),
        (str(tmp_path / "plain" / "r.json"), "is a file, not a folder"),
        ("/proc/r.json", "cannot write in /proc"),
        (str(tmp_path), "is a folder"),
    ]
    if os.path.exists("/dev/full"):
        cases.append(("/dev/full", "FIFO, socket or device"))
    return cases


def test_special_and_unwritable_targets_are_refused_before_any_run(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "hangs")  # would take an hour if it ran
    (tmp_path / "t").mkdir()
    for target, fragment in _special_targets(tmp_path / "t"):
        for flag in ("--report", "--summary"):
            r = reprocheck("run", str(spec), flag, target, timeout=60)
            assert r.code == 2 and fragment in r.err and "Traceback" not in r.err, (flag, target, r)
    assert (tmp_path / "t" / "link.json").is_symlink() and not (tmp_path / "t" / "elsewhere.json").exists()
    assert (tmp_path / "t" / "fifo").is_fifo() and (tmp_path / "t" / "plain").read_text() == "x"
    if os.path.exists("/dev/full"):
        assert Path("/dev/full").is_char_device()


def test_files_are_created_with_the_umask_not_0600(spec_dir):
    spec = planted_spec(spec_dir, "seeded_init")
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        name = f"r{umask:o}"
        code = (
            f"import os, sys; os.umask({umask}); sys.path.insert(0, {str(ROOT / 'runner')!r}); "
            f"from reprocheck.host.commands.main import main; sys.exit(main(['run', '-q', {str(spec)!r}, '--report', "
            f"{str(spec_dir / name)!r} + '.json', '--baseline', {str(spec_dir / name)!r}, '--update-baseline']))"
        )
        proc = subprocess.run([sys.executable, "-c", code], cwd=spec_dir, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert (spec_dir / f"{name}.json").stat().st_mode & 0o777 == mode
        (golden,) = (spec_dir / name).rglob("*.safetensors")
        assert golden.stat().st_mode & 0o777 == mode


# --- goldens ---------------------------------------------------------------------------------------


def test_equal_stems_in_two_folders_get_two_goldens(spec_dir):
    for sub, factory in (("a", "loaded_weights"), ("b", "nudged")):
        (spec_dir / sub).mkdir()
        (spec_dir / sub / "planted.py").write_text((spec_dir / "planted.py").read_text())
        planted_spec(spec_dir / sub, factory, name="model.yaml")
    args = ["run", "-q", "a/model.yaml", "b/model.yaml", "--baseline", "bl"]
    assert reprocheck(*args, "--update-baseline", cwd=spec_dir).code == 0
    assert sorted(p.relative_to(spec_dir / "bl").as_posix() for p in (spec_dir / "bl").rglob("*.safetensors")) == [
        "a/model.yaml/model.safetensors",
        "b/model.yaml/model.safetensors",
    ]
    r = reprocheck(*args, cwd=spec_dir, env={"PLANTED_NUDGE": "0"})
    assert r.code == 0, r  # no false drift from one overwriting the other


def test_golden_names_never_leave_the_folder(spec_dir):
    for name in ("....yaml", "...yaml", "..yaml"):
        planted_spec(spec_dir, "seeded_init", name=name)
    r = reprocheck("run", "-q", "....yaml", "...yaml", "..yaml", "--baseline", "bl", "--update-baseline", cwd=spec_dir)
    assert r.code == 0, r
    written = sorted(p.relative_to(spec_dir).as_posix() for p in spec_dir.rglob("*.safetensors"))
    assert len(written) == 3 and all(p.startswith("bl/%2E") for p in written), written


def test_a_spec_outside_the_root_is_refused(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "seeded_init")
    r = reprocheck("run", str(spec), "--baseline", str(tmp_path / "bl"), "--baseline-root", str(tmp_path / "elsewhere"))
    assert r.code == 2 and "outside the baseline root" in r.err, r


def _corrupt(golden: Path, how: str, other: Path) -> None:
    data = golden.read_bytes()
    if how == "folder":
        golden.unlink()
        golden.mkdir()
        return
    golden.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(300), "foreign": other.read_bytes()}[
            how
        ]
    )


@pytest.mark.parametrize(
    "how,fragment",
    [
        ("truncated", "truncated"),
        ("empty", "empty or truncated"),
        ("random", "not a safetensors file"),
        ("foreign", "without our metadata"),
        ("folder", "is a folder"),
    ],
)
def test_an_unusable_golden_is_refused_before_any_run(spec_dir, how, fragment):
    spec = planted_spec(spec_dir, "loaded_weights")
    assert reprocheck("run", "-q", "spec.yaml", "--baseline", "bl", "--update-baseline", cwd=spec_dir).code == 0
    golden = spec_dir / "bl" / "spec.yaml" / "spec.safetensors"
    foreign = spec_dir / "foreign.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(foreign), metadata={"other": "tool"})
    _corrupt(golden, how, foreign)
    r = reprocheck("run", "spec.yaml", "--baseline", "bl", cwd=spec_dir, timeout=120)
    assert r.code == 2, r
    assert "golden bl/spec.yaml/spec.safetensors cannot be used: " in r.err and fragment in r.err
    assert "reprocheck run spec.yaml --check spec --baseline bl --update-baseline" in r.err
    assert "run 1" not in r.out + r.err  # nothing ran
    assert spec.exists()


# --- signals ---------------------------------------------------------------------------------------


def _workers(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "reprocheck.worker" in line]


@pytest.mark.parametrize("isolation", ["fork", "spawn"])
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_nothing_outlives_a_stopped_reprocheck(spec_dir, tmp_path, isolation, sig, code):
    spec = planted_spec(spec_dir, "hangs", "timeout: 120\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runner"), "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reprocheck", "run", str(spec), "--isolation", isolation],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    marker = str(tmp / "reprocheck-")
    deadline = time.monotonic() + 60
    while not _workers(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _workers(marker), "the worker never started"
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    deadline = time.monotonic() + 10
    while _workers(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _workers(marker), "a worker outlived reprocheck"
    if sig == signal.SIGTERM:
        assert "terminated" in err and "Traceback" not in err
        assert list(tmp.iterdir()) == []  # the temp folder is gone


# --- tolerance globs: the check wins ---------------------------------------------------------------


def test_an_entrys_tolerance_pattern_wins_over_the_defaults(spec_dir):
    spec = write_spec(
        spec_dir,
        """version: 1
model: {factory: "planted:logits_and_boxes"}
input: {random: {shape: [4, 8]}}
runs: 3
tolerance:
  outputs:
    "*": {atol: 1.0e-5}
checks:
  - name: loose-logits
    tolerance:
      outputs:
        logits: {atol: 1.0e-2}
  - name: defaults-only
""",
    )
    r = reprocheck("run", str(spec), "--report", str(spec_dir / "r.json"))
    checks = {c["name"]: c for c in json.loads((spec_dir / "r.json").read_text())["checks"]}
    assert checks["loose-logits"]["status"] == "pass", r
    tol = {o["path"]: o["tolerance"]["pattern"] for o in checks["loose-logits"]["outputs"]}
    assert tol == {"logits": "logits", "boxes": "*"}
    assert checks["defaults-only"]["status"] == "fail"  # logits jitter 1e-3 > 1e-5


# --- fork equivalence: reseeding ---------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["unseeded_numpy", "unseeded_random"])
def test_forked_runs_do_not_share_numpy_or_random_state(spec_dir, factory):
    # With the recipe's seeding off, each run must draw fresh numbers, as a new interpreter would.
    spec = planted_spec(spec_dir, factory, "recipe: {seed_rngs: false}\n")
    for isolation in ("fork", "spawn"):
        r = reprocheck("run", "-q", str(spec), "--isolation", isolation)
        assert r.code == 1, (isolation, r)


def test_annotations_of_a_single_check_file_point_at_its_first_line(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "os_entropy")
    r = reprocheck(
        "run",
        "-q",
        "--github",
        str(spec),
        env={
            "GITHUB_OUTPUT": str(tmp_path / "o"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
            "GITHUB_WORKSPACE": str(spec_dir),
        },
    )
    assert r.code == 1
    (line,) = [x for x in r.out.splitlines() if x.startswith("::error ")]
    assert "file=spec.yaml,line=1," in line and "title=reprocheck%3A spec" in line
