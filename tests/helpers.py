"""What the tests share: the real CLI in a subprocess, spec writers, the Docker engine probe, a model cache, and a
lock for what one test session builds once (test workers run side by side)."""

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures"
ZOOS = TESTS / "zoos"
EXAMPLES = ROOT / "examples"
if str(ROOT / "runner") not in sys.path:
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


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Held by one test worker at a time: while it builds what the session shares (the image, a venv; the others
    wait, then find it), or uses what must not be shared (the Docker engine's images)."""
    folder = ROOT / ".cache" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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


# The CLI called in one interpreter: its exit codes, and whether torch or NumPy were imported on the way.
NO_TORCH = r"""
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
from reprocheck.host.commands.main import main
codes = []
for argv in json.loads(sys.argv[2]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            codes.append(main(argv))
        except SystemExit as exc:
            codes.append(exc.code)
print(json.dumps({"codes": codes, "torch": "torch" in sys.modules, "numpy": "numpy" in sys.modules}))
"""


def in_process(*commands: list[str], cwd: Path | None = None, env: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(ROOT / "runner"), json.dumps(list(commands))],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --- --pictures and --html (tests/cli/test_pictures.py, tests/engine/test_page_in_a_browser.py) -------------------

BOX_MISSING, BOX_EXTRA, BOX_MATCHED = (0xD6, 0x27, 0x28), (0x1F, 0x77, 0xB4), (0x2C, 0xA0, 0x2C)  # worker/drawing.py


def pictured_folder(folder: Path) -> Path:
    """The planted models of tests/fixtures/pictured.py and planted.py, an input image, and a spec of a detection
    check whose run 2 loses, relabels and adds a detection (detect.yaml)."""
    from PIL import Image

    shutil.copy(FIXTURES / "pictured.py", folder / "pictured.py")
    shutil.copy(FIXTURES / "planted.py", folder / "planted.py")
    pixels = bytes((x * 4 + y) % 256 for y in range(300) for x in range(320) for _ in range(3))
    Image.frombytes("RGB", (320, 300), pixels).save(folder / "street.png")
    rule = 'compare:\n  outputs:\n    "*": {as: detection}\n'
    write_spec(
        folder,
        f'version: 1\nmodel:\n  factory: "pictured:dets_differ"\ninput:\n  image: street.png\n{rule}',
        "detect.yaml",
    )
    return folder


def png_colours(path: Path) -> set[tuple[int, int, int]]:
    """A valid PNG's colours."""
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
    with Image.open(path) as img:
        return {c for _, c in img.convert("RGB").getcolors(maxcolors=1 << 22)}


def near_colour(found: set[tuple[int, int, int]], colour: tuple[int, int, int], by: int = 12) -> bool:
    return any(all(abs(a - b) <= by for a, b in zip(c, colour, strict=True)) for c in found)


def check_result(comparison, *, name="c", line=3, status=None):
    """A check's result with two ok runs around `comparison`, for the reports' unit tests; its status follows the
    comparison unless given."""
    from reprocheck.host.checks.outcome import CheckResult, Status
    from reprocheck.host.workers.run_result import RunResult, RunStatus

    ok = (RunResult(1, RunStatus.OK, 1.0, Path(".")), RunResult(2, RunStatus.OK, 1.0, Path(".")))
    if status is None:
        status = Status.PASS if comparison else Status.FAIL
    return CheckResult(
        name=name,
        file=Path("s.yaml"),
        line=line,
        status=status,
        seed=1,
        device="cpu",
        runs_requested=2,
        runs=ok,
        comparison=comparison,
        recipe={},
        config_hash="x",
        duration=2.0,
    )
