"""The upgrade canary's grading, on the torch side (a helper worker on the --to stack): each check's outputs on the
old stack and the new one, with the float64 reference made on the old stack, graded output by output.

Grades, best first (upgrade.py decides which are safe):
  identical   every tensor of the output bitwise equal (NaN payloads and the sign of zero included);
  noise       every floating tensor no farther from the float64 reference than the old stack is, in RMSE and in
              largest difference: dist(new, ref) <= k * dist(old, ref), where each element of new may first be off
              by an allowance, ulps * machine epsilon of the dtype * the largest |reference value| of its magnitude
              class (masking values 10^4 times larger than the rest are a class of their own); every other tensor
              equal;
  task        the check's own rules judge them the same: its `compare:` rule (detection, classification,
              segmentation) for a task output, its `baseline:` (else `tolerance:`) tolerance for any other;
  changed     anything else (structure, values, task findings), with the comparison's statistics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..protocol import GradedCheck, GradedOutput, GradeJob, GradeRequest, Grades

GRADES = ("identical", "noise", "task", "changed")
MASK_GAP = 1e4  # a jump in |reference| values this large splits them into magnitude classes (masking values)


def _bitwise(a: Any, b: Any) -> bool:
    import torch

    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = a.detach().cpu().contiguous().reshape(-1), b.detach().cpu().contiguous().reshape(-1)
    if a.dtype == torch.bool:
        return bool(torch.equal(a, b))
    return bool(torch.equal(a.view(torch.uint8), b.view(torch.uint8)))


def _distance(x: Any, ref: Any, allow: Any = None) -> tuple[float, float]:
    """RMSE and largest |x - ref| in float64, less each element's own rounding allowance `allow` (when given); NaN
    where both are NaN counts 0, NaN in one only counts inf."""
    import torch

    x, r = x.double(), ref.double()
    d = (x - r).abs()
    d = torch.where(x == r, torch.zeros_like(d), d)  # equal infinities
    d = torch.where(torch.isnan(x) & torch.isnan(r), torch.zeros_like(d), d)
    d = torch.nan_to_num(d, nan=math.inf)
    if allow is not None:
        d = (d - allow).clamp(min=0)
    if not d.numel():
        return 0.0, 0.0
    top = float(d.max())
    if top in (0.0, math.inf):
        return top, top
    return top * float((d / top).pow(2).mean().sqrt()), top  # scaled: huge values (masking) cannot overflow


def _scales(a: Any) -> Any:
    """Per element, the magnitude its rounding is measured against: the largest |reference value| of its own
    magnitude class. A rounding error scales with the values a result was summed from, not with the result (a
    cancellation near 0), hence the largest value rather than each element's own; but a masking value (-1e9,
    finfo.min) 10^4 times larger than everything below it forms a class of its own, so it never excuses a change of
    the real values beside it."""
    import torch

    scale = torch.full_like(a, float(a.max()) if a.numel() else 1.0)
    positive = a[a > 0]
    if positive.numel() > 1:
        ordered = positive.sort().values
        gaps = ordered[1:] / ordered[:-1]
        i = int(gaps.argmax())
        if float(gaps[i]) >= MASK_GAP:
            cut = float(ordered[i])
            scale = torch.where(a <= cut, torch.full_like(a, cut), scale)
    return scale


def _eps(dtype: Any) -> float:
    import torch

    return float(torch.finfo(dtype).eps)


def noise(old: Any, new: Any, ref: Any, k: float, ulps: float) -> dict[str, float] | None:
    """The within-noise test for one floating tensor; None when the three cannot be set side by side. Only positions
    finite in all three are measured: a NaN or inf on the old stack would make the bound infinite, so wherever any
    of them is not finite the new stack must hold exactly what the old one does (else: not within noise)."""
    import torch

    if not (old.shape == new.shape == ref.shape) or not old.is_floating_point() or old.dtype != new.dtype:
        return None
    eps_old = _eps(old.dtype)
    old, new, r = old.double(), new.double(), ref.double()  # float8 has no isfinite or ==
    finite = torch.isfinite(old) & torch.isfinite(new) & torch.isfinite(r)
    o, n = old[~finite], new[~finite]
    same_elsewhere = bool(((o == n) | (o.isnan() & n.isnan())).all())
    scales = _scales(r[finite].abs())
    allow = ulps * eps_old * scales
    # The reference must be what the old side rounds: a model can compute something else in float64 (it sees the
    # dtype), and a reference that far off would excuse any change. sqrt(eps) of the scale is far beyond rounding.
    plausible = bool(((old[finite] - r[finite]).abs() <= math.sqrt(eps_old) * scales).all())
    eps = float(allow.max()) if allow.numel() else 0.0
    rmse_old, max_old = _distance(old[finite], r[finite])
    rmse_new, max_new = _distance(new[finite], r[finite])
    over_rmse, over_max = _distance(new[finite], r[finite], allow)
    # What is reported: the raw distances and bounds that hold them whenever the test passes (the allowance's RMS and
    # largest value added, by the triangle inequality).
    rms_allow = _distance(allow, allow.new_zeros(allow.shape))[0]
    bound_rmse, bound_max = k * rmse_old + rms_allow, k * max_old + eps
    return {
        "rmse_old": rmse_old,
        "rmse_new": rmse_new,
        "max_old": max_old,
        "max_new": max_new,
        "bound_rmse": bound_rmse,
        "bound_max": bound_max,
        "eps": eps,
        "nonfinite_differ": float(not same_elsewhere),
        "reference_off": float(not plausible),
        "ok": float(plausible and same_elsewhere and over_rmse <= k * rmse_old and over_max <= k * max_old),
    }


def _members(path: str, keys: list[str], own: set[str]) -> list[str]:
    """The tensors one output covers: itself, or (a task output) the leaves under it that are no output of their own."""
    if path in keys:
        return [path]
    prefix = f"{path}." if path else ""
    return [k for k in keys if k.startswith(prefix) and k not in own]


def _load(path: str) -> Any:
    """A golden (upgrade) or a run's outputs (an invariance variant)."""
    from . import goldens, outputs

    return outputs.load(Path(path)) if path.endswith(".pt") else goldens.load(Path(path))[0]


