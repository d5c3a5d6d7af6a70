"""Input sources -> the arguments the model is called with. Runs inside the worker.

How inputs reach the model (`input.format`, default auto):
  * tensor: the tensor as loaded is the one positional argument;
  * batch:  an image (CHW) gets a batch dimension (1CHW);
  * list:   a list of CHW tensors (what torchvision detection models expect);
  * auto:   detection models -> list, images -> batch, tensor files and random -> tensor.
A .pt holding a list/tuple gives positional arguments, a dict (or .npz) keyword arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..spec import InputSpec
from .models import BuiltModel

Args = tuple[tuple[Any, ...], dict[str, Any]]


def _image(spec: InputSpec, model: BuiltModel) -> Any:
    import torch
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms import v2

    img = decode_image(read_file(spec.image), mode=ImageReadMode.RGB)  # uint8 CHW
    if spec.resize is None and spec.normalize is None and model.weights is not None:
        return model.weights.transforms()(img)
    steps: list[Any] = [v2.ToDtype(torch.float32, scale=True)]
    if spec.resize:
        steps.insert(0, v2.Resize(spec.resize, antialias=True))
    if spec.normalize:
        steps.append(v2.Normalize(spec.normalize.mean, spec.normalize.std))
    return v2.Compose(steps)(img)


def _tensor_file(path: str) -> Any:
    import numpy
    import torch

    suffix = Path(path).suffix
    if suffix == ".npy":
        return torch.from_numpy(numpy.load(path, allow_pickle=False))
    if suffix == ".npz":
        with numpy.load(path, allow_pickle=False) as data:
            return {k: torch.from_numpy(data[k]) for k in data.files}
    return torch.load(path, map_location="cpu", weights_only=True)


def _random(spec: InputSpec, seed: int) -> Any:
    import torch

    r = spec.random
    assert r is not None
    dtype = getattr(torch, r.dtype)
    g = torch.Generator().manual_seed(seed)  # its own generator: independent of model init order
    if dtype == torch.bool:
        return torch.randint(0, 2, r.shape, generator=g).bool()
    if not dtype.is_floating_point:
        return torch.randint(int(r.low), int(r.high), r.shape, generator=g, dtype=dtype)
    if r.distribution == "normal":
        return torch.randn(r.shape, generator=g, dtype=torch.float32).to(dtype)
    return (torch.rand(r.shape, generator=g, dtype=torch.float32) * (r.high - r.low) + r.low).to(dtype)


def _to(obj: Any, device: str) -> Any:
    if hasattr(obj, "to") and callable(obj.to) and not isinstance(obj, (str, bytes)):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device) for v in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _argument_seed(seed: int, name: str) -> int:
    # Each keyword argument its own seeded stream, the same in every run.
    import zlib

    return (seed + zlib.crc32(name.encode())) % 2**63


def build(spec: InputSpec, seed: int, device: str, model: BuiltModel) -> Args:
    import torch

    if spec.kwargs is not None:
        out: dict[str, Any] = {}
        for name, sub in spec.kwargs.items():
            args, kwargs = build(sub, _argument_seed(seed, name), device, model)
            if kwargs or len(args) != 1:
                raise ValueError(f"input.kwargs.{name}: one value per argument (a tensor file holding one tensor)")
            out[name] = args[0]
        return (), out
    if spec.image:
        value = _image(spec, model)
    elif spec.tensor:
        value = _tensor_file(spec.tensor)
    else:
        value = _random(spec, seed)
    value = _to(value, device)

    if isinstance(value, dict):
        return (), value
    fmt = spec.format
    if fmt == "auto":
        fmt = "list" if model.is_detection else ("batch" if spec.image else "tensor")
    if isinstance(value, (list, tuple)) and fmt != "list":
        return tuple(value), {}
    if fmt == "batch" and isinstance(value, torch.Tensor) and value.dim() == 3:
        value = value.unsqueeze(0)
    if fmt == "list" and isinstance(value, torch.Tensor):
        value = list(value.unbind(0)) if value.dim() == 4 else [value]
    return (value,), {}
