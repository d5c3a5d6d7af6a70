"""What a comparison finds, as value objects: per output (truthy when it passed) and per check. No torch here:
reports render these, and they travel between the two sides as they are (protocol.py)."""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .flake import FlakeRate
from .flake import rate as flake_rate

if TYPE_CHECKING:
    from .spec import ToleranceSpec

SAFETY = 4.0  # calibrate suggests this many times the largest difference observed; remedies draw the same line

# What an output's `total` and `mismatched` count: elements compared elementwise, or what a `compare:` rule judges.
UNITS = ("values", "detections", "samples", "pixels")


class Kind(str, enum.Enum):
    MATCH = "match"
    VALUES = "values"  # same structure, values differ beyond tolerance
    STRUCTURE = "structure"  # shapes, dtypes, keys or lengths differ


class RuleError(ValueError):
    """A `compare:` rule does not fit the outputs: the spec is wrong for this model."""

    def __init__(self, pattern: str, message: str, unfit: bool = False) -> None:
        super().__init__(message)
        self.pattern = pattern
        self.unfit = unfit  # it matched outputs, none of its form (not: it matched nothing)


@dataclass(frozen=True)
class Tolerance:
    atol: float = 0.0
    rtol: float = 0.0
    pattern: str | None = None  # the per-output rule that supplied it

    def __str__(self) -> str:
        return f"atol={self.atol:g}, rtol={self.rtol:g}"


def tolerance_for(path: str, spec: ToleranceSpec) -> Tolerance:
    """The tolerance for one output path: the first per-output glob that matches, else the check's."""
    for pattern, rule in spec.outputs.items():
        if fnmatch.fnmatchcase(path, pattern):
            return Tolerance(
                atol=spec.atol if rule.atol is None else rule.atol,
                rtol=spec.rtol if rule.rtol is None else rule.rtol,
                pattern=pattern,
            )
    return Tolerance(spec.atol, spec.rtol)


@dataclass(frozen=True)
class TaskResult:
    """An output compared the way its task is judged (compare: outputs: ... as: detection | classification |
    segmentation). `stats` holds counts, extremes and the findings (missing, extra, label changes, changed
    samples, changed regions) as plain data; report/tasks.py turns them into sentences."""

    task: str
    pattern: str  # the compare glob that selected it
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Fragile:
    """Run 1's output matches, but sits on a decision boundary that another device, thread count or library
    version may cross: a score at the threshold, a near-tie in NMS or top-k, pixels with two near-equal classes."""

    path: str
    task: str
    reason: str  # "score-threshold" | "nms" | "top-k" | "pixels"
    count: int  # detections, pairs, samples or pixels on the edge
    margin: float
    threshold: float | None = None  # the model's threshold, where one applies
    items: tuple[dict[str, Any], ...] = ()  # the closest cases, at most ITEMS


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
    total: int = 0  # in `unit`: values, or (a task output) detections, samples or pixels
    mismatched: int = 0  # of `total`, never more
    max_abs_diff: float = 0.0  # elementwise outputs only: a task output's measure is max_matched_diff
    max_rel_diff: float = 0.0
    mean_abs_diff: float = 0.0
    first_index: tuple[int, ...] | None = None
    expected_value: float | None = None  # at first_index
    obtained_value: float | None = None
    nan_count: int = 0  # NaNs at the same positions (counted as equal)
    exact: bool = False  # integer/bool: compared exactly
    needed_atol: float | None = None  # smallest atol that passes with this rtol (None: none does)
    needed_rtol: float | None = None  # smallest rtol that passes with this atol
    magnitude: float = 0.0  # largest finite |expected| (computed when values differ)
    detail: str = ""
    runs_differing: int = 0  # later runs in which this output differs from run 1
    distinct_results: int = 0  # distinct contents over all runs, by hash (0: not counted, two runs only)
    task: TaskResult | None = None  # compared as a detection, classification or segmentation output
    nonfinite: int = 0  # of `mismatched`: NaN or infinity in one run where the other has another value
    python: bool = False  # a Python number in the output: compared, but it says nothing of the model's tensors
    members: tuple[str, ...] = ()  # a detection: the tensor leaves it judged (else the output is its own leaf)
    unit: str = "values"  # what total and mismatched count (UNITS)
    # A task output: the largest value difference between matched items (a box coordinate in pixels or a score of
    # matched detections; a class score of any sample or pixel); None: nothing matched, or no values to measure.
    max_matched_diff: float | None = None

    def __bool__(self) -> bool:
        return self.kind is Kind.MATCH

    @property
    def mismatch_percent(self) -> float:
        return 100.0 * self.mismatched / self.total if self.total else 0.0

    @property
    def leaves(self) -> tuple[str, ...]:
        return self.members or (self.path,)

    @property
    def judged_by_task(self) -> bool:
        """Compared by a `compare:` rule (its counts are detections, samples or pixels), not elementwise."""
        return self.unit != "values"

    @property
    def largest_diff(self) -> float | None:
        """The largest value difference measured: an elementwise output's max_abs_diff, a task output's
        max_matched_diff; None where none was measured (a structure change, nothing matched)."""
        if self.kind is Kind.STRUCTURE:
            return None
        return self.max_matched_diff if self.judged_by_task else self.max_abs_diff

    def blind_atol(self) -> bool:
        """The smallest passing atol, with calibrate's margin (SAFETY), reaches the output's own scale (its largest
        |value|): a tolerance that large passes any output of that scale, so no remedy proposes it."""
        return self.needed_atol is not None and self.max_abs_diff > 0 and self.needed_atol * SAFETY >= self.magnitude

    def blind_rtol(self) -> bool:
        """The smallest passing rtol, with the same margin, reaches 1: as large as each value itself."""
        return self.needed_rtol is not None and self.needed_rtol > 0 and self.needed_rtol * SAFETY >= 1.0

    def severity(self) -> tuple[int, float, float]:
        rank = {Kind.MATCH: 0, Kind.VALUES: 1, Kind.STRUCTURE: 2}[self.kind]
        if self.task is not None:  # task findings (missing detections, changed samples) count before magnitudes
            return (rank, float(self.mismatched), self.largest_diff or 0.0)
        return (rank, self.max_abs_diff, float(self.mismatched))


