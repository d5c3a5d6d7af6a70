"""Every model source and input source, end to end through the CLI."""

import json

import numpy as np
import pytest
import torch

from helpers import EXAMPLES, reprocheck, write_spec


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x):
        return {"logits": self.lin(x), "top": self.lin(x).argmax(-1)}


def run_report(spec, tmp_path):
    r = reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text()) if (tmp_path / "r.json").exists() else None
    return r, report


def test_torchscript_model(tmp_path):
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(Small()), tmp_path / "m.pt")
    spec = write_spec(tmp_path, "version: 1\nmodel: {torchscript: m.pt}\ninput: {random: {shape: [2, 4]}}\n")
    r, report = run_report(spec, tmp_path)
    assert r.code == 0, r
    assert [o["path"] for o in report["checks"][0]["outputs"]] == ["logits", "top"]


def test_exported_model(tmp_path):
    torch.manual_seed(0)
    ep = torch.export.export(Small(), (torch.ones(2, 4),))
    torch.export.save(ep, tmp_path / "m.pt2")
    spec = write_spec(tmp_path, "version: 1\nmodel: {exported: m.pt2}\ninput: {random: {shape: [2, 4]}}\n")
    r, report = run_report(spec, tmp_path)
    assert r.code == 0, r
    assert report["checks"][0]["outputs"][0]["shape"] == [2, 3]


@pytest.mark.parametrize("kind", ["pt", "npy", "npz", "pt-tuple"])
def test_tensor_inputs(tmp_path, kind):
    (tmp_path / "models.py").write_text(
        "import torch\n"
        "class Two(torch.nn.Module):\n"
        "    def forward(self, x, y=None):\n"
        "        return x * 2 if y is None else x + y\n"
        "def build():\n    return Two()\n"
    )
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    if kind == "pt":
        torch.save(torch.from_numpy(x), tmp_path / "x.pt")
        name, expected = "x.pt", x * 2
    elif kind == "npy":
        np.save(tmp_path / "x.npy", x)
        name, expected = "x.npy", x * 2
    elif kind == "npz":
        np.savez(tmp_path / "x.npz", x=x, y=x)
        name, expected = "x.npz", x + x
    else:
        torch.save((torch.from_numpy(x), torch.from_numpy(x)), tmp_path / "x.pt")
        name, expected = "x.pt", x + x
    spec = write_spec(tmp_path, f"version: 1\nmodel: {{factory: 'models:build'}}\ninput: {{tensor: {name}}}\n")
    r = reprocheck("run", str(spec), "--keep", str(tmp_path / "keep"))
    assert r.code == 0, r
    out = torch.load(tmp_path / "keep" / "001-spec" / "run1" / "outputs.pt", weights_only=True)
    assert np.array_equal(out["tensors"]["output"].numpy(), expected)


def test_pickled_object_in_tensor_file_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "x.pt")
    (tmp_path / "models.py").write_text("import torch\ndef build():\n    return torch.nn.Identity()\n")
    spec = write_spec(tmp_path, "version: 1\nmodel: {factory: 'models:build'}\ninput: {tensor: x.pt}\n")
    r = reprocheck("run", str(spec))
    assert r.code == 3 and "building the input" in r.out and "pwned" not in r.out


def test_image_input_to_a_classifier_and_detector_format(tmp_path):
    (tmp_path / "models.py").write_text(
        "import torch\n"
        "class Shape(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        if isinstance(x, list):\n"
        "            return [torch.tensor(t.shape) for t in x]\n"
        "        return torch.tensor(x.shape)\n"
        "def build():\n    return Shape()\n"
    )
    img = EXAMPLES / "data" / "chelsea.png"
    for fmt, expected in (("auto", [1, 3, 300, 451]), ("list", None), ("tensor", [3, 300, 451])):
        spec = write_spec(
            tmp_path, f"version: 1\nmodel: {{factory: 'models:build'}}\ninput: {{image: {img}, format: {fmt}}}\n"
        )
        r = reprocheck("run", str(spec), "--keep", str(tmp_path / fmt))
        assert r.code == 0, r
        out = torch.load(tmp_path / fmt / "001-spec" / "run1" / "outputs.pt", weights_only=True)
        if expected is None:
            assert out["tensors"]["0"].tolist() == [3, 300, 451]
        else:
            assert out["tensors"]["output"].tolist() == expected
    spec = write_spec(
        tmp_path, f"version: 1\nmodel: {{factory: 'models:build'}}\ninput: {{image: {img}, resize: [64, 80]}}\n"
    )
    r = reprocheck("run", str(spec), "--keep", str(tmp_path / "resized"))
    out = torch.load(tmp_path / "resized" / "001-spec" / "run1" / "outputs.pt", weights_only=True)
    assert out["tensors"]["output"].tolist() == [1, 3, 64, 80]


def test_cuda_device_without_a_gpu_is_a_clear_run_failure(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    (tmp_path / "models.py").write_text("import torch\ndef build():\n    return torch.nn.Identity()\n")
    spec = write_spec(
        tmp_path, "version: 1\ndevice: cuda\nmodel: {factory: 'models:build'}\ninput: {random: {shape: [2]}}\n"
    )
    r = reprocheck("run", str(spec))
    # the CUDA preflight's line: this machine has no NVIDIA driver or device at all
    assert r.code == 3 and "device cuda is not available on this machine: no NVIDIA GPU is visible" in r.out, r
    spec = write_spec(
        tmp_path, "version: 1\ndevice: auto\nmodel: {factory: 'models:build'}\ninput: {random: {shape: [2]}}\n"
    )
    r, report = run_report(spec, tmp_path)
    assert r.code == 0 and report["checks"][0]["device"] == "cpu"
