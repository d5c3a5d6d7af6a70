"""Each exit code keeps its meaning at the edges: a closed stdout, a missing optional package, a device that
is not here, a golden never written. All through the real CLI in real processes."""

import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, planted_spec, reprocheck


def test_a_closed_stdout_ends_quietly_without_a_crash_log(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runner"), "REPROCHECK_CRASH_DIR": str(tmp_path / "crashes")}
    for args in (["env"], ["schema"]):
        reader, writer = os.pipe()
        os.close(reader)  # the reader is gone before reprocheck writes a byte (`| head` that already exited)
        proc = subprocess.run(
            [sys.executable, "-m", "reprocheck", *args], stdout=writer, stderr=subprocess.PIPE, env=env, text=True
        )
        os.close(writer)
        assert proc.returncode == 141, proc.stderr  # 128 + SIGPIPE, as a shell reports a piped CLI
        assert proc.stderr == "" and not (tmp_path / "crashes").exists()


def _without(tmp_path: Path, package: str) -> dict[str, str]:
    """An environment whose interpreters (reprocheck's and its workers') cannot import `package`."""
    hide = tmp_path / "hide"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(f"import sys\nsys.modules[{package!r}] = None\n")
    return {"PYTHONPATH": f"{ROOT / 'runner'}{os.pathsep}{hide}"}


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reprocheck", *args],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_missing_optional_package_is_a_one_line_usage_error_before_any_run(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "loaded_weights")
    r = _run(
        ["run", str(spec), "--baseline", str(spec_dir / "bl"), "--update-baseline"],
        spec_dir,
        _without(tmp_path, "safetensors"),
    )
    assert r.returncode == 2, r
    assert r.stderr.count("\n") == 1 and "safetensors is not installed" in r.stderr, r.stderr
    assert "pip install torch torchvision numpy safetensors" in r.stderr and "[1/1]" not in r.stderr
    r = _run(["run", str(spec)], spec_dir, _without(tmp_path, "numpy"))
    assert r.returncode == 2 and "numpy is not installed" in r.stderr, r


def test_a_package_missing_inside_a_run_is_a_run_failure_naming_it(spec_dir, tmp_path):
    (spec_dir / "needs.py").write_text("import not_a_package_here\n\ndef build():\n    pass\n")
    spec = planted_spec(spec_dir, "loaded_weights").with_name("n.yaml")
    spec.write_text("version: 1\nmodel: {factory: 'needs:build'}\ninput: {random: {shape: [2]}}\n")
    r = reprocheck("run", str(spec), cwd=spec_dir)
    assert r.code == 3 and "not_a_package_here" in r.out and "bug in reprocheck" not in r.out + r.err, r


def test_device_cuda_without_cuda_is_one_line_and_exit_3(spec_dir):
    spec = planted_spec(spec_dir, "loaded_weights", "device: cuda\nruns: 5\n")
    r = reprocheck("run", str(spec), cwd=spec_dir)
    assert r.code == 3, r
    assert "device cuda is not available on this machine" in r.out
    assert "Traceback" not in r.out + r.err and "| " not in r.out, r
    assert "run 2/" not in r.err  # nothing after the first refusal


def test_a_failing_check_names_the_recipe_parts_it_turned_off_first(spec_dir):
    spec = planted_spec(spec_dir, "seeded_init", "recipe: {seed_rngs: false}\n")
    r = reprocheck("run", str(spec), cwd=spec_dir)
    assert r.code == 1, r
    notes = [line for line in r.out.splitlines() if "note:" in line]
    assert notes and "your recipe turns off seed_rngs" in notes[0], r.out
    assert "reprocheck diagnose" in r.out  # every run-to-run remedy leads to diagnose


def test_singular_and_plural_read_right(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "raises")), cwd=spec_dir)
    assert r.code == 3 and "1 check: 0 passed, 0 failed, 1 error\n" in r.out, r
    r = reprocheck("run", str(planted_spec(spec_dir, "os_entropy")), cwd=spec_dir)
    assert r.code == 1 and "1 of 1 output differs" in r.out, r


def test_drift_with_runs_that_differ_does_not_suggest_update_baseline(spec_dir):
    spec = planted_spec(spec_dir, "seeded_init", name="a.yaml")
    assert reprocheck("run", "a.yaml", "--baseline", "bl", "--update-baseline", cwd=spec_dir).code == 0
    (spec_dir / "a.yaml").write_text(spec.read_text() + "recipe: {seed_rngs: false}\n")
    r = reprocheck("run", "a.yaml", "--baseline", "bl", cwd=spec_dir)
    assert r.code == 1, r
    assert "The runs themselves differ" in r.out and "--update-baseline" not in r.out, r


def test_run_help_lists_every_exit_code():
    r = reprocheck("run", "--help")
    assert r.code == 0
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130", "143", "141"):
        assert f"\n  {code}" in r.out or f"; {code}" in r.out, code
