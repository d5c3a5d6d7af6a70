import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT / "runner"))  # the package under test, installed or not


class Result:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def reprocheck(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> Result:
    """The real CLI in a real subprocess."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    full_env["PYTHONPATH"] = (env or {}).get("PYTHONPATH", str(ROOT / "runner"))
    proc = subprocess.run(
        [sys.executable, "-m", "reprocheck", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )
    return Result(proc)


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A folder holding the planted models, for specs that name `factory: "planted:..."`."""
    shutil.copy(FIXTURES / "planted.py", tmp_path / "planted.py")
    return tmp_path


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def planted_spec(folder: Path, factory: str, extra: str = "", shape: str = "[4, 8]", name: str = "spec.yaml") -> Path:
    return write_spec(
        folder,
        f"""version: 1
model:
  factory: "planted:{factory}"
input:
  random: {{shape: {shape}}}
{extra}""",
        name,
    )


def engine_up() -> bool:
    return (
        shutil.which("docker") is not None and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    )


@pytest.fixture(scope="session")
def image() -> str:
    """The pinned image, built from docker/Dockerfile on the local base (no registry here).
    Skips without a Docker engine, except under CI=true where that is a failure."""
    if not engine_up():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Docker engine is running (.ci/start-docker.sh should have started one)")
        pytest.skip("no Docker engine on this machine (start dockerd to run the container tests)")
    proc = subprocess.run(["bash", "docker/build.sh", "--local"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def fill_model_cache(folder: Path) -> Path:
    """A model cache holding RetinaNet v2's DEFAULT weights at the file name torchvision looks for: a seeded random
    state dict (no hub can be reached here), so `weights: DEFAULT` loads without a network."""
    import torch
    import torchvision.models as tvm

    url = tvm.get_model_weights("retinanet_resnet50_fpn_v2").DEFAULT.url
    target = folder / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = tvm.get_model("retinanet_resnet50_fpn_v2", weights=None, weights_backbone=None)
        torch.save(model.state_dict(), target)
    return folder
