"""A check's outcome: its status (pass, fail, error, each with its exit code) and everything the reports say of it
(CheckResult and its variants' VariantResult, plain data that the checks write and the reports read), and a
session's exit code."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import golden_result
from ...diagnosis import Divergence
from ...pictures import Picture
from ...protocol import Distance
from ...results import Comparison, Fragile
from ..exitcodes import ExitCode
from ..workers.run_result import RunResult
from .grades import OutputGrade


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"

    @property
    def exit_code(self) -> ExitCode:
        return {Status.PASS: ExitCode.OK, Status.FAIL: ExitCode.MISMATCH, Status.ERROR: ExitCode.RUN_FAILED}[self]


class VariantKind(str, enum.Enum):
    BATCH = "batch"
    THREADS = "threads"
    DEVICE = "device"
    COMPILE = "compile"  # the model as deployed: graded against the float64 reference, as `upgrade` grades stacks
    DTYPE = "dtype"
    AUTOCAST = "autocast"

    @property
    def graded(self) -> bool:
        return self in (VariantKind.COMPILE, VariantKind.DTYPE, VariantKind.AUTOCAST)


class VariantStatus(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"  # its device is not on this machine: neither a pass nor a failure


@dataclass(frozen=True)
class VariantResult:
    """One variant compared with the check's run 1. Truthy when it matched."""

    kind: VariantKind
    variant: str  # e.g. "1" for one thread
    reference: str  # what run 1 was, in the same words: "2"
    status: VariantStatus
    comparison: Comparison | None = None
    run: RunResult | None = None
    cause: str = ""  # why it could not be compared, or was skipped
    left_out: tuple[str, ...] = ()  # batch: outputs that are not per-sample, so not compared
    ignored: tuple[str, ...] = ()  # outputs the spec's `ignore:` left out (of every comparison)
    distances: tuple[Distance, ...] = ()  # from the float64 reference, for the outputs that differ
    # compile, dtype, autocast: each output graded (identical, noise, task, changed) and the grade required
    grades: tuple[OutputGrade, ...] = ()
    require: str = ""
    compiled: dict[str, Any] | None = None  # the compile's settings, time and graph breaks
    repeat: Comparison | None = None  # compile: its own runs compared, run to run (they must agree)
    # threads, device, when it differs: where a traced run at each setting first differs (module, op); or why not
    change: Divergence | None = None
    change_note: str = ""

    def __bool__(self) -> bool:
        return self.status is VariantStatus.PASS

    @property
    def label(self) -> str:
        return f"{self.kind.value}={self.variant}"

    def names(self) -> tuple[str, str]:
        """How the two sides read in a report: run 1 at the check's setting, and the variant."""
        if self.kind is VariantKind.BATCH:
            return f"run 1 (batch of {self.reference})", f"batch of {self.variant}"
        if self.kind is VariantKind.DEVICE:
            return f"run 1 ({self.reference})", self.variant
        if self.kind.graded:
            return f"run 1 ({self.reference})", self.label
        plural = {"1": ""}
        return (
            f"run 1 ({self.reference} thread{plural.get(self.reference, 's')})",
            f"{self.variant} thread{plural.get(self.variant, 's')}",
        )


@dataclass(frozen=True)
class CheckResult:
    name: str
    file: Path
    line: int
    status: Status
    seed: int
    device: str
    runs_requested: int
    runs: tuple[RunResult, ...]
    comparison: Comparison | None
    recipe: dict[str, Any]
    config_hash: str
    duration: float
    notes: tuple[str, ...] = field(default=())
    baseline: golden_result.BaselineResult | None = None
    invariance: tuple[VariantResult, ...] = ()
    invariance_line: int = 0  # where `invariance:` is written, for annotations
    fragile: tuple[Fragile, ...] = ()  # run 1's outputs on a decision boundary (compare: fragile)
    fragile_policy: str = "warn"  # warn | fail | off
    compare_line: int = 0  # where `compare:` is written, for annotations
    error: str = ""  # why the runs could not be judged (a compare rule that fits no output)
    error_line: int = 0  # the spec line it is about
    ignored: tuple[str, ...] = ()  # outputs `ignore:` left out of every comparison
    blind: tuple[str, ...] = ()  # compared outputs that are constant: the check cannot see a change there
    blind_all: bool = False  # every compared output is constant (`strict: true` fails the check)
    pictures: tuple[Picture, ...] = ()  # --pictures: what differs, drawn (file names in the pictures folder)

    @property
    def failed_run(self) -> RunResult | None:
        return next((r for r in self.runs if not r.ok), None)

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        return next((r.fingerprint for r in self.runs if r.fingerprint), None)


def exit_code(results: list[CheckResult]) -> ExitCode:
    return max((r.status.exit_code for r in results), default=ExitCode.OK)
