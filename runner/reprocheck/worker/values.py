"""One tensor against another, under a tolerance: the value rules of compare.py, with full statistics
(computed in bounded-memory chunks) and the smallest tolerance that would have passed."""

from __future__ import annotations

import math
from typing import Any

from ..results import Kind, OutputResult, Tolerance

CHUNK = 1 << 24  # elements per slice on the slow path: bounds temporary memory


def _float(x: Any) -> float:
    return float(x.item()) if hasattr(x, "item") else float(x)


def compare_tensors(
    path: str, expected: Any, obtained: Any, tol: Tolerance, runs: tuple[int, int] = (1, 2)
) -> OutputResult:
    import torch

    base = dict(
        path=path,
        tolerance=tol,
        expected_run=runs[0],
        obtained_run=runs[1],
        shape=tuple(expected.shape),
        dtype=str(expected.dtype).replace("torch.", ""),
        total=expected.numel(),
    )
    if expected.dtype != obtained.dtype:
        return OutputResult(
            kind=Kind.STRUCTURE,
            detail=f"dtype {base['dtype']} expected, {str(obtained.dtype).replace('torch.', '')} obtained",
            **base,
        )
    if expected.shape != obtained.shape:
        detail = f"shape {list(expected.shape)} expected, {list(obtained.shape)} obtained"
        if expected.dim() == obtained.dim() and expected.dim() >= 1 and expected.shape[1:] == obtained.shape[1:]:
            detail += (
                f": {expected.shape[0]} vs {obtained.shape[0]} items "
                "(a count mismatch, e.g. a different number of detections)"
            )
        return OutputResult(kind=Kind.STRUCTURE, detail=detail, **base)
    if expected.is_complex():
        expected, obtained = torch.view_as_real(expected), torch.view_as_real(obtained)
    exact = not expected.is_floating_point()
    bitwise = exact or (tol.atol == 0 and tol.rtol == 0)
    # Fast path: bit-identical tensors need no arithmetic.
    if bitwise and _same_bits(expected, obtained):
        nan = 0 if exact else _nan_count(expected)
        return OutputResult(kind=Kind.MATCH, exact=exact, needed_atol=0.0, needed_rtol=0.0, nan_count=nan, **base)
    if exact:
        return _compare_exact(expected, obtained, base)
    return _compare_float(expected, obtained, tol, base)


def _same_bits(expected: Any, obtained: Any) -> bool:
    import torch

    if not expected.is_floating_point():
        return torch.equal(expected, obtained)
    # Compared as integers of the same width: bit for bit (-0.0 is not 0.0, NaN payloads count) and as fast
    # as torch.equal itself.
    as_int = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[expected.element_size()]
    return torch.equal(*(t.contiguous().reshape(-1).view(as_int) for t in (expected, obtained)))


def _nan_count(t: Any) -> int:
    if t.numel() == 0 or not (t.is_floating_point() or t.is_complex()):
        return 0
    # float8 and other narrow types have no sum here: counted in float32, which holds every value they can.
    wide = t.float() if t.is_floating_point() and t.element_size() < 2 else t
    # A finite sum proves there is no NaN, at a fraction of the cost of counting them.
    if bool(wide.sum().isfinite()):
        return 0
    return int(wide.isnan().sum())


def _compare_exact(expected: Any, obtained: Any, base: dict[str, Any]) -> OutputResult:
    import torch

    bad = expected != obtained
    n = int(bad.sum())
    if n == 0:
        return OutputResult(kind=Kind.MATCH, exact=True, needed_atol=0.0, needed_rtol=0.0, **base)
    diff = (expected.double() - obtained.double()).abs()
    first = tuple(int(i) for i in torch.nonzero(bad)[0]) if expected.dim() else ()
    return OutputResult(
        kind=Kind.VALUES,
        exact=True,
        mismatched=n,
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        first_index=first,
        expected_value=_float(expected[first]),
        obtained_value=_float(obtained[first]),
        max_rel_diff=float((diff / expected.double().abs()).nan_to_num(nan=0.0, posinf=math.inf).max()),
        needed_atol=None,
        needed_rtol=None,
        detail="integer/bool outputs must match exactly",
        **base,
    )


