"""Model sources -> nn.Module on the check's device. Runs inside the worker."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol import NameProblem, NameProblems, NameRequest, NameRequests
from ..spec import ModelSpec


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
    if hf.path is not None:
        return cls.from_pretrained(hf.path, local_files_only=True)
    config = dict(hf.config or {})
    config = transformers.AutoConfig.for_model(config.pop("model_type"), **config)
    if hasattr(cls, "from_config"):  # the Auto classes
        return cls.from_config(config)
    return cls(config)


def build(spec: ModelSpec, base_dir: Path, device: str, eval_mode: bool) -> BuiltModel:
    import torch

    weights = None
    if spec.torchvision:
        model, weights = _torchvision(spec)
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
    return BuiltModel(module=model, is_detection=_is_detection(model), weights=weights)


def _zoo_problems(i: int, req: NameRequest) -> list[NameProblem]:
    """A timm name or a transformers class and model_type checked against the installed library."""
    import difflib

    def unknown(key: str, what: str, name: str, names: list[str], see: str) -> NameProblem:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else see
        return NameProblem(index=i, key=key, message=f"unknown {what} '{name}' ({hint})")

    source = req.source
    try:
        lib = importlib.import_module("timm" if source == "timm" else "transformers")
    except ImportError:
        return [NameProblem(index=i, key=source, message=MISSING["timm" if source == "timm" else "transformers"])]
    if source == "timm":
        names = sorted(lib.list_models())
        if req.model in names:
            return []
        return [unknown("timm", "timm model", req.model or "", names, "see timm.list_models()")]
    problems = []
    classes = sorted(n for n in dir(lib) if n[:1].isupper())
    if req.class_ not in classes:
        problems.append(
            unknown("huggingface.class", "transformers class", req.class_ or "", classes, "see transformers")
        )
    if req.model_type is not None:
        types = sorted(lib.CONFIG_MAPPING.keys())
        if req.model_type not in types:
            problems.append(
                unknown("huggingface.config.model_type", "model_type", req.model_type, types, "a config's type")
            )
    return problems


def name_problems(request: NameRequests) -> NameProblems:
    """Model and weight names checked against the installed torchvision, timm or transformers (see
    host/names.py)."""
    import difflib

    problems: list[NameProblem] = []
    if any(r.source == "torchvision" for r in request.requests):
        import torchvision.models as tvm

        names = set(tvm.list_models())
    for i, req in enumerate(request.requests):
        if req.source != "torchvision":
            problems += _zoo_problems(i, req)
            continue
        name = req.model or ""
        if name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
            problems.append(
                NameProblem(index=i, key="torchvision", message=f"unknown torchvision model '{name}' ({hint})")
            )
            continue
        for kw in ("weights", "weights_backbone"):
            value = getattr(req, kw)
            if value is not None:
                problem = _weights_problem(tvm, name, kw, value)
                if problem:
                    problems.append(NameProblem(index=i, key=kw, message=problem))
        if req.compare:
            problems += [
                NameProblem(index=i, key="compare", pattern=p, message=m)
                for p, m in _rule_problems(tvm, name, req.compare)
            ]
    return NameProblems(problems=problems)


def _rule_problems(tvm: Any, name: str, rules: dict[str, Any]) -> list[tuple[str, str]]:
    """`compare:` rules checked against the output layout of a torchvision model's family, before anything runs:
    a rule that can only find outputs of another form (a detection rule on a classifier) is a spec error now, and so
    is a pattern that matches nothing, except for detectors (their paths depend on the number of images)."""
    import torch

    from ..spec import CompareRule
    from .outputs import flatten
    from .tasks import RuleError, select

    family = next(
        (
            f
            for f in ("detection", "segmentation", "video", "optical_flow")
            if name in tvm.list_models(module=getattr(tvm, f))
        ),
        "classification",
    )
    if family == "optical_flow":
        return []  # a list of flow fields: no task form to expect
    if family == "detection":
        layout: Any = [
            {"boxes": torch.zeros(1, 4), "scores": torch.zeros(1), "labels": torch.zeros(1, dtype=torch.int64)}
        ]
    elif family == "segmentation":
        layout = {"out": torch.zeros(1, 2, 2, 2), "aux": torch.zeros(1, 2, 2, 2)}
    else:
        layout = torch.zeros(1, 2)
    try:
        select(flatten(layout), {p: CompareRule.model_validate(r) for p, r in rules.items()})
    except RuleError as exc:
        if exc.unfit or family != "detection":
            message = f"{exc} ({name} is a torchvision {family} model)"
            return [(exc.pattern, message)]
    return []


def _weights_problem(tvm: Any, model: str, kw: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{value!r} is not a weights name (use a string such as DEFAULT, or null)"
    if kw == "weights":
        enum = tvm.get_model_weights(model)
    else:
        import inspect

        builder = tvm.get_model_builder(model)
        ann = inspect.signature(builder).parameters.get("weights_backbone")
        if ann is None:
            return f"{model} takes no weights_backbone (remove it)"
        enum = getattr(ann.annotation, "__args__", (None,))[0]
        if isinstance(ann.annotation, str) or enum is None or not hasattr(enum, "verify"):
            return None  # cannot tell statically; the run reports a bad name
    try:
        enum.verify(value)
    except Exception:
        choices = ", ".join(["DEFAULT", *enum.__members__])
        return f"'{value}' is not a weight of {model} (choose from {choices}, or null for random init)"
    return None


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
