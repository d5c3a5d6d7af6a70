"""`reprocheck upgrade`: the same checks on two real stacks, graded. The old stack is torch 2.13.0+cpu in a venv the
tests make (from this machine's local wheels); the new one is the test suite's own interpreter (torch 2.14.1).
What was measured between them: tests/fixtures/stacks.py says it (no natural op differs here, so the within-noise
case is planted as a reordered float32 sum)."""

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from helpers import FIXTURES, ROOT, exclusive, in_process, reprocheck, write_spec

OLD_TORCH = "2.13.0+cpu"
VENVS = Path(os.environ.get("REPROCHECK_TEST_VENVS", ROOT / ".cache" / "venvs"))


@pytest.fixture(scope="session")
def old_python() -> str:
    """An interpreter with torch 2.13.0+cpu and reprocheck's dependencies (not reprocheck: upgrade puts it there)."""
    folder = VENVS / "torch-2.13.0-cpu"
    python = folder / "bin" / "python"
    probe = [
        str(python),
        "-c",
        f"import torch, pydantic, yaml, numpy, safetensors; assert torch.__version__ == {OLD_TORCH!r}",
    ]
    with exclusive("torch-2.13-venv"):
        _make_old_venv(folder, python, probe)
    return str(python)


def _make_old_venv(folder: Path, python: Path, probe: list[str]) -> None:
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        venv.create(folder, with_pip=True)
        install = [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            f"torch=={OLD_TORCH}",
            "numpy",
            "pydantic>=2",
            "pyyaml",
            "safetensors",
        ]
        proc = subprocess.run(install, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]


