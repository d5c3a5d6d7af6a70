"""Nested outputs -> per-output results. No printing here: reports render these objects.

Rules (the comparison contract, also in the README):
  * structure first: container types, keys, lengths, shapes, dtypes; a difference is a
    `structure` mismatch with a description, never a crash;
  * floats: |obtained - expected| <= atol + rtol * |expected|, elementwise; with the default
    atol = rtol = 0 the comparison is bitwise, so -0.0 vs 0.0 is a mismatch (the sign of zero
    shows a different computation, and flips 1/x or atan2 downstream);
  * integers and bools: exactly, whatever the tolerance;
  * NaN at the same positions in both counts as equal (and is counted); NaN in one only is
    a mismatch; infinities are equal only when equal;
  * per-output tolerances: glob patterns over paths, the first matching pattern wins, and a
    rule that sets only atol or rtol takes the other from the check.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .outputs import Outputs
from .spec import ToleranceSpec

CHUNK = 1 << 24  # elements per slice on the slow path: bounds temporary memory


class Kind(str, enum.Enum):
    MATCH = "match"
    VALUES = "values"  # same structure, values differ beyond tolerance
    STRUCTURE = "structure"  # shapes, dtypes, keys or lengths differ


@dataclass(frozen=True)
class Tolerance:
    atol: float = 0.0
    rtol: float = 0.0
    pattern: str | None = None  # the per-output rule that supplied it

    def __str__(self) -> str:
        return f"atol={self.atol:g}, rtol={self.rtol:g}"


@dataclass(frozen=True)
class OutputResult:
    """One output leaf (or container) compared between an expected and an obtained run.

    Truthy when it passed."""

    path: str
    kind: Kind
    tolerance: Tolerance
    obtained_run: int = 2
    expected_run: int = 1
    shape: tuple[int, ...] = ()
    dtype: str = ""
    total: int = 0
    mismatched: int = 0
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    mean_abs_diff: float = 0.0
    first_index: tuple[int, ...] | None = None
    expected_value: float | None = None  # at first_index
    obtained_value: float | None = None
    nan_count: int = 0  # NaNs at the same positions (counted as equal)
    exact: bool = False  # integer/bool: compared exactly
    needed_atol: float | None = None  # smallest atol that passes with this rtol (None: none does)
    needed_rtol: float | None = None  # smallest rtol that passes with this atol
    detail: str = ""

    def __bool__(self) -> bool:
        return self.kind is Kind.MATCH

    @property
    def mismatch_percent(self) -> float:
        return 100.0 * self.mismatched / self.total if self.total else 0.0

    def severity(self) -> tuple[int, float, int]:
        return ({Kind.MATCH: 0, Kind.VALUES: 1, Kind.STRUCTURE: 2}[self.kind], self.max_abs_diff, self.mismatched)


@dataclass(frozen=True)
class Comparison:
    """Every output of a check, each the worst over all obtained runs. Truthy when all passed."""

    outputs: tuple[OutputResult, ...]
    unused_patterns: tuple[str, ...] = ()
    runs_compared: int = 0

    def __bool__(self) -> bool:
        return all(self.outputs)

    @property
    def failures(self) -> tuple[OutputResult, ...]:
        return tuple(o for o in self.outputs if not o)

    @property
    def max_abs_diff(self) -> float:
        return max((o.max_abs_diff for o in self.outputs), default=0.0)


def tolerance_for(path: str, spec: ToleranceSpec) -> Tolerance:
    for pattern, rule in spec.outputs.items():
        if fnmatch.fnmatchcase(path, pattern):
            return Tolerance(
                atol=spec.atol if rule.atol is None else rule.atol,
                rtol=spec.rtol if rule.rtol is None else rule.rtol,
                pattern=pattern,
            )
    return Tolerance(spec.atol, spec.rtol)


# --- structure ------------------------------------------------------------------------------------


def _walk(exp: dict[str, Any], obt: dict[str, Any], path: str, found: list[tuple[str, str]], pairs: list[str]) -> None:
    """Collect (path, problem) for structural differences and the leaf paths present in both."""
    where = path or "output"
    if exp["t"] != obt["t"]:
        found.append((where, f"a {_kind_name(exp)} in the expected run but a {_kind_name(obt)} in the obtained one"))
        return
    t = exp["t"]
    if t in ("tensor", "scalar"):
        pairs.append(exp["path"])
    elif t == "value":
        if exp["value"] != obt["value"]:
            found.append((where, f"value {exp['value']!r} expected, {obt['value']!r} obtained"))
    elif t == "dict":
        ek = [k for k, _ in exp["items"]]
        ok = [k for k, _ in obt["items"]]
        ek_set, ok_set = set(ek), set(ok)
        missing = [k for k in ek if k not in ok_set]
        extra = [k for k in ok if k not in ek_set]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing keys " + ", ".join(missing))
            if extra:
                parts.append("extra keys " + ", ".join(extra))
            found.append((where, "; ".join(parts) + " in the obtained run"))
        obt_items = dict(obt["items"])
        for k, node in exp["items"]:
            if k in obt_items:
                _walk(node, obt_items[k], f"{path}.{k}" if path else k, found, pairs)
    else:  # list / tuple
        ne, no = len(exp["items"]), len(obt["items"])
        if ne != no:
            found.append((where, f"length {ne} expected, {no} obtained"))
        for i, (a, b) in enumerate(zip(exp["items"], obt["items"], strict=False)):
            _walk(a, b, f"{path}.{i}" if path else str(i), found, pairs)


def _kind_name(node: dict[str, Any]) -> str:
    return {"tensor": "tensor", "scalar": "number", "value": "string/None"}.get(node["t"], node.get("type", node["t"]))


# --- values ---------------------------------------------------------------------------------------


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
    # A finite sum proves there is no NaN, at a fraction of the cost of counting them.
    if t.numel() == 0 or bool(t.sum().isfinite()):
        return 0
    return int(t.isnan().sum())


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
    mismatched = nan_same = zero_sign = 0
    bitwise = tol.atol == 0 and tol.rtol == 0
    max_abs = max_rel = sum_abs = 0.0
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
        if bool(nonfinite_bad.any()):
            unfixable = True
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
        first_index=index,
        expected_value=_float(e_flat[first]) if first is not None else None,
        obtained_value=_float(o_flat[first]) if first is not None else None,
        nan_count=nan_same,
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


def compare(
    expected: Outputs, obtained: Outputs, spec: ToleranceSpec, runs: tuple[int, int] = (1, 2)
) -> list[OutputResult]:
    """Compare one obtained run with the expected one: structure first, then each shared leaf."""
    problems: list[tuple[str, str]] = []
    pairs: list[str] = []
    _walk(expected.tree, obtained.tree, "", problems, pairs)
    results = [
        OutputResult(
            path=p,
            kind=Kind.STRUCTURE,
            tolerance=tolerance_for(p, spec),
            detail=d,
            expected_run=runs[0],
            obtained_run=runs[1],
        )
        for p, d in problems
    ]
    for p in pairs:
        results.append(compare_tensors(p, expected.tensors[p], obtained.tensors[p], tolerance_for(p, spec), runs))
    return results


def compare_runs(runs: list[Outputs], spec: ToleranceSpec, labels: Iterable[int] | None = None) -> Comparison:
    """Run 1 is expected; every later run is obtained. Each output keeps its worst result."""
    labels = list(labels) if labels is not None else list(range(1, len(runs) + 1))
    worst: dict[str, OutputResult] = {}
    for k in range(1, len(runs)):
        for r in compare(runs[0], runs[k], spec, (labels[0], labels[k])):
            if r.path not in worst or r.severity() > worst[r.path].severity():
                worst[r.path] = r
    paths = list(runs[0].tensors) if runs else []
    order = {p: i for i, p in enumerate(paths)}
    ordered = sorted(worst.values(), key=lambda r: (order.get(r.path, -1), r.path))
    unused = tuple(p for p in spec.outputs if not any(fnmatch.fnmatchcase(x, p) for x in paths))
    return Comparison(outputs=tuple(ordered), unused_patterns=unused, runs_compared=len(runs))


# --- plain data, for the way back from the worker ---------------------------------------------------


def comparison_to_dict(c: Comparison) -> dict[str, Any]:
    return {
        "outputs": [dataclasses.asdict(o) for o in c.outputs],
        "unused_patterns": list(c.unused_patterns),
        "runs_compared": c.runs_compared,
    }


def _output_from_dict(d: dict[str, Any]) -> OutputResult:
    fields = dict(d)
    fields["kind"] = Kind(d["kind"])
    fields["tolerance"] = Tolerance(**d["tolerance"])
    fields["shape"] = tuple(d["shape"])
    fields["first_index"] = tuple(d["first_index"]) if d["first_index"] is not None else None
    return OutputResult(**fields)


def comparison_from_dict(d: dict[str, Any]) -> Comparison:
    return Comparison(
        outputs=tuple(_output_from_dict(o) for o in d["outputs"]),
        unused_patterns=tuple(d["unused_patterns"]),
        runs_compared=d["runs_compared"],
    )
