"""The nightly's goldens through the real CLI on CPU: keyed by device or GPU generation (`baseline: {key: ...}`),
the most specific one compared and the fallback reported, and the first night that writes what is missing."""

import json
import os
import shutil

from helpers import planted_spec, reprocheck


def run(spec, *extra, env=None):
    # From the spec's folder: goldens are laid out by the spec's path relative to the current folder.
    return reprocheck("run", str(spec), "--baseline", "bl", *extra, env=env, cwd=spec.parent)


def report(folder, name="r.json"):
    return json.loads((folder / name).read_text())["checks"][0]["baseline"]


def folder(spec_dir):
    return spec_dir / "bl" / "spec.yaml"


def test_a_keyed_golden_is_written_for_this_machines_key_and_compared(spec_dir):
    spec = planted_spec(spec_dir, "loaded_weights", "baseline: {key: device}")
    assert run(spec, "--update-baseline").code == 0
    assert sorted(os.listdir(folder(spec_dir))) == ["spec@cpu.safetensors"]
    r = run(spec, "--report", "r.json")
    assert r.code == 0, r
    b = report(spec_dir)
    assert (b["status"], b["key"], b["golden_key"], b["fallback"]) == ("match", "cpu", "cpu", False)
    assert b["golden"].endswith("spec@cpu.safetensors")


def test_the_most_specific_golden_wins_and_a_fallback_is_reported(spec_dir):
    # A keyless golden, then the spec keyed per GPU generation: on the CPU its keys are cpu, then keyless.
    spec = planted_spec(spec_dir, "loaded_weights")
    assert run(spec, "--update-baseline").code == 0
    spec = planted_spec(spec_dir, "loaded_weights", "baseline: {key: gpu}")
    r = run(spec, "--report", "r.json")
    assert r.code == 0, r  # changing key: alone makes no drift
    b = report(spec_dir)
    assert (b["status"], b["key"], b["golden_key"], b["fallback"], b["config_changed"]) == (
        "match",
        "cpu",
        "",
        True,
        False,
    )
    assert "compared with the keyless golden (fallback: none for cpu yet)" in r.out
    # A golden for this machine's key, written beside it, is preferred to the fallback.
    assert run(spec, "--update-baseline").code == 0
    assert sorted(os.listdir(folder(spec_dir))) == ["spec.safetensors", "spec@cpu.safetensors"]
    assert run(spec, "--report", "r.json").code == 0
    assert (report(spec_dir)["golden_key"], report(spec_dir)["fallback"]) == ("cpu", False)


def test_another_machines_golden_is_never_used(spec_dir):
    # Only a CUDA golden exists: a CPU machine has none of its own (exit 2 before any run, naming the keys).
    spec = planted_spec(spec_dir, "loaded_weights", "baseline: {key: gpu}")
    assert run(spec, "--update-baseline").code == 0
    os.rename(folder(spec_dir) / "spec@cpu.safetensors", folder(spec_dir) / "spec@cuda-sm90.safetensors")
    r = run(spec)
    assert r.code == 2, r
    assert "has no golden for key cpu (nor keyless)" in r.err and "--missing-baseline write" in r.err
    assert "[1/1]" not in r.err


def test_the_first_night_writes_what_is_missing_and_says_so(spec_dir):
    spec = planted_spec(spec_dir, "loaded_weights", "baseline: {key: gpu}")
    out = spec_dir / "gh-output"
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(spec_dir / "summary.md")}
    r = run(spec, "--missing-baseline", "write", "--report", "r.json", "--github", env=env)
    assert r.code == 0, r
    b = report(spec_dir)
    assert b["status"] == "written" and b["written"].endswith("spec@cpu.safetensors") and b["golden_key"] is None
    assert (folder(spec_dir) / "spec@cpu.safetensors").exists()
    # a warning annotation, a summary line and a step output: a workflow that never commits them is not silent
    assert "::warning" in r.out and "golden written, not yet committed" in r.out
    assert "1 golden written, not yet committed" in r.out
    assert "golden written, not yet committed" in (spec_dir / "summary.md").read_text()
    assert "spec@cpu.safetensors" in out.read_text().split("written-baselines", 1)[1]
    # The next night compares with it.
    r = run(spec, "--missing-baseline", "write", "--report", "r.json")
    assert r.code == 0 and report(spec_dir)["status"] == "match" and report(spec_dir)["written"] is None, r


