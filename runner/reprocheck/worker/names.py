"""Model and weight names checked against the installed torchvision, timm or transformers before anything runs
(see host/checks/names.py): unknown names with did-you-mean, weights that are not the model's, `compare:` rules
that cannot fit the model family's outputs. Runs inside the worker."""

from __future__ import annotations

import importlib
from typing import Any

from ..protocol import NameProblem, NameProblems, NameRequest, NameRequests
from .models import MISSING


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
        arch, dot, _ = (req.model or "").partition(".")
        if dot and arch in names:  # a pretrained tag: resnet18.a1_in1k
            tags = sorted(lib.list_pretrained(f"{arch}.*"))
            if req.model in tags or not tags:
                return []
            return [
                unknown(
                    "timm", f"pretrained tag of {arch}", req.model or "", tags, f"see timm.list_pretrained('{arch}.*')"
                )
            ]
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
    return problems or _hf_problems(i, req, lib)


def _hf_problems(i: int, req: NameRequest, lib: Any) -> list[NameProblem]:
    """A transformers config's keys against its class, and the keyword inputs against the model's forward."""
    from .signature import forward_parameters, keyword_problems, transformers_kwargs, unknown_config_keys

    if req.model_type is not None:
        config_class = type(lib.AutoConfig.for_model(req.model_type))
    else:  # a folder: its config.json (plain JSON) names the class
        try:
            config_class = type(
                lib.AutoConfig.from_pretrained(req.path, local_files_only=True, trust_remote_code=False)
            )
        except Exception:
            return []  # an unreadable folder is the run's to report, with its own cause
    model_class = getattr(lib, req.class_ or "")
    if not hasattr(model_class, "forward"):  # an Auto class: the concrete class for this config
        try:
            model_class = model_class._model_mapping[config_class]
        except (AttributeError, KeyError):
            message = f"{req.class_} has no model for {config_class.__name__} (choose another class)"
            return [NameProblem(index=i, key="huggingface.class", message=message)]
    problems = [
        NameProblem(index=i, key=f"huggingface.config.{k}", message=m)
        for k, m in unknown_config_keys(req.config or {}, config_class, model_class)
    ]
    accepted = forward_parameters(model_class.forward, transformers_kwargs(lib))
    problems += [
        NameProblem(index=i, key=f"input.kwargs.{name}", message=m)
        for name, m in keyword_problems(req.keywords, accepted, f"{model_class.__name__}.forward")
    ]
    return problems


def name_problems(request: NameRequests) -> NameProblems:
    """Model and weight names checked against the installed torchvision, timm or transformers (see
    host/checks/names.py)."""
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


def torchvision_family(tvm: Any, name: str) -> str:
    """Which torchvision family a model belongs to (its output's form): classification unless listed elsewhere."""
    families = ("detection", "segmentation", "video", "optical_flow")
    return next((f for f in families if name in tvm.list_models(module=getattr(tvm, f))), "classification")


def _rule_problems(tvm: Any, name: str, rules: dict[str, Any]) -> list[tuple[str, str]]:
    """`compare:` rules checked against the output layout of a torchvision model's family, before anything runs:
    a rule that can only find outputs of another form (a detection rule on a classifier) is a spec error now, and so
    is a pattern that matches nothing, except for detectors (their paths depend on the number of images)."""
    import torch

    from ..spec import CompareRule
    from .outputs import flatten
    from .tasks import RuleError, select

    family = torchvision_family(tvm, name)
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