def _cast_like(new: Any, old: Any) -> Any:
    """`new`'s floating tensors in the dtype of `old`'s tensor at the same path."""
    from ..tree import Outputs

    tensors = dict(new.tensors)
    for key, t in tensors.items():
        o = old.tensors.get(key)
        if o is not None and t.is_floating_point() and o.is_floating_point() and t.dtype != o.dtype:
            tensors[key] = t.to(o.dtype)
    return Outputs(tree=new.tree, tensors=tensors)


def grade_check(job: GradeJob) -> GradedCheck:
    from ..spec import ToleranceSpec
    from . import compare
    from .tasks import RuleError

    old, new = _load(job.from_), _load(job.to)
    ref = _load(job.reference) if job.reference else None
    if job.cast:  # a dtype or autocast variant is graded in the dtypes the check itself computes in
        new = _cast_like(new, old)
    rules, own = job.compare, job.tolerance
    try:  # exact first (what differs at all), then under the check's own rules
        comparison = compare.compare_runs([old, new], ToleranceSpec(), labels=[1, 2], rules=rules)
        judged = {o.path: o for o in compare.compare_runs([old, new], own, labels=[1, 2], rules=rules).outputs}
    except RuleError as exc:
        return GradedCheck(name=job.name, error=f"compare rule {exc.pattern!r}: {exc}")
    keys = sorted(old.tensors)
    paths = {o.path for o in comparison.outputs}
    graded = []
    for o in comparison.outputs:
        members = _members(o.path, keys, paths)
        tests: list[dict[str, Any]] = []
        grade = "changed"
        if o.kind is not compare.Kind.STRUCTURE and members and all(m in new.tensors for m in members):
            if all(_bitwise(old.tensors[m], new.tensors[m]) for m in members):
                grade = "identical"
            elif ref is not None and all(m in ref.tensors for m in members):
                for m in members:
                    a, b = old.tensors[m], new.tensors[m]
                    if not a.is_floating_point():
                        tests.append({"path": m, "ok": float(_bitwise(a, b))})
                        continue
                    t = noise(a, b, ref.tensors[m], job.k, job.ulps)
                    tests.append({"path": m, **(t or {"ok": 0.0})})
                if tests and all(t["ok"] for t in tests):
                    grade = "noise"
        by_rules = judged.get(o.path)
        rule = ""
        if grade == "changed" and by_rules is not None and by_rules:
            grade = "task"
            rule = f"{job.tolerance_name} ({by_rules.tolerance})" if o.task is None else f"its {o.task.task} rule"
        graded.append(GradedOutput(grade=grade, result=o, noise=tests, rule=rule))
    return GradedCheck(name=job.name, outputs=graded)


def grade(request: GradeRequest) -> Grades:
    return Grades(checks=[grade_check(job) for job in request.checks])