def _compare_float(expected: Any, obtained: Any, tol: Tolerance, base: dict[str, Any]) -> OutputResult:
    import torch

    e_flat, o_flat = expected.reshape(-1), obtained.reshape(-1)
    work = torch.float64 if expected.dtype == torch.float64 else torch.float32
    mismatched = nan_same = zero_sign = nonfinite = 0
    bitwise = tol.atol == 0 and tol.rtol == 0
    max_abs = max_rel = sum_abs = 0.0
    magnitude = 0.0  # the largest finite |value| of either run: the scale a tolerance must resolve
    need_atol = need_rtol = 0.0
    unfixable = False  # NaN vs number, inf vs something else: no tolerance passes
    first: int | None = None
    for start in range(0, e_flat.numel(), CHUNK):
        e = e_flat[start : start + CHUNK].to(work)
        o = o_flat[start : start + CHUNK].to(work)
        e_nan, o_nan = e.isnan(), o.isnan()
        finite = e.isfinite() & o.isfinite()
        both_nan = e_nan & o_nan
        nonfinite_bad = ~finite & ~both_nan & (e != o)
        diff = torch.where(finite, (o - e).abs(), torch.zeros((), dtype=work))
        scale = e.abs()
        for side in (e, o):  # the scale across both runs
            if bool(side.isfinite().any()):
                magnitude = max(magnitude, float(side[side.isfinite()].abs().max()))
        bad = (finite & (diff > tol.atol + tol.rtol * scale)) | nonfinite_bad
        if bitwise:
            signs = (e == 0) & (o == 0) & (e.signbit() != o.signbit())
            zero_sign += int(signs.sum())
            bad |= signs
        n_bad = int(bad.sum())
        nan_same += int(both_nan.sum())
        if n_bad and first is None:
            first = start + int(torch.nonzero(bad)[0])
        mismatched += n_bad
        n_nonfinite = int(nonfinite_bad.sum())
        nonfinite += n_nonfinite
        unfixable = unfixable or n_nonfinite > 0
        if diff.numel():
            max_abs = max(max_abs, float(diff.max()))
            sum_abs += float(diff.sum())
            rel = torch.where(scale > 0, diff / scale, torch.where(diff > 0, math.inf, 0.0))
            max_rel = max(max_rel, float(rel.max()))
            need_atol = max(need_atol, float((diff - tol.rtol * scale).max()))
            excess = diff - tol.atol
            need_rtol = max(
                need_rtol, float(torch.where(excess > 0, torch.where(scale > 0, excess / scale, math.inf), 0.0).max())
            )
    kind = Kind.VALUES if mismatched else Kind.MATCH
    if zero_sign and need_atol <= 0:
        need_atol = math.ulp(0.0)  # any positive tolerance accepts a sign-of-zero difference
    index = tuple(int(i) for i in _unravel(first, tuple(expected.shape))) if first is not None else None
    return OutputResult(
        kind=kind,
        mismatched=mismatched,
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        mean_abs_diff=sum_abs / max(1, e_flat.numel()),
        magnitude=magnitude,
        first_index=index,
        expected_value=_float(e_flat[first]) if first is not None else None,
        obtained_value=_float(o_flat[first]) if first is not None else None,
        nan_count=nan_same,
        nonfinite=nonfinite,
        needed_atol=None if unfixable else max(0.0, need_atol),
        needed_rtol=None if unfixable or math.isinf(need_rtol) else need_rtol,
        detail=(
            "NaN or infinity in one run where the other has a different value"
            if unfixable
            else f"{zero_sign} of them -0.0 vs 0.0 (the sign of zero differs; any tolerance > 0 accepts it)"
            if zero_sign
            else ""
        ),
        **base,
    )


def _unravel(flat: int, shape: tuple[int, ...]) -> list[int]:
    out = []
    for dim in reversed(shape):
        out.append(flat % dim if dim else 0)
        flat //= dim if dim else 1
    return list(reversed(out))
