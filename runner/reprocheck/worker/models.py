"""Model sources -> nn.Module on the check's device. Runs inside the worker."""

from __future__ import annotations

import importlib
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import ModelSpec


@dataclass(frozen=True)
class BuiltModel:
    module: Any
    is_detection: bool  # expects a list of CHW tensors
    weights: Any  # the torchvision weights enum member, when one was given (for its transforms)
    notes: tuple[str, ...] = ()  # warnings for the run's report (weights that are not the published file)


class Unpicklable(RuntimeError):
    """A weights or program file that only pickle could load: reprocheck never unpickles."""


def _is_detection(module: Any) -> bool:
    # torchvision's detection models (R-CNNs, RetinaNet, FCOS, SSD, keypoint, mask) all take lists.
    return any(t.__module__.startswith("torchvision.models.detection") for t in type(module).__mro__)


def _torchvision(spec: ModelSpec) -> tuple[Any, Any, tuple[str, ...]]:
    import torchvision.models as tvm

    name = spec.torchvision
    assert name is not None
    weights = None
    if spec.kwargs.get("weights") is not None:
        weights = tvm.get_model_weights(name).verify(spec.kwargs["weights"])
    notes = tuple(n for w in _weight_members(tvm, name, spec.kwargs) if (n := _cached_mismatch(w)))
    return tvm.get_model(name, **spec.kwargs), weights, notes


def _weight_members(tvm: Any, name: str, kwargs: dict[str, Any]) -> list[Any]:
    """The weights enum members a torchvision build will load (weights, weights_backbone)."""
    import inspect

    members = []
    for kw in ("weights", "weights_backbone"):
        value = kwargs.get(kw)
        if not isinstance(value, str):
            continue
        try:
            if kw == "weights":
                enum = tvm.get_model_weights(name)
            else:
                ann = inspect.signature(tvm.get_model_builder(name)).parameters[kw].annotation
                enum = getattr(ann, "__args__", (None,))[0]
            members.append(enum.verify(value))
        except Exception:
            continue  # torchvision itself reports a bad name when it builds
    return members


def _cached_mismatch(weights: Any) -> str | None:
    """A cached checkpoint whose content does not match the sha256 prefix in its file name (torch.hub's naming): not
    the published file. It is still loaded weights-only; the note says which file it is."""
    import hashlib
    import os
    import re

    import torch.hub

    url = getattr(weights, "url", "") or ""
    file = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    wanted = re.search(r"-([a-f0-9]+)\.", os.path.basename(url))
    if not wanted or not os.path.isfile(file):
        return None
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest().startswith(wanted.group(1)):
        return None
    return (
        f"weights {file} do not match the sha256 prefix {wanted.group(1)} in their name (the file holds "
        f"{digest.hexdigest()[: len(wanted.group(1))]}): not the file torchvision publishes (a partial download, or "
        "another file saved under its name); loaded weights-only"
    )


def _factory(spec: ModelSpec, base_dir: Path) -> Any:
    assert spec.factory is not None
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


MISSING = {
    "timm": "timm is not installed where the runs are: pip install timm (in the image: a --requirements file)",
    "transformers": "transformers is not installed where the runs are: pip install transformers (in the image: a "
    "--requirements file)",
}


