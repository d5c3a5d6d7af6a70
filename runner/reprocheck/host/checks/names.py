"""Names a worker checks before anything runs: each zoo check's model and weight names (and a torchvision check's
`compare:` rules against its family's outputs), asked once per distinct question (`name_requests`), and the
answers located in the spec (`name_errors`). This process never imports torch: a worker answers."""

from __future__ import annotations

from ...protocol import NameProblem, NameRequest
from ...spec import LoadedCheck, SpecError

ZOOS = ("torchvision", "timm", "huggingface")  # sources whose names a worker checks before anything runs


def _name_request(c: LoadedCheck) -> NameRequest:
    m = c.check.model
    if m.timm:
        return NameRequest(source="timm", model=m.timm)
    if m.huggingface:
        config = m.huggingface.config
        return NameRequest(
            source="huggingface",
            class_=m.huggingface.class_,
            model_type=config.get("model_type") if config else None,
            config=config,
            path=m.huggingface.path,
            keywords=list(c.check.input.kwargs or {}),
        )
    kwargs = m.kwargs
    # checked against the model family's output layout
    compare = c.check.compare.model_dump(mode="json")["outputs"] if c.check.compare.outputs else None
    return NameRequest(
        model=m.torchvision,
        weights=kwargs.get("weights"),
        weights_backbone=kwargs.get("weights_backbone"),
        compare=compare,
    )


def name_requests(loaded: list[LoadedCheck]) -> list[NameRequest]:
    """What must be checked against the zoos, once per distinct question."""
    unique: dict[str, NameRequest] = {}
    for c in loaded:
        if c.check.model.source in ZOOS:
            request = _name_request(c)
            unique.setdefault(request.to_json(), request)
    return list(unique.values())


def name_errors(loaded: list[LoadedCheck], problems: list[NameProblem]) -> list[SpecError]:
    """A worker's answer to `name_requests` -> a located error for every check that asked."""
    keys = [r.to_json() for r in name_requests(loaded)]
    errors = []
    for c in loaded:
        if c.check.model.source not in ZOOS:
            continue
        index = keys.index(_name_request(c).to_json())
        for p in problems:
            if p.index == index:
                key = p.key  # torchvision, timm, huggingface[.class...], weights, weights_backbone or compare
                if key == "compare":
                    where: tuple[str, ...] = ("compare", "outputs", p.pattern or "")
                elif key.startswith("input."):
                    where = tuple(key.split("."))
                elif key.split(".")[0] in ZOOS:
                    where = ("model", *key.split("."))
                else:
                    where = ("model", "kwargs", key)
                errors.append(SpecError(c.file, c.key_line(*where), ".".join(where), p.message))
    return errors