SPEC = """version: 1
checks:
  - name: conv
    model: {factory: "stacks:conv"}
    input: {random: {shape: [1, 3, 8, 8]}}
  - name: reordered
    model: {factory: "stacks:reordered"}
    input: {random: {shape: [8, 1024]}}
  - name: versioned
    model: {factory: "stacks:versioned"}
    input: {random: {shape: [2, 8]}}
  - name: tolerant
    model: {factory: "stacks:versioned"}
    input: {random: {shape: [2, 8]}}
    tolerance: {atol: 0.01}
  - name: detector
    model: {factory: "stacks:detector"}
    input: {random: {shape: [1, 5, 5]}}
    compare:
      outputs:
        "*": {as: detection}
  - name: flaky-on-new
    model: {factory: "stacks:flaky_on_new"}
    input: {random: {shape: [2, 8]}}
  - name: broken-on-new
    model: {factory: "stacks:broken_on_new"}
    input: {random: {shape: [2, 8]}}
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    shutil.copy(FIXTURES / "stacks.py", tmp_path / "stacks.py")
    return write_spec(tmp_path, SPEC)


def _line_of(text: str) -> int:
    return next(i for i, line in enumerate((FIXTURES / "stacks.py").read_text().splitlines(), 1) if text in line)


def md_of(out: Path) -> str:
    return (out / "upgrade.md").read_text()


def _grades(report: dict) -> dict[str, dict[str, str]]:
    return {c["name"]: {o["path"]: o["grade"] for o in c["outputs"]} for c in report["checks"]}


def test_two_torch_versions_graded_output_by_output(old_python: str, suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    step_summary, step_output = tmp_path / "step-summary.md", tmp_path / "step-output"
    step_summary.touch()
    step_output.touch()
    before = sorted(p.name for p in tmp_path.iterdir())
    r = reprocheck(
        "upgrade",
        str(suite),
        "--from",
        f"python:{old_python}",
        "--to",
        f"python:{sys.executable}",
        "--report",
        str(out / "upgrade.json"),
        "--summary",
        str(out / "upgrade.md"),
        "--pictures",
        str(out / "pics"),
        "--html",
        str(out / "upgrade.html"),
        "--github",
        cwd=tmp_path,
        env={
            "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(step_summary),
            "GITHUB_OUTPUT": str(step_output),
            "GITHUB_WORKSPACE": str(tmp_path),
        },
    )
    assert r.code == 3, r  # a run failed on the new stack: the highest code wins
    report = json.loads((out / "upgrade.json").read_text())
    verdicts = {c["name"]: c["verdict"] for c in report["checks"]}
    assert verdicts == {
        "conv": "safe",
        "reordered": "safe",
        "versioned": "changed",
        "tolerant": "changed",  # within its own tolerance, beyond noise: only --require task accepts it
        "detector": "safe",  # task-equivalent: its compare rule is what "the same" means for it
        "flaky-on-new": "not-reproducible",
        "broken-on-new": "error",
    }, r
    grades = _grades(report)
    assert grades["conv"] == {"output": "identical"}
    assert grades["reordered"] == {"output": "noise"}
    assert grades["versioned"] == {"output": "changed"}
    assert grades["detector"] == {"0": "task"}
    assert grades["tolerant"] == {"output": "task"}
    # The noise test's numbers: the new stack differs, and is no farther from float64 than k times the old one.
    (noise,) = next(c for c in report["checks"] if c["name"] == "reordered")["outputs"][0]["noise"]
    assert 0 < noise["max_new"] <= noise["bound_max"] and noise["rmse_new"] <= noise["bound_rmse"]
    versioned = next(c for c in report["checks"] if c["name"] == "versioned")["outputs"][0]
    assert "farther from the float64 reference than the old stack" in versioned["detail"]
    assert versioned["comparison"]["mismatched"] == 16
    # Which op the new stack changed: each side traced, the traces compared position by position.
    change = next(c for c in report["checks"] if c["name"] == "versioned")["first_change"]
    assert change["op"]["op"].startswith("aten::mul") and not change["op"]["parted"], change
    assert change["op"]["location"].endswith(f"stacks.py:{_line_of('1.001 if NEW')}"), change
    new_torch = report["fingerprints"]["to"]["torch"]
    assert f"torch {new_torch} changed aten::mul" in r.out and f"torch {new_torch} changed aten::mul" in md_of(out)
    reordered = next(c for c in report["checks"] if c["name"] == "reordered")["first_change"]
    assert reordered["op"]["op"].startswith("aten::add"), reordered  # the first partial sum, within noise
    assert next(c for c in report["checks"] if c["name"] == "conv")["first_change"] is None  # identical: not traced
    flaky = next(c for c in report["checks"] if c["name"] == "flaky-on-new")
    assert "not reproducible on the new stack" in flaky["message"] and sys.executable in flaky["message"]
    broken = next(c for c in report["checks"] if c["name"] == "broken-on-new")
    assert "on the new stack" in broken["message"] and "does not run on the new stack" in broken["message"], broken
    # The two stacks' fingerprint difference first, torch at its head.
    diff = report["fingerprint_diff"]
    assert diff[0] == {"field": "torch", "from": OLD_TORCH, "to": report["fingerprints"]["to"]["torch"]}
    # Console, Markdown and GitHub: the same verdicts.
    assert "not safe to bump: 4 of 7 checks" in r.out
    assert "within the check's tolerance (atol=0.01, rtol=0): differs by up to" in r.out
    assert "within noise    output: differs by up to" in r.out
    md = (out / "upgrade.md").read_text()
    assert f"| torch | `{OLD_TORCH}` |" in md
    assert "| reordered | `output` | within noise |" in md and "| detector | `0` | task-equivalent |" in md
    assert md in step_summary.read_text()
    lines = SPEC.splitlines()
    for name in ("versioned", "tolerant", "flaky-on-new", "broken-on-new"):
        line = lines.index(f"  - name: {name}") + 1
        assert f"::error file=spec.yaml,line={line},title=reprocheck upgrade%3A {name} " in r.out, r
    assert "result=fail" in step_output.read_text()
    # upgrade writes no goldens: nothing new beside the spec but the reports asked for.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "out"])
    assert sorted(p.name for p in out.iterdir()) == ["pics", "upgrade.html", "upgrade.json", "upgrade.md"]
    # What changed between the stacks, drawn on the --to stack from both goldens; identical outputs are not drawn,
    # nor detections every one of which still matches under the check's rule (no box to show missing or moved).
    drawn = {c["name"]: [p["file"] for p in c["pictures"]] for c in report["checks"]}
    assert drawn["conv"] == drawn["detector"] == [], drawn
    assert all(drawn[n] for n in ("reordered", "versioned", "tolerant")), drawn
    assert sorted(p.name for p in (out / "pics").iterdir()) == sorted(f for files in drawn.values() for f in files)
    assert all(f.startswith("upgrade-003-versioned-") for f in drawn["versioned"]), drawn
    page = (out / "upgrade.html").read_text()
    assert page.count("data:image/png;base64,") == sum(map(len, drawn.values())) and "versioned" in page


def test_require_chooses_how_strict_safe_is(old_python: str, suite: Path, tmp_path: Path) -> None:
    def upgrade(require: str, *checks: str):
        selected = [arg for name in checks for arg in ("--check", name)]
        stacks = ["--from", f"python:{old_python}", "--to", f"python:{sys.executable}"]
        return reprocheck("upgrade", str(suite), *stacks, "--require", require, *selected, cwd=tmp_path)

    r = upgrade("task", "conv", "reordered", "tolerant", "detector")
    assert r.code == 0, r
    assert "safe to bump: 4 checks, every output identical, within noise or task-equivalent" in r.out
    r = upgrade("identical", "reordered", "detector")
    assert r.code == 1, r
    assert "1 of 1 outputs below --require identical: output (noise)" in r.out
    assert "1 of 1 outputs below --require identical: 0 (task)" in r.out


def test_upgrade_never_imports_torch_here(old_python: str, suite: Path, tmp_path: Path) -> None:
    argv = ["upgrade", str(suite), "--from", f"python:{old_python}", "--to", f"python:{sys.executable}", "-q"]
    out = in_process([*argv, "--check", "conv"], cwd=tmp_path)
    assert out == {"codes": [0], "torch": False, "numpy": False}


def test_bad_stacks_and_options_are_refused_before_anything_runs(suite: Path, tmp_path: Path) -> None:
    here = f"python:{sys.executable}"
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)  # an interpreter without torch
    cases = [
        (["--from", "conda:base", "--to", here], "--from 'conda:base': give image:TAG"),
        (["--from", "python:/no/such/python", "--to", here], "no executable interpreter at /no/such/python"),
        (["--from", here, "--to", "image:-rm"], "is not an image reference"),
        (["--from", f"python:{bare}/bin/python", "--to", here], "has no torch: install the torch to test there"),
        (["--from", here, "--to", here, "--noise-k", "-1"], "--noise-k must be a finite number >= 0"),
        (["--from", here, "--to", here, "--runs", "1"], "--runs: Input should be greater than or equal to 2"),
        (["--from", here, "--to", here, "--check", "nope"], "nope"),
        (["--from", here, "--to", here, "--model-cache", str(tmp_path / "nowhere")], "no such folder"),
        (["--from", here, "--to", here, "--model-cache", "/proc"], "overlaps the system folder"),
    ]
    for args, message in cases:
        r = reprocheck("upgrade", str(suite), *args, cwd=tmp_path)
        assert r.code == 2, (args, r)
        assert message in r.err, (args, r)
        assert "Traceback" not in r.err
    r = reprocheck("upgrade", str(suite), "--to", here, cwd=tmp_path)
    assert r.code == 2 and "--from" in r.err
    home = tmp_path / "home"
    home.mkdir()
    r = reprocheck(
        "upgrade",
        str(suite),
        "--from",
        here,
        "--to",
        here,
        "--model-cache",
        str(home),
        cwd=tmp_path,
        env={"HOME": str(home)},
    )
    assert r.code == 2 and "home folder" in r.err, r  # it would be mounted into image: stacks, keys and all


def test_two_local_images_on_the_real_engine(image: str, tmp_path: Path) -> None:
    # Two images that differ in one environment variable only (no registry here to pull two releases from):
    # the model that reads it changes, the conv net stays identical; every run and the grading in containers.
    scaled = "reprocheck-upgrade-test:scaled"
    build = subprocess.run(
        ["docker", "build", "-q", "-t", scaled, "-"],
        input=f"FROM {image}\nENV STACK_TEST_SCALE=1.5\n",
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    shutil.copy(FIXTURES / "stacks.py", tmp_path / "stacks.py")
    spec = write_spec(
        tmp_path,
        """version: 1
checks:
  - name: conv
    model: {factory: "stacks:conv"}
    input: {random: {shape: [1, 3, 8, 8]}}
  - name: from-env
    model: {factory: "stacks:from_env"}
    input: {random: {shape: [2, 8]}}
""",
    )
    (tmp_path / "out").mkdir()
    r = reprocheck(
        "upgrade",
        str(spec),
        "--from",
        f"image:{image}",
        "--to",
        f"image:{scaled}",
        "--report",
        "out/u.json",
        cwd=tmp_path,
    )
    assert r.code == 1, r
    report = json.loads((tmp_path / "out" / "u.json").read_text())
    assert _grades(report) == {"conv": {"output": "identical"}, "from-env": {"output": "changed"}}, r
    assert report["fingerprints"]["from"]["torch"] == report["fingerprints"]["to"]["torch"]
    # The private folder the containers wrote in (inside the workspace) is gone; no golden anywhere.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".reprocheck-upgrade")], list(tmp_path.iterdir())
    assert not list(tmp_path.rglob("*.safetensors"))
