"""The verdict, on the torch side (in the zygote, or a helper worker): the runs' outputs compared (run 1
expected), then the golden checked or written; plain data back to reprocheck's own process."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def verdict(request: dict[str, Any]) -> dict[str, Any]:
    """Compare the runs' outputs (run 1 expected), then check or write the golden; with `fragile` set, judge run 1's
    outputs for decision boundaries. A `compare:` rule that fits no output ends it early with `error`."""
    import dataclasses

    from .. import drift
    from ..spec import CompareSpec, ToleranceSpec
    from . import baseline, compare, outputs
    from .tasks import RuleError, select
    from .tasks.fragile import fragility

    runs = request["runs"]
    tolerance = ToleranceSpec.model_validate(request["tolerance"])
    rules = CompareSpec.model_validate(request.get("compare") or {})
    first = outputs.load(Path(runs[0]["outputs"])) if runs else None
    comparison = None
    left_out: list[str] = []
    answer: dict[str, Any] = {"comparison": None, "golden": None, "left_out": left_out, "fragile": [], "notes": []}
    try:
        if first is not None and request.get("batch"):  # a batch variant: cut both to the samples they share
            from .batching import per_sample

            n, b = request["batch"]
            first, other, left_out[:] = per_sample(first, n, outputs.load(Path(runs[1]["outputs"])), b)
            comparison = compare.compare_runs([first, other], tolerance, [r["index"] for r in runs], rules)
        elif first is not None:
            # once: for the comparison and for fragility
            selection = select(first, rules.outputs, answer["notes"])
            if len(runs) >= 2:
                # One later run in memory at a time: up to 1,000 runs compare in the memory of two.
                later = _loaded(runs[1:], bool(request.get("discard")))
                comparison = compare.compare_stream(first, later, tolerance, runs[0]["index"], rules, selection)
            if request.get("fragile", "off") != "off" and selection:
                found, fragile_notes = fragility(first, selection, request.get("facts") or {})
                answer["notes"] += fragile_notes
                answer["fragile"] = [dataclasses.asdict(f) for f in found]
    except RuleError as exc:
        return {**answer, "error": {"pattern": exc.pattern, "message": str(exc)}}
    if comparison is not None:
        answer["comparison"] = compare.comparison_to_dict(comparison)
        answer["notes"] += _quiet_value_changes(comparison)
    if request.get("golden") and first is not None:
        job = drift.GoldenJob(**request["golden"])
        agreed = comparison is None or bool(comparison)
        try:
            golden = baseline.apply(job, first, request.get("fingerprint"), runs_agree=agreed and request["all_ok"])
        except RuleError as exc:
            return {**answer, "error": {"pattern": exc.pattern, "message": f"against the baseline: {exc}"}}
        answer["golden"] = drift.result_to_dict(golden)
    return answer


def _loaded(runs: list[dict[str, Any]], discard: bool) -> Any:
    """Each later run's outputs, loaded one at a time, or its fold where the zygote already compared it; with
    `discard`, a file deleted once in memory (the disk holds run 1 and the runs not yet compared)."""
    import json

    from . import outputs
    from .compare import FOLDED, Folded

    for r in runs:
        path = Path(r["outputs"])
        folded = path.parent / FOLDED
        if folded.exists() and not path.exists():
            yield r["index"], Folded.from_dict(json.loads(folded.read_text()))
            continue
        loaded = outputs.load(path)
        if discard:
            path.unlink(missing_ok=True)
        yield r["index"], loaded


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


def distances(request: dict[str, Any]) -> list[dict[str, Any]]:
    """For each output that differs between run 1 and a variant: each side's largest distance from the float64
    reference, computed in float64."""
    import torch

    from . import outputs

    ref, expected, obtained = (outputs.load(Path(request[k])) for k in ("reference", "expected", "obtained"))
    if request.get("batch"):  # a batch variant: all three cut to the samples they share
        from .batching import per_sample

        n, b = request["batch"]
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
        out.append(
            {
                "path": path,
                "expected": float((e.double() - r64).abs().nan_to_num(nan=float("inf")).max()),
                "obtained": float((o.double() - r64).abs().nan_to_num(nan=float("inf")).max()),
            }
        )
    return out
