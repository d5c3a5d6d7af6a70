"""One check end to end: isolated runs -> comparison -> a CheckResult. Exit codes live here."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import baseline as baselines
from . import compare, execute, outputs, recipe
from .exitcodes import ExitCode
from .spec import LoadedCheck


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
    runs: tuple[execute.RunResult, ...]
    comparison: compare.Comparison | None
    recipe: dict[str, Any]
    config_hash: str
    duration: float
    notes: tuple[str, ...] = field(default=())
    baseline: baselines.BaselineResult | None = None

    @property
    def failed_run(self) -> execute.RunResult | None:
        return next((r for r in self.runs if not r.ok), None)

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        return next((r.fingerprint for r in self.runs if r.fingerprint), None)


def exit_code(results: list[CheckResult]) -> ExitCode:
    return max((r.status.exit_code for r in results), default=ExitCode.OK)


def workdir_for(root: Path, index: int, lc: LoadedCheck) -> Path:
    # The index keeps same-named checks from two files apart.
    return root / f"{index + 1:03d}-{lc.name}"


@dataclass(frozen=True)
class BaselineOptions:
    root: Path
    update: bool = False
    spec_root: Path = Path(".")  # goldens are laid out by the spec's path relative to this


class Interrupted(Exception):
    """reprocheck failed inside a check: the checks before it completed and can still be reported."""

    def __init__(self, completed: list[CheckResult], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.completed, self.cause = completed, cause


def _baseline(
    lc: LoadedCheck,
    options: BaselineOptions,
    status: Status,
    first: outputs.Outputs,
    fingerprint: dict[str, Any] | None,
) -> baselines.BaselineResult:
    if options.update:
        if status is not Status.PASS:
            return baselines.BaselineResult(
                status=baselines.BaselineStatus.NOT_UPDATED,
                golden=baselines.golden_path(options.root, lc, options.spec_root),
                message="baseline not written: the runs themselves differ, so there is no single right answer to store",
            )
        return baselines.update(lc, options, first, fingerprint)
    return baselines.check_against(lc, options, first, fingerprint)


def run_check(
    lc: LoadedCheck,
    prepared: execute.Prepared,
    progress: execute.Progress | None = None,
    baseline: BaselineOptions | None = None,
) -> CheckResult:
    start = time.perf_counter()
    check = lc.check
    runs = prepared.run(progress)
    ok = [r for r in runs if r.ok]
    loaded = [outputs.load(r.outputs_path) for r in ok]
    comparison = None
    if len(ok) >= 2:
        comparison = compare.compare_runs(loaded, check.tolerance, [r.index for r in ok])
    if len(ok) < len(runs) or len(runs) < check.runs:
        status = Status.ERROR
    elif comparison is not None and not comparison:
        status = Status.FAIL
    else:
        status = Status.PASS
    golden = None
    if baseline is not None and status is not Status.ERROR:
        golden = _baseline(lc, baseline, status, loaded[0], ok[0].fingerprint)
        if not golden and status is Status.PASS:
            status = Status.FAIL
    notes = []
    if comparison is not None:
        notes += [
            f"tolerance pattern {p!r} matches no output (outputs: {', '.join(o.path for o in comparison.outputs[:5])})"
            for p in comparison.unused_patterns
        ]
    return CheckResult(
        name=check.name,
        file=lc.file,
        line=lc.line,
        status=status,
        seed=check.seed,
        device=next((r.device for r in ok if r.device), check.device),
        runs_requested=check.runs,
        runs=tuple(runs),
        comparison=comparison,
        recipe=recipe.describe(check.seed, check.recipe, recipe.resolve_threads(check.recipe)),
        config_hash=lc.config_hash,
        duration=time.perf_counter() - start,
        notes=tuple(notes),
        baseline=golden,
    )


def run_all(
    checks: list[LoadedCheck],
    workroot: Path,
    isolation: execute.Isolation,
    on_start: Callable[[int, LoadedCheck], None] | None = None,
    on_run: Callable[[LoadedCheck, execute.RunResult], None] | None = None,
    on_done: Callable[[CheckResult], None] | None = None,
    first: execute.Prepared | None = None,
    baseline: BaselineOptions | None = None,
) -> list[CheckResult]:
    """Run checks in order. `first` is the first check already prepared (its worker warming up)."""
    results: list[CheckResult] = []
    for i, lc in enumerate(checks):
        if on_start:
            on_start(i, lc)
        progress = (lambda r, lc=lc: on_run(lc, r)) if on_run else None
        try:
            prepared = (
                first
                if (i == 0 and first is not None)
                else execute.Prepared(lc, workdir_for(workroot, i, lc), isolation)
            )
            result = run_check(lc, prepared, progress, baseline)
        except Exception as exc:
            raise Interrupted(results, exc) from exc
        results.append(result)
        if on_done:
            on_done(result)
    return results
