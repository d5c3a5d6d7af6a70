"""The torch half of `reprocheck diagnose` (host/analyses/diagnose.py runs the runs and decides): the check's own
comparison of some runs' outputs, and what traced runs say (the first diverging module and op, which modules ran in
training mode, the parameters' digests; a targeted re-run's kept tensors compared). Answers are plain data."""

from __future__ import annotations

from pathlib import Path

from ..protocol import CompareAnswer, CompareRequest, RuleProblem, TracesAnswer, TracesRequest
from ..results import RuleError
from . import compare, outputs
from .probe import read_meta
from .trace_diff import captured, first_divergence


def compare_runs(request: CompareRequest) -> CompareAnswer:
    """The check's own comparison of these outputs (the first expected), or the `compare:` rule that fits none."""
    loaded = [outputs.load(Path(p)) for p in request.runs]
    try:
        comparison = compare.compare_runs(loaded, request.check.tolerance, rules=request.check.compare)
    except RuleError as exc:
        return CompareAnswer(rule_error=RuleProblem(pattern=exc.pattern, message=str(exc), unfit=exc.unfit))
    return CompareAnswer(comparison=comparison)


def traces(request: TracesRequest) -> TracesAnswer:
    """Each trace's training modules and parameter digests; with diverge, what differs first between the first two;
    with captured, the targeted re-run's kept tensors compared."""
    runs = [Path(d) for d in request.runs]
    if request.captured:
        module, op, note = captured(runs[0], runs[1], request.tolerance)
        return TracesAnswer(module_result=module, op_result=op, capture_note=note)
    meta = [read_meta(d) for d in runs]
    divergence = first_divergence(runs[0], runs[1]) if request.diverge else None
    return TracesAnswer(
        divergence=divergence, training=[m["training"] for m in meta], params=[m["params"] for m in meta]
    )
