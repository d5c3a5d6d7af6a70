"""The nightly's doors, tried as a pull request would: keyed goldens through symlinked folders, names that are not
keys, `nvidia-smi` output that is hostile (non-UTF-8, escape sequences, workflow commands, endless), identities the
Action would split. The GPU is simulated by a stand-in `nvidia-smi` on PATH (no GPU here)."""

import os
import shutil

from helpers import planted_spec, reprocheck


def _smi(folder, script):
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + script)
    smi.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_hostile_nvidia_smi_output_is_text_bounded_and_inert(tmp_path):
    env = _smi(tmp_path, r"printf '0, \377\376\033[31mRED\033]0;t\007 ::error file=x::pwned%%0A, 9.0, 550.1\n'")
    r = reprocheck("env", "--cuda", env=env)
    assert r.code == 3, r  # a verdict, never exit 4
    assert "\033" not in r.out and "\007" not in r.out and "\n::error" not in r.out, r
    assert "older than CUDA 13.0 needs" in r.out
    (tmp_path / "endless").mkdir()
    endless = _smi(tmp_path / "endless", "yes aaaaaaaaaaaaaaaa\n")
    r = reprocheck("env", "--cuda", env=endless, timeout=120)
    assert r.code == 3 and len(r.out) < 20000, (r.code, len(r.out))


def test_goldens_are_never_written_through_a_symlinked_folder(spec_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    planted_spec(spec_dir, "loaded_weights", "baseline: {key: device}")
    (spec_dir / "bl").mkdir()
    (spec_dir / "bl" / "spec.yaml").symlink_to(outside, target_is_directory=True)
    for extra in (["--missing-baseline", "write"], ["--update-baseline"], []):
        r = reprocheck("run", "spec.yaml", "--baseline", "bl", *extra, cwd=spec_dir)
        assert r.code == 2 and "is a symbolic link: goldens are never written through one" in r.err, r
        assert "[1/1]" not in r.err
    assert os.listdir(outside) == []


def test_a_file_named_like_a_key_with_a_newline_is_not_a_golden(spec_dir):
    spec = planted_spec(spec_dir, "loaded_weights", "baseline: {key: device}")
    assert reprocheck("run", "spec.yaml", "--baseline", "bl", "--update-baseline", cwd=spec_dir).code == 0
    folder = spec_dir / "bl" / "spec.yaml"
    shutil.move(folder / "spec@cpu.safetensors", folder / "spec@cpu\n.safetensors")
    r = reprocheck("run", str(spec), "--baseline", "bl", cwd=spec_dir)
    assert r.code == 2 and "has no golden for key cpu" in r.err, r


def test_a_grouped_job_never_lists_a_check_the_action_would_split(tmp_path):
    for name in ("w2,x.yaml", "x.yaml"):
        (tmp_path / name).write_text(
            "version: 1\nmodel: {torchvision: resnet18}\ninput: {random: {shape: [1, 3, 8, 8]}}\n"
            "checks:\n  - name: w2\n  - name: m\n"
        )
    r = reprocheck("matrix", ".", "--max-jobs", "1", cwd=tmp_path)
    assert r.code == 2 and "'w2,x.yaml:w2' cannot be listed in a grouped job" in r.err and not r.out, r
    assert reprocheck("matrix", ".", cwd=tmp_path).code == 0  # one job per check: nothing is split