@dataclass(frozen=True)
class Comparison:
    """Every output of a check, each the worst over all obtained runs. Truthy when all passed."""

    outputs: tuple[OutputResult, ...]
    unused_patterns: tuple[str, ...] = ()
    runs_compared: int = 0  # all runs, run 1 included
    runs_differing: int = 0  # later runs that differ from run 1 in any output
    distinct_results: int = 0  # distinct output sets over all runs, by hash (0: not counted)

    @property
    def flake(self) -> FlakeRate:
        """How often a later run differs from run 1, with its exact binomial interval."""
        return flake_rate(self.runs_differing, max(0, self.runs_compared - 1))

    def __bool__(self) -> bool:
        return all(self.outputs)

    @property
    def failures(self) -> tuple[OutputResult, ...]:
        return tuple(o for o in self.outputs if not o)

    @property
    def max_abs_diff(self) -> float:
        """Elementwise outputs' largest |difference| only (0 for task outputs): see largest_diff."""
        return max((o.max_abs_diff for o in self.outputs if not o.judged_by_task), default=0.0)

    @property
    def largest_diff(self) -> float | None:
        """The largest value difference measured in any output: elementwise, or between a task output's matched
        items; None when none was measured (every output a structure change, or task outputs with nothing matched)."""
        found = [d for d in (o.largest_diff for o in self.outputs) if d is not None]
        return max(found, key=lambda d: math.inf if math.isnan(d) else d) if found else None


def output_from_dict(d: dict[str, Any]) -> OutputResult:
    fields = dict(d)
    fields["kind"] = Kind(d["kind"])
    fields["tolerance"] = Tolerance(**d["tolerance"])
    fields["shape"] = tuple(d["shape"])
    fields["first_index"] = tuple(d["first_index"]) if d["first_index"] is not None else None
    fields["task"] = TaskResult(**d["task"]) if d.get("task") else None
    fields["members"] = tuple(d.get("members", ()))
    return OutputResult(**fields)
