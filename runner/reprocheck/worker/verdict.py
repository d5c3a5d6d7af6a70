"""The verdict, on the torch side (in the zygote, or a helper worker): the runs' outputs compared (run 1
expected), then the golden checked or written; plain data back to reprocheck's own process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..protocol import Distance, Distances, DistancesRequest, RuleProblem, RunRef, VerdictAnswer, VerdictRequest
from ..results import Fragile
from ..tree import IGNORED, ROOT_NAME


def verdict(request: VerdictRequest) -> VerdictAnswer:
    """Compare the runs' outputs (run 1 expected), then check or write the golden; with `fragile` set, judge run 1's
    outputs for decision boundaries. A `compare:` rule that fits no output ends it early with `error`."""
    from . import compare, goldens, outputs
    from .tasks import RuleError, select
    from .tasks.fragile import fragility

    runs, tolerance, rules = request.runs, request.tolerance, request.compare
    first = outputs.load(Path(runs[0].outputs)) if runs else None
    comparison = None
    left_out: list[str] = []
    notes: list[str] = []
    fragile: list[Fragile] = []
    try:
        if first is not None and request.batch:  # a batch variant: cut both to the samples they share
            from .batching import per_sample

            n, b = request.batch
            first, other, left_out = per_sample(first, n, outputs.load(Path(runs[1].outputs)), b)
            comparison = compare.compare_runs([first, other], tolerance, [r.index for r in runs], rules)
        elif first is not None:
            # once: for the comparison and for fragility
            selection = select(first, rules.outputs, notes)
            if len(runs) >= 2:
                # One later run in memory at a time: up to 1,000 runs compare in the memory of two.
                later = _loaded(runs[1:], request.discard)
                comparison = compare.compare_stream(first, later, tolerance, runs[0].index, rules, selection)
            if request.fragile != "off" and selection:
                found, fragile_notes = fragility(first, selection, request.facts)
                notes += fragile_notes
                fragile = list(found)
    except RuleError as exc:
        error = RuleProblem(pattern=exc.pattern, message=str(exc), unfit=exc.unfit)
        return VerdictAnswer(left_out=left_out, fragile=fragile, notes=notes, error=error)
    if comparison is not None:
        notes += _quiet_value_changes(comparison)
    golden = None
    if request.golden is not None and first is not None:
        agreed = comparison is None or bool(comparison)
        try:
            golden = goldens.apply(request.golden, first, request.fingerprint, runs_agree=agreed and request.all_ok)
        except RuleError as exc:
            error = RuleProblem(pattern=exc.pattern, message=f"against the baseline: {exc}", unfit=exc.unfit)
            return VerdictAnswer(comparison=comparison, left_out=left_out, fragile=fragile, notes=notes, error=error)
    root = first is not None and first.tree == {"t": "value", "path": ROOT_NAME, "value": IGNORED}
    return VerdictAnswer(
        comparison=comparison, golden=golden, left_out=left_out, root_ignored=root, fragile=fragile, notes=notes
    )


def _loaded(runs: list[RunRef], discard: bool) -> Any:
    """Each later run's outputs, loaded one at a time, or its fold where the zygote already compared it; with
    `discard`, a file deleted once in memory (the disk holds run 1 and the runs not yet compared)."""
    from . import outputs
    from .compare import FOLDED, Folded

    for r in runs:
        path = Path(r.outputs)
        folded = path.parent / FOLDED
        if folded.exists() and not path.exists():
            yield r.index, Folded.read(folded)
            continue
        loaded = outputs.load(path)
        if discard:
            path.unlink(missing_ok=True)
        yield r.index, loaded


SCORE_NOTE = 1e-3  # a passing class-score output whose values move more than this, relative to their scale, is noted


def _quiet_value_changes(comparison: Any) -> list[str]:
    """Task outputs that passed (the classes agree) while their scores moved far: said, never silent."""
    notes = []
    for o in comparison.outputs:
        if o.task is None or o.task.task == "detection" or not o or not o.max_abs_diff:
            continue
        if o.max_abs_diff > SCORE_NOTE * max(1.0, o.magnitude):
            fix = (
                "add score_atol to its compare rule to bound them"
                if o.task.task == "classification"
                else "compare it elementwise (tolerance:) to bound them"
            )
            notes.append(
                f"{o.path}: the {o.task.task} agrees, but its scores differ by up to {o.max_abs_diff:.3g} (largest "
                f"|score| {o.magnitude:.3g}); {fix}"
            )
    return notes


def distances(request: DistancesRequest) -> Distances:
    """For each output that differs between run 1 and a variant: each side's largest distance from the float64
    reference, computed in float64."""
    import torch

    from . import outputs

    ref, expected, obtained = (outputs.load(Path(p)) for p in (request.reference, request.expected, request.obtained))
    if request.batch:  # a batch variant: all three cut to the samples they share
        from .batching import per_sample

        n, b = request.batch
        ref, _, _ = per_sample(ref, n, obtained, b)
        expected, obtained, _ = per_sample(expected, n, obtained, b)
    out = []
    for path, e in expected.tensors.items():
        o, r = obtained.tensors.get(path), ref.tensors.get(path)
        if o is None or r is None or not (e.shape == o.shape == r.shape) or not e.is_floating_point() or not e.numel():
            continue
        if torch.equal(e, o):
            continue
        r64 = r.double()
        far = [float((x.double() - r64).abs().nan_to_num(nan=float("inf")).max()) for x in (e, o)]
        out.append(Distance(path=path, expected=far[0], obtained=far[1]))
    return Distances(items=out)
