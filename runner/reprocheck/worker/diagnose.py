"""The torch half of `reprocheck diagnose` (host/analyses/diagnose.py runs the runs and decides): the check's own
comparison of some runs' outputs, and what traced runs say (the first diverging module and op, which modules ran in
training mode, the parameters' digests; a targeted re-run's kept tensors compared). Answers are plain data."""

from __future__ import annotations

from pathlib import Path

from ..diagnosis import Divergence
from ..protocol import CompareAnswer, CompareRequest, RuleProblem, TracesAnswer, TracesRequest
from ..results import RuleError
from . import compare, outputs
from .probe import read_meta
from .trace_diff import Unreadable, captured, first_divergence


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
        try:
            module, op, note = captured(runs[0], runs[1], request.tolerance)
        except Unreadable as exc:
            return TracesAnswer(capture_note=f"the targeted re-run's capture is unreadable ({exc})")
        return TracesAnswer(module_result=module, op_result=op, capture_note=note)
    meta = [read_meta(d) for d in runs]
    try:
        divergence = first_divergence(runs[0], runs[1]) if request.diverge else None
    except Unreadable as exc:  # the model shares the traced run's process: its files are only evidence
        why = f"a trace is unreadable ({exc}): no module or op is named"
        divergence = Divergence(call=0, module="", type="", result=None, found=False, stopped=why)
    return TracesAnswer(divergence=divergence, training=[m[0] for m in meta], params=[m[1] for m in meta])
