"""How one run ended: a RunResult from the worker's exit status and what it wrote (result.json, its log)."""

from __future__ import annotations

import enum
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...files import open_regular
from ...pictures import printable
from ...protocol import ProtocolError, RunReport


class RunStatus(str, enum.Enum):
    OK = "ok"
    ERROR = "error"  # the model (or building it) raised
    CRASHED = "crashed"  # killed by a signal or exited without a result
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class RunResult:
    index: int  # 1-based
    status: RunStatus
    duration: float
    run_dir: Path
    cause: str = ""  # one line: what went wrong
    details: tuple[str, ...] = ()  # traceback tail or log tail
    stage: str | None = None
    hint: str | None = None
    device: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    fingerprint: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # the run's notes for the report (weights that are not the published file)
    samples: int | None = None  # the input's batch size, where it has one
    facts: dict[str, float] = field(default_factory=dict)  # the model's decision thresholds (models.decision_facts)
    unavailable: bool = False  # failed because its device is not on this machine
    ignored: tuple[str, ...] = ()  # outputs `ignore:` left out (placeholders in the saved outputs)
    ignore_unmatched: tuple[str, ...] = ()  # `ignore:` patterns that matched no output
    every_path: tuple[str, ...] = ()  # the output paths, to show when a pattern matched none
    constants: dict[str, str] = field(default_factory=dict)  # outputs whose elements are all equal: path -> value
    compiled: dict[str, Any] | None = None  # a compile variant: its settings, compile time, graph breaks

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.OK

    @property
    def outputs_path(self) -> Path:
        return self.run_dir / "outputs.pt"


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


LOG_TAIL_BYTES = 64 * 1024  # what is read from the end of a log: a model may print gigabytes


def log_tail(path: Path, lines: int = 12) -> tuple[str, ...]:
    """The last lines of a worker's log, printable: the log is the model's to write (or to replace with a FIFO)."""
    try:
        with open_regular(path, sys.maxsize) as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - LOG_TAIL_BYTES))
            text = f.read(LOG_TAIL_BYTES).decode(errors="replace")
    except OSError:
        return ()
    return tuple(said(line) for line in text.rstrip().splitlines()[-lines:])


def said(text: str) -> str:
    """Text the model chose (an exception's message, a log line), whole, with no control character that could
    move the cursor, colour the console or write a line of its own in a report."""
    return printable(text, None, spaces=True)


def classify(
    index: int, run_dir: Path, returncode: int | None, timed_out: bool, duration: float, timeout: float
) -> RunResult:
    """How one run ended, from its exit status and what it wrote."""
    base: dict[str, Any] = dict(index=index, duration=duration, run_dir=run_dir)
    if timed_out:
        return RunResult(
            status=RunStatus.TIMEOUT,
            cause=f"timed out after {timeout:g}s and was killed (raise `timeout:` if the model is just slow)",
            details=log_tail(run_dir / "log.txt"),
            **base,
        )
    result: RunReport | None
    try:
        result = RunReport.read(run_dir / "result.json")
    except (OSError, ProtocolError):
        result = None
    if returncode is not None and returncode < 0:
        sig = signal_name(-returncode)
        why = " (out of memory? the kernel's OOM killer sends SIGKILL)" if sig == "SIGKILL" else ""
        return RunResult(
            status=RunStatus.CRASHED,
            cause=f"crashed: killed by {sig}{why}",
            details=log_tail(run_dir / "log.txt"),
            **base,
        )
    if result is None or (returncode not in (0, 1)):
        return RunResult(
            status=RunStatus.CRASHED,
            cause=f"exited with code {returncode} without writing its result",
            details=log_tail(run_dir / "log.txt"),
            **base,
        )
    if not result.ok:
        stage, error = result.stage or "?", said(result.error)
        return RunResult(
            status=RunStatus.ERROR,
            cause=error if result.unavailable else f"raised while {_STAGES.get(stage, stage)}: {error}",
            details=tuple(said(line) for line in result.traceback),
            stage=result.stage,
            hint=result.hint,
            timings=result.timings,
            unavailable=result.unavailable,
            **base,
        )
    return RunResult(
        status=RunStatus.OK,
        device=result.device,
        timings=result.timings,
        fingerprint=result.fingerprint,
        warnings=tuple(result.warnings),
        notes=tuple(result.notes),
        samples=result.samples,
        facts=result.facts,
        ignored=tuple(result.ignored),
        ignore_unmatched=tuple(result.ignore_unmatched),
        every_path=tuple(result.every_path),
        constants=result.constants,
        compiled=result.compiled,
        **base,
    )


_STAGES = {
    "recipe": "applying the recipe",
    "model": "building the model",
    "input": "building the input",
    "compile": "compiling the model",
    "forward": "running the model",
    "outputs": "saving the outputs",
}
