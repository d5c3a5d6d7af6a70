"""Weights are never unpickled: a checkpoint in the model cache, an exported program's pickled payload and a model's
own `torch.load(weights_only=False)` all load weights-only, so a planted pickle runs nothing and the run fails with
one line that says why. A cached torchvision checkpoint whose content does not match the hash in its name is named."""

import io
import zipfile
from pathlib import Path

import pytest

from helpers import reprocheck, write_spec

RESNET18 = "resnet18-f37072fd.pth"  # torchvision's file name for resnet18's IMAGENET1K_V1 weights


class Planted:
    """A pickle that, once unpickled, writes a marker file: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",))


def _planted_bytes(marker: Path) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(Planted(marker), buf)
    return buf.getvalue()


def _resnet_spec(folder: Path) -> Path:
    return write_spec(
        folder,
        "version: 1\ntimeout: 120\nmodel: {torchvision: resnet18, kwargs: {weights: DEFAULT}}\n"
        "input: {random: {shape: [1, 3, 32, 32]}}\n",
    )


def test_a_planted_checkpoint_in_the_model_cache_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    checkpoints = tmp_path / "models" / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / RESNET18).write_bytes(_planted_bytes(marker))
    r = reprocheck("run", str(_resnet_spec(tmp_path)), "--model-cache", str(tmp_path / "models"))
    assert not marker.exists(), "a checkpoint in the model cache was unpickled"
    assert r.code == 3, r
    assert "never unpickles" in r.out + r.err, r
    assert "Traceback" not in r.out


def test_a_checkpoint_that_is_not_the_published_file_is_named(tmp_path):
    import torch
    import torchvision

    checkpoints = tmp_path / "models" / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), checkpoints / RESNET18)
    r = reprocheck("run", str(_resnet_spec(tmp_path)), "--model-cache", str(tmp_path / "models"))
    assert r.code == 0, r  # weights-only loading of a plain state dict works; the file is named, not trusted
    assert f"{RESNET18} do not match the sha256 prefix f37072fd" in r.out, r


@pytest.fixture
def planted_program(tmp_path: Path) -> tuple[Path, Path]:
    """A real exported program whose pickled sample inputs are replaced by a planted pickle: torch.export.load falls
    back to unpickling that payload when weights-only loading fails."""
    import torch

    class Small(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x)

    clean = tmp_path / "clean.pt2"
    torch.export.save(torch.export.export(Small(), (torch.randn(1, 4),)), clean)
    marker = tmp_path / "marker"
    program = tmp_path / "model.pt2"
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(program, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("sample_inputs/model.pt"):
                data = _planted_bytes(marker)
            dst.writestr(info, data)
    return program, marker


def test_an_exported_program_is_loaded_without_the_pickle_fallback(tmp_path, planted_program):
    program, marker = planted_program
    spec = write_spec(
        tmp_path, f"version: 1\nmodel: {{exported: {program.name}}}\ninput: {{random: {{shape: [1, 4]}}}}\n"
    )
    r = reprocheck("run", str(spec))
    assert not marker.exists(), "the exported program's payload was unpickled"
    assert r.code == 3 and "never unpickles" in r.out + r.err, r


def test_a_models_own_unsafe_load_is_weights_only(tmp_path):
    marker = tmp_path / "marker"
    (tmp_path / "blob.pt").write_bytes(_planted_bytes(marker))
    (tmp_path / "loads.py").write_text(
        "import os, torch\n"
        "def build():\n"
        "    torch.load(os.path.join(os.path.dirname(__file__), 'blob.pt'), weights_only=False)\n"
        "    return torch.nn.Identity()\n"
    )
    spec = write_spec(tmp_path, 'version: 1\nmodel: {factory: "loads:build"}\ninput: {random: {shape: [2, 3]}}\n')
    for isolation in ("fork", "spawn"):
        r = reprocheck("run", str(spec), "--isolation", isolation)
        assert not marker.exists(), f"torch.load(weights_only=False) unpickled in {isolation} mode"
        assert r.code == 3, r
