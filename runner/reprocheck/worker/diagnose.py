"""The torch half of `reprocheck diagnose` (host/analyses/diagnose.py runs the runs and decides): the check's own
comparison of some runs' outputs, and what two traced runs say (the first diverging module, which modules ran in
training mode, the parameters' digests). Answers are plain data for the host."""

from __future__ import annotations

from pathlib import Path

from ..protocol import CompareAnswer, CompareRequest, RuleProblem, TracesAnswer, TracesRequest
from ..results import RuleError
from . import compare, outputs
from .probe import first_divergence, load_trace


def compare_runs(request: CompareRequest) -> CompareAnswer:
    """The check's own comparison of these outputs (the first expected), or the `compare:` rule that fits none."""
    loaded = [outputs.load(Path(p)) for p in request.runs]
    try:
        comparison = compare.compare_runs(loaded, request.check.tolerance, rules=request.check.compare)
    except RuleError as exc:
        return CompareAnswer(rule_error=RuleProblem(pattern=exc.pattern, message=str(exc), unfit=exc.unfit))
    return CompareAnswer(comparison=comparison)


def traces(request: TracesRequest) -> TracesAnswer:
    """Each trace's training modules and parameter digests, and (with diverge) the first module whose output
    differs between the first two."""
    loaded = [load_trace(Path(d)) for d in request.runs]
    divergence = first_divergence(loaded[0], loaded[1], request.tolerance) if request.diverge else None
    return TracesAnswer(
        divergence=divergence, training=[t["training"] for t in loaded], params=[t["params"] for t in loaded]
    )
