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


# The CUDA preflight. No GPU here: each state is simulated by a recorded `nvidia-smi` on PATH (its real output
# format) and the image's variables, while this torch (a CUDA 13.0 build) really finds no CUDA. On a GPU machine
# tests/gpu/run_gpu_checks.sh runs `reprocheck env --cuda` for real.
H100_SMI = "0, NVIDIA H100 80GB HBM3, 9.0, {driver}\n"
NO_DRIVER = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n"  # noqa: E501


def fake_smi(folder, stdout, code=0):
    bin_dir = folder / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{stdout}EOF\nexit {code}\n")
    smi.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def cuda_run(spec_dir, env):
    spec = planted_spec(spec_dir, "loaded_weights")
    return reprocheck("run", str(spec), "--device", "cuda", env=env, cwd=spec_dir)


def test_an_old_driver_is_named_with_the_version_cuda_needs(spec_dir):
    env = fake_smi(spec_dir, H100_SMI.format(driver="550.54.15"))
    r = cuda_run(spec_dir, env)
    line = "the NVIDIA driver 550.54.15 is older than CUDA 13.0 needs (>= 580.65.06)"
    assert r.code == 3 and line in r.out and "cu126 flavour" in r.out and "run 2/2" not in r.err, r
    e = reprocheck("env", "--cuda", env=env)
    assert e.code == 3 and f"cuda: not usable: {line}" in e.out, e
    # Inside the image its own figures are named (the cu126 flavour: CUDA 12.6, driver >= 560.28.03).
    image = {**env, "REPROCHECK_FLAVOUR": "cu126", "REPROCHECK_CUDA": "12.6", "REPROCHECK_MIN_DRIVER": "560.28.03"}
    e = reprocheck("env", "--cuda", env=image)
    assert "older than CUDA 12.6 needs (>= 560.28.03): update the host's driver" in e.out, e


def test_no_gpu_visible_names_the_flag_that_gives_one(spec_dir):
    env = {"PATH": "/usr/bin:/bin"}  # no nvidia-smi, no /dev/nvidiactl, no driver: a container started without GPUs
    r = cuda_run(spec_dir, {**env, "REPROCHECK_FLAVOUR": "cu130"})
    assert r.code == 3 and "no NVIDIA GPU is visible inside the container" in r.out and "gpus: all" in r.out, r
    assert "NVIDIA Container Toolkit" in r.out
    e = reprocheck("env", "--cuda", env=env)
    assert e.code == 3 and "no NVIDIA GPU is visible to this process" in e.out, e
    e = reprocheck(
        "env", "--cuda", env={**fake_smi(spec_dir, H100_SMI.format(driver="580.95.05")), "CUDA_VISIBLE_DEVICES": ""}
    )
    assert e.code == 3 and "CUDA_VISIBLE_DEVICES='' hides every GPU" in e.out, e


def test_a_driver_that_does_not_answer_and_a_gpu_torch_cannot_use_are_said_as_such(spec_dir):
    e = reprocheck("env", "--cuda", env=fake_smi(spec_dir, NO_DRIVER, code=9))
    assert e.code == 3 and "nvidia-smi fails: NVIDIA-SMI has failed because it couldn't communicate" in e.out, e
    e = reprocheck("env", "--cuda", "--json", env=fake_smi(spec_dir, H100_SMI.format(driver="580.95.05")))
    pre = json.loads(e.out)["cuda_preflight"]
    assert e.code == 3 and not pre["usable"], e
    assert (
        "torch.cuda.is_available() is False although this machine shows 0: NVIDIA H100 80GB HBM3 (sm 9.0)"
        in (pre["lines"][-1])
    )


def test_a_cpu_check_never_runs_the_cuda_preflight(spec_dir):
    # An nvidia-smi that would fail the preflight is never asked by a CPU check (nor is CUDA initialised).
    r = reprocheck("run", str(planted_spec(spec_dir, "loaded_weights")), env=fake_smi(spec_dir, NO_DRIVER, 9))
    assert r.code == 0, r


def test_the_example_nightly_lists_on_a_hosted_runner_and_writes_the_first_night():
    import yaml

    from helpers import ROOT

    flow = yaml.safe_load((ROOT / "examples" / "workflows" / "nightly-gpu.yml").read_text())
    plan, check = flow["jobs"]["plan"], flow["jobs"]["check"]
    assert plan["runs-on"] == "ubuntu-latest"  # listing needs no torch, GPU or image
    listing = " ".join(s.get("run", "") for s in plan["steps"])
    assert "reprocheck matrix" in listing and "--max-jobs" in listing and "--timings" in listing
    assert "docker" not in listing and "torch" not in listing.replace("without torch", "")
    steps = {s.get("id"): s for s in check["steps"]}
    assert "env --cuda" in " ".join(s.get("run", "") for s in check["steps"])
    repro = steps["repro"]["with"]
    assert repro["checks"] == "${{ matrix.check }}" and repro["spec"] == "${{ matrix.spec }}"
    assert "write" in repro["missing-baseline"] and repro["baseline"] == "baselines"
    assert "written-baselines" in " ".join(str(s.get("if", "")) for s in check["steps"])
    # the spec it runs keeps one golden per GPU generation
    assert "baseline: {key: gpu}" in (ROOT / "examples" / "suite.yaml").read_text()
