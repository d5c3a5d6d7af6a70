"""A check's outcome: its status (pass, fail, error, each with its exit code) and everything the reports say of it
(CheckResult, plain data), and a session's exit code."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import drift
from ..results import Comparison, Fragile
from .exitcodes import ExitCode
from .invariance import VariantResult
from .runs import RunResult


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"

    @property
    def exit_code(self) -> ExitCode:
        return {Status.PASS: ExitCode.OK, Status.FAIL: ExitCode.MISMATCH, Status.ERROR: ExitCode.RUN_FAILED}[self]


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
    baseline: drift.BaselineResult | None = None
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

    @property
    def failed_run(self) -> RunResult | None:
        return next((r for r in self.runs if not r.ok), None)

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        return next((r.fingerprint for r in self.runs if r.fingerprint), None)


def exit_code(results: list[CheckResult]) -> ExitCode:
    return max((r.status.exit_code for r in results), default=ExitCode.OK)
