"""The torch half of `reprocheck diagnose` (host/diagnose.py runs the runs and decides): the check's own
comparison of some runs' outputs, and what two traced runs say (the first diverging module, which modules ran in
training mode, the parameters' digests). Answers are plain data for the host."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..results import RuleError, comparison_to_dict
from ..spec import Check, ToleranceSpec
from . import compare, outputs
from .probe import first_divergence, load_trace


def compare_runs(request: dict[str, Any]) -> dict[str, Any]:
    """{"check": a Check dump, "runs": [outputs.pt, ...]} -> {"comparison": ...} or {"rule_error": {...}}."""
    check = Check.model_validate(request["check"], strict=False)
    loaded = [outputs.load(Path(p)) for p in request["runs"]]
    try:
        comparison = compare.compare_runs(loaded, check.tolerance, rules=check.compare)
    except RuleError as exc:
        return {"rule_error": {"pattern": exc.pattern, "message": str(exc), "unfit": exc.unfit}}
    return {"comparison": comparison_to_dict(comparison)}


def traces(request: dict[str, Any]) -> dict[str, Any]:
    """{"runs": [run dir, ...], "tolerance": a ToleranceSpec dump, "diverge": bool} -> each trace's training modules
    and parameter digests, and (with diverge) the first module whose output differs between the first two."""
    loaded = [load_trace(Path(d)) for d in request["runs"]]
    divergence = None
    if request.get("diverge"):
        found = first_divergence(loaded[0], loaded[1], ToleranceSpec.model_validate(request["tolerance"]))
        divergence = dataclasses.asdict(found) if found is not None else None
    return {
        "divergence": divergence,
        "training": [t["training"] for t in loaded],
        "params": [t["params"] for t in loaded],
    }