def test_the_first_night_compares_a_fallback_for_information(spec_dir):
    # The keyless golden was made from another input (so it differs): with write, this machine's golden is
    # written and the difference is information; without, it is drift (exit 1) that names the fallback.
    planted_spec(spec_dir, "loaded_weights", shape="[2, 8]")
    assert run(spec_dir / "spec.yaml", "--update-baseline").code == 0
    spec = planted_spec(spec_dir, "loaded_weights", "baseline: {key: device}")
    r = run(spec, "--report", "r.json")
    assert r.code == 1, r
    b = report(spec_dir)
    assert b["status"] == "drift" and b["fallback"] and "That golden is a fallback (keyless; none for cpu yet)" in r.out
    assert b["obtained"].endswith("spec@cpu.obtained.safetensors")  # beside this machine's own golden-to-be
    r = run(spec, "--missing-baseline", "write", "--report", "r.json")
    assert r.code == 0, r
    b = report(spec_dir)
    assert b["status"] == "written" and b["golden_key"] == "" and b["fallback"]
    assert "differs from it (reported for information, not a failure)" in b["message"]
    assert sorted(os.listdir(folder(spec_dir))) == ["spec.safetensors", "spec@cpu.safetensors"]


def test_runs_that_differ_fail_and_write_nothing_on_the_first_night(spec_dir):
    spec = planted_spec(spec_dir, "os_entropy", "baseline: {key: device}")
    r = run(spec, "--missing-baseline", "write", "--report", "r.json")
    assert r.code == 1, r
    assert report(spec_dir)["status"] == "not-updated" and report(spec_dir)["written"] is None
    assert not (folder(spec_dir) / "spec@cpu.safetensors").exists()


def test_bad_keys_and_flags_are_exit_2(spec_dir):
    spec = planted_spec(spec_dir, "loaded_weights", "baseline: {key: sm90}")
    r = run(spec)
    assert r.code == 2 and "baseline.key" in r.err and "Traceback" not in r.err, r
    spec = planted_spec(spec_dir, "loaded_weights")
    r = reprocheck("run", str(spec), "--missing-baseline", "write", cwd=spec_dir)
    assert r.code == 2 and "--missing-baseline write needs --baseline" in r.err, r
    r = run(spec, "--missing-baseline", "write", "--update-baseline")
    assert r.code == 2 and "give one of them" in r.err, r
    r = run(spec, "--missing-baseline", "maybe")
    assert r.code == 2 and "--missing-baseline" in r.err, r


def test_keyed_goldens_are_checked_before_any_run(spec_dir):
    # A keyed golden that is a symlink (to a secret, say), or another check's, is refused like a keyless one;
    # a file whose key is not a key is not a golden at all.
    spec = planted_spec(spec_dir, "loaded_weights", "baseline: {key: device}")
    assert run(spec, "--update-baseline").code == 0
    g = folder(spec_dir) / "spec@cpu.safetensors"
    shutil.copy(g, folder(spec_dir) / "spec@..%2Fevil.safetensors")
    assert run(spec).code == 0
    secret = spec_dir / "secret"
    secret.write_text("token")
    g.unlink()
    g.symlink_to(secret)
    r = run(spec)
    assert r.code == 2 and f"golden {g.relative_to(spec_dir)} cannot be used" in r.err and "[1/1]" not in r.err, r


def test_a_check_named_like_an_obtained_file_is_refused(spec_dir):
    spec = spec_dir / "spec.yaml"
    spec.write_text(
        "version: 1\nmodel: {factory: 'planted:loaded_weights'}\ninput: {random: {shape: [4, 8]}}\n"
        "checks:\n  - name: a\n  - name: a.obtained\n"
    )
    r = run(spec, "--update-baseline")
    assert r.code == 2 and "would share the golden file" in r.err, r