def _library(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingLibrary(MISSING[name]) from None


class MissingLibrary(ImportError):
    """A model source's library is not installed: one line with the fix."""


def _timm(spec: ModelSpec) -> Any:
    timm = _library("timm")
    return timm.create_model(spec.timm, **spec.kwargs)


def _huggingface(spec: ModelSpec) -> Any:
    hf = spec.huggingface
    assert hf is not None
    transformers = _library("transformers")
    cls = getattr(transformers, hf.class_)
    kwargs = dict(spec.kwargs)  # the spec refuses trust_remote_code and local_files_only
    if hf.path is not None:
        # trust_remote_code=False said, not defaulted: transformers would otherwise ask on stdin (and wait)
        return cls.from_pretrained(hf.path, local_files_only=True, trust_remote_code=False, **kwargs)
    config = dict(hf.config or {})
    config = transformers.AutoConfig.for_model(config.pop("model_type"), **config)
    if hasattr(cls, "from_config"):  # the Auto classes
        return cls.from_config(config, **kwargs)
    if kwargs and hasattr(cls, "_from_config"):  # what from_config does for a concrete class, with its options
        return cls._from_config(config, **kwargs)
    return cls(config)


class WeightsNotCached(RuntimeError):
    """Weights the model needs are not in the model cache, and no network reaches their download."""


CACHE_LAYOUT = (
    "fill a model cache and pass --model-cache DIR (the Action's model-cache:), laid out as "
    "DIR/torch/hub/checkpoints/FILE for torchvision and DIR/huggingface/hub/ for timm and Hugging Face"
)
_OFFLINE = (
    "Name or service not known",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Connection refused",
    "offline mode",
    "HF_HUB_OFFLINE",
    "outgoing traffic has been disabled",
)


def _offline(exc: BaseException) -> str | None:
    """The network failure somewhere in an exception's chain (a download attempted without a network), in a line."""
    import socket
    import urllib.error

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        text = str(seen)
        network = isinstance(seen, (urllib.error.URLError, socket.gaierror, ConnectionError))
        hub = type(seen).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError")
        if network or hub or any(marker in text for marker in _OFFLINE):
            return f"{type(seen).__name__}: {text.splitlines()[0] if text else ''}"
        seen = seen.__cause__ or seen.__context__
    return None


def _missing_weights(spec: ModelSpec) -> str:
    """Which weights file was looked for, and where."""
    import os
    import urllib.parse

    import torch

    if spec.torchvision:
        import torchvision.models as tvm

        hub = torch.hub.get_dir()
        for member in _weight_members(tvm, spec.torchvision, spec.kwargs):
            file = os.path.basename(urllib.parse.urlparse(member.url).path)
            folder = os.path.join(hub, "checkpoints")
            if not os.path.isfile(os.path.join(folder, file)):
                # --model-cache given the cache's torch/ folder: TORCH_HOME is then DIR/torch/torch
                above = os.path.join(hub, "..", "..", "hub", "checkpoints", file)
                hint = (
                    f" (it is in {os.path.normpath(os.path.dirname(above))}: give --model-cache the folder that holds "
                    "torch/, not torch/ itself)"
                    if os.path.isfile(above)
                    else ""
                )
                return f"the weights file {file} ({member}) is not in {folder}{hint}"
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    if spec.timm:
        return f"timm's pretrained weights for {spec.timm} are not in {os.path.join(home, 'hub')}"
    if spec.huggingface:
        return f"a file the Hugging Face model needs is not in {spec.huggingface.path or os.path.join(home, 'hub')}"
    return f"the model downloads weights that are not in the cache (TORCH_HOME={os.environ.get('TORCH_HOME', '')})"


def build(spec: ModelSpec, base_dir: Path, device: str, eval_mode: bool) -> BuiltModel:
    try:
        return _build(spec, base_dir, device, eval_mode)
    except pickle.UnpicklingError as exc:
        what = f"exported program {spec.exported}" if spec.exported else "the model's weights"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unpicklable(
            f"{what} hold Python objects that only pickle can load ({first}); reprocheck never unpickles "
            "(torch.load runs with weights_only=True): save a plain state dict of tensors, or export without "
            "custom objects"
        ) from None
    except Exception as exc:
        offline = _offline(exc)
        if offline is None:
            raise
        null = " or set weights: null (and weights_backbone: null) for random init" if spec.torchvision else ""
        raise WeightsNotCached(
            f"{_missing_weights(spec)}, and no network reaches the download ({offline}): {CACHE_LAYOUT};{null}"
        ) from None


def _build(spec: ModelSpec, base_dir: Path, device: str, eval_mode: bool) -> BuiltModel:
    import torch

    weights = None
    notes: tuple[str, ...] = ()
    if spec.torchvision:
        model, weights, notes = _torchvision(spec)
    elif spec.timm:
        model = _timm(spec)
    elif spec.huggingface:
        model = _huggingface(spec)
    elif spec.factory:
        model = _factory(spec, base_dir)
    elif spec.torchscript:
        model = torch.jit.load(spec.torchscript, map_location=device)
    else:
        assert spec.exported is not None
        model = torch.export.load(spec.exported).module()
    if isinstance(model, torch.nn.Module):
        model = model.to(device)
        if eval_mode:
            try:
                model.eval()
            except NotImplementedError:
                pass  # exported graphs keep the mode they were traced in
    return BuiltModel(module=model, is_detection=_is_detection(model), weights=weights, notes=notes)


def decision_facts(module: Any) -> dict[str, float]:
    """The thresholds a detector decides with (torchvision's `score_thresh` and `nms_thresh`, on the model or its
    `roi_heads`), recorded by each run so that fragility can be judged without the model."""
    facts: dict[str, float] = {}
    for owner in (module, getattr(module, "roi_heads", None)):
        for name in ("score_thresh", "nms_thresh", "detections_per_img"):
            value = getattr(owner, name, None) if owner is not None else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in facts:
                facts[name] = float(value)
    return facts
