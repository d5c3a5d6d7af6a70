"""calibrate: the smallest tolerances that pass everything observed, ready to paste.

The check runs N times (default 20) with bitwise tolerances, plus the invariance variants it declares. For each
output, the largest absolute difference observed (between run 1 and any later run; separately, between run 1 and
any variant) is multiplied by a safety margin (SAFETY), and never set below what the output's dtype can resolve at
its scale (the dtype's machine epsilon times the output's largest magnitude): a tolerance finer than that is noise.
Outputs whose suggested atol is within a factor of SPREAD of the smallest share one check-wide `atol`; larger ones
get their own entry under `outputs:`. A structure change, an integer/bool output that changes, or NaN/inf in one
run only cannot be fixed by any tolerance: calibrate says so and exits 1. Nor can a difference whose suggestion
reaches the output's own magnitude (its largest |value| in either run): such a tolerance would pass any output, so
the check would be blind. A sign-of-zero difference (-0.0 vs 0.0) gets the smallest tolerance that passes it: above
0, which turns the bitwise comparison into a numeric one, at the dtype's resolution.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ... import __version__
from ...results import SAFETY, Kind, OutputResult
from ..checks.outcome import CheckResult
from ..report import shape
from ..report.tasks import ceiling

# SAFETY (results.py): times the largest difference observed; the run's remedies draw the same line
SPREAD = 10.0  # outputs within this factor of the smallest suggestion share the check-wide atol
EPS = {
    "float64": 2.220446049250313e-16,
    "float32": 1.1920929e-07,
    "float16": 9.765625e-04,
    "bfloat16": 7.8125e-03,
    "complex128": 2.220446049250313e-16,
    "complex64": 1.1920929e-07,
}


@dataclass(frozen=True)
class Need:
    """What one output needs, from what was observed."""

    path: str
    observed: float  # the largest absolute difference
    where: str  # where it was observed: "runs" or a variant such as "batch=1"
    floor: float  # the dtype's resolution at the output's scale
    atol: float  # the suggestion
    sign_of_zero: bool = False  # only -0.0 vs 0.0 differ: any atol above 0 passes


@dataclass(frozen=True)
class Block:
    """A tolerance block: check-wide atol plus per-output entries."""

    atol: float = 0.0
    outputs: tuple[Need, ...] = ()
    needs: tuple[Need, ...] = ()

    def yaml(self, indent: str) -> list[str]:
        lines = [f"{indent}atol: {_fmt(self.atol)}"]
        if self.outputs:
            lines.append(f"{indent}outputs:")
            lines += [f"{indent}  {json.dumps(n.path)}: {{atol: {_fmt(n.atol)}}}" for n in self.outputs]
        return lines

    def as_model(self) -> shape.Tolerances:
        return shape.Tolerances(atol=self.atol, outputs={n.path: {"atol": n.atol} for n in self.outputs})


@dataclass(frozen=True)
class Calibration:
    check: CheckResult
    runs: Block
    variants: Block | None  # None: the check declares no invariance variant
    impossible: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return not self.impossible


def _fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}".replace("e-0", "e-").replace("e+0", "e+")


def _round_up(x: float) -> float:
    """Up to two significant digits, never down: the suggestion must still pass what was observed."""
    if x <= 0 or not math.isfinite(x):
        return max(x, 0.0)
    return float(ceiling(x, 2))


def _need(o: OutputResult, where: str) -> Need | None:
    if o.kind is Kind.MATCH or o.task is not None:  # a compare rule judges it, not atol
        return None
    floor = EPS.get(o.dtype, 0.0) * o.magnitude
    if o.max_abs_diff == 0:
        if o.kind is not Kind.VALUES or o.exact:
            return None
        # Only the sign of zero differs: the smallest tolerance that passes is any above 0.
        smallest = max(floor, EPS.get(o.dtype, EPS["float64"]))
        return Need(o.path, 0.0, where, floor, _round_up(smallest), sign_of_zero=True)
    return Need(o.path, o.max_abs_diff, where, floor, _suggest(o))


def _suggest(o: OutputResult) -> float:
    return _round_up(max(o.max_abs_diff * SAFETY, EPS.get(o.dtype, 0.0) * o.magnitude))


def _unfixable(o: OutputResult, where: str) -> str | None:
    if o.task is not None and not o:
        return (
            f"{o.path}: compared as {o.task.task} by its compare rule, and it changes ({where}); a tolerance does not "
            "apply to it (`reprocheck run` says what changed)"
        )
    if o.kind is Kind.STRUCTURE:
        return f"{o.path}: the structure changes ({where}): {o.detail}"
    if o.kind is Kind.VALUES and o.exact:
        return f"{o.path}: an integer/bool output changes ({where}), compared exactly whatever the tolerance"
    if o.kind is Kind.VALUES and o.needed_atol is None:
        return f"{o.path}: NaN or infinity in one run only ({where})"
    if o.kind is Kind.VALUES and o.max_abs_diff > 0 and _suggest(o) >= o.magnitude:
        return (
            f"{o.path}: differs by up to {o.max_abs_diff:.3g} ({where}) while its largest |value| is "
            f"{o.magnitude:.3g}: a tolerance of {_fmt(_suggest(o))} would pass any output, so the check would be blind"
        )
    return None


def _block(observed: list[tuple[OutputResult, str]]) -> Block:
    worst: dict[str, Need] = {}
    for o, where in observed:
        need = _need(o, where)
        if need is not None and (need.path not in worst or need.atol > worst[need.path].atol):
            worst[need.path] = need
    if not worst:
        return Block()
    needs = sorted(worst.values(), key=lambda n: n.atol)
    smallest = needs[0].atol
    shared = [n for n in needs if n.atol <= smallest * SPREAD]
    return Block(
        atol=max(n.atol for n in shared), outputs=tuple(n for n in needs if n not in shared), needs=tuple(needs)
    )


def calibrate(result: CheckResult) -> Calibration:
    """The tolerances `result` (run with bitwise tolerances) would have needed, or why none would do."""
    runs: list[tuple[OutputResult, str]] = []
    if result.comparison is not None:
        runs = [(o, "runs") for o in result.comparison.outputs]
    variants = [(o, v.label) for v in result.invariance if v.comparison is not None for o in v.comparison.outputs]
    impossible = [text for o, where in runs + variants if (text := _unfixable(o, where))]
    return Calibration(
        check=result,
        runs=_block(runs),
        variants=_block(variants) if result.invariance else None,
        impossible=tuple(dict.fromkeys(impossible)),
    )


def render(c: Calibration) -> str:
    """The ready-to-paste block, with what it is based on as comments."""
    r = c.check
    variants = ", ".join(v.label for v in r.invariance)
    lines = [
        f"# reprocheck calibrate: {r.name} ({r.file}:{r.line}): {len(r.runs)} runs"
        + (f", variants {variants}" if variants else "")
    ]
    if c.impossible:
        lines.append("# no tolerance can make this check pass:")
        lines += [f"#   {text}" for text in c.impossible]
        return "\n".join(lines) + "\n"
    for title, block in (("runs", c.runs), ("variants", c.variants)):
        if block is None:
            continue
        if not block.needs:
            others = "every other output " if block is c.runs and _judged(r) else ""
            lines.append(f"# {title}: {others}bitwise identical, no tolerance needed")
        for n in block.needs:
            if n.sign_of_zero:
                lines.append(
                    f"# {title}: {n.path} differs only in the sign of zero (-0.0 vs 0.0, {n.where}); suggested "
                    f"{_fmt(n.atol)}, the smallest useful tolerance: any atol above 0 compares numbers, not bits"
                )
                continue
            lines.append(
                f"# {title}: {n.path} differs by up to {n.observed:.3g} ({n.where}); "
                f"suggested {_fmt(n.atol)} = {SAFETY:g}x that"
                + (f", floor {n.floor:.2g} (dtype resolution at its scale)" if n.floor > n.observed * SAFETY else "")
            )
    judged = _judged(r)
    if judged:
        lines.append(f"# judged by their compare rules, within them, so outside this block: {', '.join(judged)}")
    lines.append("tolerance:")
    lines += c.runs.yaml("  ")
    if c.variants is not None:
        lines += ["invariance:", "  tolerance:"] + c.variants.yaml("    ")
    return "\n".join(lines) + "\n"


def _judged(r: CheckResult) -> list[str]:
    outs = r.comparison.outputs if r.comparison is not None else ()
    return sorted({f"{o.path} (as {o.task.task})" for o in outs if o.task is not None})


def as_model(c: Calibration) -> shape.Calibrated:
    r = c.check
    return shape.Calibrated(
        check=r.name,
        file=str(r.file),
        seed=r.seed,
        runs=len(r.runs),
        variants=[v.label for v in r.invariance],
        safety=SAFETY,
        possible=bool(c),
        impossible=list(c.impossible),
        tolerance=c.runs.as_model() if c else None,
        invariance_tolerance=c.variants.as_model() if c and c.variants is not None else None,
        observed=[
            shape.Observed(block=title, path=n.path, max_abs_diff=n.observed, where=n.where, floor=n.floor, atol=n.atol)
            for title, block in (("tolerance", c.runs), ("invariance", c.variants))
            if block is not None
            for n in block.needs
        ],
    )


def report(calibrations: list[Calibration]) -> shape.CalibrationReport:
    return shape.CalibrationReport(
        tool="reprocheck",
        version=__version__,
        schema_version=1,
        kind="calibrate",
        checks=[as_model(c) for c in calibrations],
    )
