"""The process boundary: model code runs with nothing inherited (stdin, descriptors, protocol details, CI file
commands), cannot replace the worker from the working folder, and leaves nothing running after its run. Each case is
model code doing what a pull request's code may do, through the real CLI, in both isolation modes."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import reprocheck, write_spec

HERE = Path(__file__).resolve().parent
ISOLATIONS = ["fork", "spawn"]


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "spec"
    folder.mkdir()
    shutil.copy(HERE / "hostile_models.py", folder / "hostile_models.py")
    return folder


def spec(folder: Path, factory: str, kwargs: str = "", extra: str = "") -> Path:
    return write_spec(
        folder,
        f"""version: 1
timeout: 60
model:
  factory: "hostile_models:{factory}"
  kwargs: {{{kwargs}}}
input:
  random: {{shape: [2, 8]}}
{extra}""",
    )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_model_code_inherits_nothing_and_leaves_nothing(models_dir, tmp_path, isolation):
    """One model does it all: reads stdin in forward, leaves a child reading stdin, records its descriptors and
    environment, starts a child in its own session and a double-forked daemon, and changes its working folder."""
    out = tmp_path / "out"
    work = tmp_path / "work"
    work.mkdir()
    gh = tmp_path / "gh"
    gh.mkdir()
    env = {
        "GITHUB_OUTPUT": str(gh / "output"),
        "GITHUB_ENV": str(gh / "env"),
        "GITHUB_STEP_SUMMARY": str(gh / "summary"),
        "ACTIONS_RUNTIME_TOKEN": "secret-token",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "secret-oidc",
        "GITHUB_TOKEN": "secret-gh",
    }
    s = spec(models_dir, "does_all_of_it", f"out: {out}")
    r = reprocheck("run", str(s), "--keep", "kept", "--isolation", isolation, env=env, cwd=work)
    assert r.code == 0, r
    assert "longer than" not in r.out + r.err
    # stdin: /dev/null, so neither the model nor its child swallowed a request
    for swallowed in out.glob("swallowed.*"):
        assert swallowed.read_text() == "", "a child of the model read reprocheck's commands"
    # descriptors and environment
    records = [json.loads(p.read_text()) for p in out.glob("inherited.*.json")]
    assert len(records) == 2  # one per run
    for record in records:
        assert record["fds"] == {}, record["fds"]
        assert record["stdin"] == "/dev/null"
        leaked = [k for k in record["env"] if k.startswith(("REPROCHECK_", "ACTIONS_")) or k in env]
        assert leaked == [], leaked
        assert record["weights_only"] == "1"
        assert record["cwd_on_path"] == []
    # processes: every one the model started died with its run
    pids = [int(p) for f in out.glob("pids.*") for p in f.read_text().split()]
    assert len(pids) == 4
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "a process the model started outlived its run"
    # a relative --keep stays where it was given, whatever folder the model moved to
    assert list((work / "kept").rglob("result.json")), "the runs' files are not where --keep said"
    assert not list((out / "elsewhere").rglob("result.json"))


@pytest.mark.parametrize(
    ("isolation", "how"), [("fork", "exit"), ("spawn", "exit"), ("fork", "hang"), ("spawn", "hang")]
)
def test_a_run_that_dies_or_is_killed_leaves_nothing_running(models_dir, tmp_path, isolation, how):
    out = tmp_path / "out"
    s = (
        spec(models_dir, "dies_leaving_a_process", f"out: {out}, how: {how}")
        .read_text()
        .replace("timeout: 60", "timeout: 8")
    )
    r = reprocheck("run", str(write_spec(models_dir, s)), "--isolation", isolation)
    assert r.code == 3, r
    pids = [int(p) for f in out.glob("pids.*") for p in f.read_text().split()]
    assert pids
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], f"a process the model started outlived its {how} run"


def test_a_model_writing_to_its_stdin_cannot_forge_a_request(models_dir):
    r = reprocheck("run", str(spec(models_dir, "forges_a_verdict")), "--isolation", "fork")
    assert r.code == 1, r  # its outputs differ every run: only a forged request could hide that


def test_the_working_folder_cannot_replace_the_worker_or_torch(models_dir, tmp_path):
    """A pull request's checkout is the working folder: a `reprocheck/` package, a `torch.py` or a `numpy.py` there
    must never be what the worker imports."""
    work = tmp_path / "checkout"
    (work / "reprocheck" / "worker").mkdir(parents=True)
    markers = {}
    for shadow in ("reprocheck", "torch", "numpy"):
        markers[shadow] = tmp_path / f"imported-{shadow}"
        code = f"open({str(markers[shadow])!r}, 'w').write('yes')\nraise SystemExit(0)\n"
        if shadow == "reprocheck":
            (work / "reprocheck" / "__init__.py").write_text("")
            (work / "reprocheck" / "worker" / "__init__.py").write_text("")
            (work / "reprocheck" / "worker" / "__main__.py").write_text(code)
        else:
            (work / f"{shadow}.py").write_text(code)
    s = spec(models_dir, "reads_stdin")
    # As the installed `reprocheck` command starts (its own folder first on sys.path, not the working folder).
    cli = "import sys; del sys.path[0]; import runpy; runpy.run_module('reprocheck', run_name='__main__')"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "runner")}
    for isolation in ISOLATIONS:
        proc = subprocess.run(
            [sys.executable, "-c", cli, "run", str(s), "--isolation", isolation],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        imported = [name for name, marker in markers.items() if marker.exists()]
        assert imported == [], f"the worker imported the checkout's {imported} ({isolation})"
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_the_spec_folder_shadows_nothing_the_run_itself_uses(models_dir, tmp_path, isolation):
    """The spec's folder goes first on sys.path for its factory: its own `torchvision/` or `PIL/` must not be what
    reprocheck decodes the input image or fingerprints the environment with."""
    marker = tmp_path / "shadowed"
    for shadow in ("torchvision", "PIL", "safetensors"):
        (models_dir / shadow).mkdir()
        (models_dir / shadow / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write({shadow!r})\n")
    from PIL import Image

    Image.new("RGB", (8, 8), (10, 20, 30)).save(models_dir / "image.png")
    s = write_spec(
        models_dir,
        'version: 1\nmodel: {factory: "hostile_models:Conv"}\ninput: {image: image.png}\n',
    )
    r = reprocheck("run", str(s), "--isolation", isolation)
    assert not marker.exists(), f"the run imported the spec folder's {marker.read_text()}"
    assert r.code == 0, r
