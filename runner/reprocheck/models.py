"""Model sources -> nn.Module on the check's device. Runs inside the worker."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import ModelSpec


@dataclass(frozen=True)
class BuiltModel:
    module: Any
    is_detection: bool  # expects a list of CHW tensors
    weights: Any  # the torchvision weights enum member, when one was given (for its transforms)


def _is_detection(module: Any) -> bool:
    # torchvision's detection models (R-CNNs, RetinaNet, FCOS, SSD, keypoint, mask) all take lists.
    return any(t.__module__.startswith("torchvision.models.detection") for t in type(module).__mro__)


def _torchvision(spec: ModelSpec) -> tuple[Any, Any]:
    import torchvision.models as tvm

    name = spec.torchvision
    weights = None
    if spec.kwargs.get("weights") is not None:
        weights = tvm.get_model_weights(name).verify(spec.kwargs["weights"])
    return tvm.get_model(name, **spec.kwargs), weights


def _factory(spec: ModelSpec, base_dir: Path) -> Any:
    module_name, _, attr = spec.factory.partition(":")
    # The spec's folder first, so its own modules win over installed ones of the same name.
    sys.path.insert(0, str(base_dir))
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    model = obj(**spec.kwargs)
    if not callable(model):
        raise TypeError(f"factory {spec.factory} returned {type(model).__name__}, which is not callable")
    return model


def build(spec: ModelSpec, base_dir: Path, device: str, eval_mode: bool) -> BuiltModel:
    import torch

    weights = None
    if spec.torchvision:
        model, weights = _torchvision(spec)
    elif spec.factory:
        model = _factory(spec, base_dir)
    elif spec.torchscript:
        model = torch.jit.load(spec.torchscript, map_location=device)
    else:
        model = torch.export.load(spec.exported).module()
    if isinstance(model, torch.nn.Module):
        model = model.to(device)
        if eval_mode:
            try:
                model.eval()
            except NotImplementedError:
                pass  # exported graphs keep the mode they were traced in
    return BuiltModel(module=model, is_detection=_is_detection(model), weights=weights)
