"""`reprocheck init`'s questions to torch: for a model named by its source, the input that fits it (the weights'
transforms, timm's pretrained config, a Hugging Face config's sizes, a factory model's first layer) and the model
keyword arguments that build it offline. The host writes the spec from the answer (host/commands/init.py)."""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import Any

from ..protocol import ScaffoldAnswer, ScaffoldRequest

SIDE = 224  # an image side when nothing says otherwise


def _random(shape: list[int], **more: Any) -> dict[str, Any]:
    return {"random": {"shape": shape, **more}}


def _unknown(what: str, name: str, names: list[str]) -> ScaffoldAnswer:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return ScaffoldAnswer(
        problem=f"unknown {what} '{name}'" + (f" (did you mean {', '.join(close)}?)" if close else "")
    )


FIRST_LAYERS = ("Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding")
PAIR = "takes two images: write `input: {tensor: pair.pt}` holding a list of two [1, 3, H, W] tensors"


def _torchvision(name: str) -> ScaffoldAnswer:
    import inspect

    import torchvision.models as tvm

    from .names import torchvision_family

    names = tvm.list_models()
    if name not in names:
        return _unknown("torchvision model", name, names)
    family = torchvision_family(tvm, name)
    kwargs: dict[str, Any] = {"weights": None}
    if "weights_backbone" in inspect.signature(tvm.get_model_builder(name)).parameters:
        kwargs["weights_backbone"] = None
    notes = [f"torchvision {family} model; random init (weights: null) needs no download"]
    if family == "optical_flow":
        return ScaffoldAnswer(problem=f"{name} {PAIR}")
    side = SIDE
    transforms = tvm.get_model_weights(name).DEFAULT.transforms() if tvm.get_model_weights(name) else None
    crop = getattr(transforms, "crop_size", None)
    if isinstance(crop, (list, tuple)) and crop:
        side = int(crop[0])
    if family == "video":
        return ScaffoldAnswer(input=_random([1, 3, 16, 112, 112]), kwargs=kwargs, notes=notes)
    if family == "detection":
        kwargs["score_thresh"] = 0.01  # random weights score low: keep some detections to compare
        notes.append("a low score_thresh keeps detections to compare under random init")
        return ScaffoldAnswer(input=_random([1, 3, 320, 320]), kwargs=kwargs, notes=notes)
    return ScaffoldAnswer(input=_random([1, 3, side, side]), kwargs=kwargs, notes=notes)


def _timm(name: str) -> ScaffoldAnswer:
    import timm

    names = timm.list_models()
    if name not in names and name.partition(".")[0] not in names:
        return _unknown("timm model", name, names)
    model = timm.create_model(name, pretrained=False)
    size = list(getattr(model, "pretrained_cfg", {}).get("input_size") or (3, SIDE, SIDE))
    return ScaffoldAnswer(
        input=_random([1, *size]),
        kwargs={"pretrained": False},
        notes=["random init (pretrained: false)"],
    )


def _huggingface(req: ScaffoldRequest) -> ScaffoldAnswer:
    import transformers

    from .signature import forward_parameters, transformers_kwargs

    cls = getattr(transformers, req.name, None)
    if cls is None:
        return _unknown("transformers class", req.name, [n for n in dir(transformers) if n[:1].isupper()])
    if req.path:
        config = transformers.AutoConfig.from_pretrained(req.path, local_files_only=True, trust_remote_code=False)
    else:
        given = dict(req.config or {})
        config = transformers.AutoConfig.for_model(given.pop("model_type"), **given)
    model_class = cls if hasattr(cls, "forward") else cls._model_mapping[type(config)]
    accepted = forward_parameters(model_class.forward, transformers_kwargs(transformers)) or []
    main = getattr(model_class, "main_input_name", "input_ids")
    vocab = int(getattr(config, "vocab_size", None) or 100)
    ids = _random([1, 16], dtype="int64", low=0, high=vocab)
    inputs: dict[str, Any] = {}
    if main == "input_ids":
        inputs["input_ids"] = ids
        if "attention_mask" in accepted:
            inputs["attention_mask"] = _random([1, 16], dtype="int64", low=1, high=2)
    elif main == "pixel_values":
        side = getattr(config, "image_size", SIDE)
        side = int(side[0] if isinstance(side, (list, tuple)) else side)
        inputs["pixel_values"] = _random([1, int(getattr(config, "num_channels", 3)), side, side])
    elif main == "input_values":
        inputs["input_values"] = _random([1, 16000])
    elif main == "input_features":
        inputs["input_features"] = _random([1, int(getattr(config, "num_mel_bins", 80)), 3000])
    else:
        return ScaffoldAnswer(problem=f"{model_class.__name__} takes {main}: write its input by hand")
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in accepted:
        inputs["decoder_input_ids"] = _random([1, 4], dtype="int64", low=0, high=vocab)
    return ScaffoldAnswer(input={"kwargs": inputs}, notes=[f"{model_class.__name__}: its forward takes {main}"])


def _factory(req: ScaffoldRequest) -> ScaffoldAnswer:
    import torch

    module_name, _, attr = req.name.partition(":")
    sys.path.insert(0, req.base_dir)
    try:
        build: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0]:
            raise
        return ScaffoldAnswer(problem=f"factory {req.name}: No module named '{exc.name}' in {req.base_dir}")
    for part in attr.split("."):
        build = getattr(build, part)
    torch.manual_seed(0)
    model = build()
    first = next(
        (
            m
            for m in model.modules()
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Embedding))
        ),
        None,
    )
    if isinstance(first, torch.nn.Linear):
        shape = [2, first.in_features]
    elif isinstance(first, torch.nn.Embedding):
        return ScaffoldAnswer(input=_random([2, 16], dtype="int64", low=0, high=first.num_embeddings))
    elif isinstance(first, torch.nn.Conv1d):
        shape = [2, first.in_channels, 64]
    elif isinstance(first, torch.nn.Conv3d):
        shape = [1, first.in_channels, 8, 32, 32]
    elif isinstance(first, torch.nn.Conv2d):
        shape = [1, first.in_channels, SIDE, SIDE]
    else:
        return ScaffoldAnswer(
            input=_random([2, 8]),
            notes=["no first layer to read the input from: set the shape your model takes"],
        )
    return ScaffoldAnswer(input=_random(shape), notes=[f"input shaped for its first layer, {type(first).__name__}"])


def scaffold(req: ScaffoldRequest) -> ScaffoldAnswer:
    try:
        if req.source == "torchvision":
            return _torchvision(req.name)
        if req.source == "timm":
            return _timm(req.name)
        if req.source == "huggingface":
            return _huggingface(req)
        return _factory(req)
    except ImportError as exc:
        return ScaffoldAnswer(problem=f"{exc.name or exc} is not installed here (pip install {exc.name or 'it'})")
    except Exception as exc:  # the model's own code: its error, in a line
        first = str(exc).splitlines()[0] if str(exc) else ""
        return ScaffoldAnswer(problem=f"{req.source} {req.name}: {type(exc).__name__}: {first}")
