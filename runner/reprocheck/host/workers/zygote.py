"""The parent's side of the zygote (fork isolation): its JSON events, the runs it reports, its death, and the
workers this process started (all killed on exit, whatever the cause)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...processes import reap
from ...protocol import AnsweredEvent, ProtocolError, ReadyEvent, RunEvent, read_event
from .run_result import RunResult, RunStatus, classify, log_tail, signal_name

ZYGOTE_STARTUP_ALLOWANCE = 300.0  # seconds for the zygote's imports, on top of the runs' own timeouts


LIVE_ZYGOTES: set[subprocess.Popen[bytes]] = set()  # zygotes started and not yet reaped


def cancel_all() -> None:
    """Kill every worker this process started that is still alive (on exit, whatever the cause)."""
    for proc in list(LIVE_ZYGOTES):
        if proc.poll() is None:
            kill_group(proc)
        LIVE_ZYGOTES.discard(proc)
    reap_orphans()


def reap_orphans() -> None:
    """End what a worker or its runs left running after they died (reparented here: reprocheck is a child
    subreaper), sparing the workers still in use."""
    reap(keep=tuple(p.pid for p in LIVE_ZYGOTES if p.poll() is None))


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill the worker's process group (the worker and whatever it left in its group), then reap the worker."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


Progress = Callable[[RunResult], None]


Event = ReadyEvent | RunEvent | AnsweredEvent


class Events:
    """protocol events from a worker's stdout, read on a thread so that waits can time out."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.queue: queue.Queue[Event | ProtocolError | None] = queue.Queue()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if not raw.lstrip().startswith(b"{"):
                continue  # not ours: an import that prints to the worker's stdout
            try:
                self.queue.put(read_event(raw))
            except ProtocolError as exc:
                self.queue.put(exc)
        self.queue.put(None)

    def next(self, deadline: float) -> Event | None:
        """The next event, or None when the worker ended or the deadline passed. Raises ProtocolError for a line
        that is JSON but no event: the two sides disagree, which must never pass for a worker that died."""
        try:
            event = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if isinstance(event, ProtocolError):
            raise event
        return event


def run_forked(
    proc: subprocess.Popen[bytes],
    events: Events | None,
    job_file: Path,
    run_dirs: list[Path],
    timeout: float,
    progress: Progress | None,
) -> list[RunResult]:
    assert events is not None
    results: list[RunResult] = []
    # each run, then its fold (a comparison with run 1, bounded by the same timeout)
    deadline = time.monotonic() + ZYGOTE_STARTUP_ALLOWANCE + len(run_dirs) * (2 * timeout + 5)
    while len(results) < len(run_dirs):
        event = events.next(deadline)
        if event is None:
            break
        if not isinstance(event, RunEvent):
            continue
        i = run_dirs.index(Path(event.dir)) + 1
        result = classify(i, Path(event.dir), event.returncode, event.timed_out, event.duration, timeout)
        results.append(result)
        if progress:
            progress(result)
        if not result.ok:
            break
    if not results or (results[-1].ok and len(results) < len(run_dirs)):
        return zygote_died(proc, job_file, run_dirs, results, progress)
    return results


def zygote_died(
    proc: subprocess.Popen[bytes],
    job_file: Path,
    run_dirs: list[Path],
    results: list[RunResult],
    progress: Progress | None,
) -> list[RunResult]:
    """The zygote itself died or hung (e.g. torch failed to import): a run failure naming it."""
    if proc.poll() is None:
        kill_group(proc)
    proc.wait()
    LIVE_ZYGOTES.discard(proc)
    i = len(results) + 1
    tail = log_tail(job_file.parent / "zygote.log")
    cause = f"the worker process exited with code {proc.returncode} before run {i} finished"
    if proc.returncode is not None and proc.returncode < 0:
        cause = f"the worker process was killed by {signal_name(-proc.returncode)} before run {i} finished"
    failed = RunResult(
        index=i, status=RunStatus.CRASHED, duration=0.0, run_dir=run_dirs[i - 1], cause=cause, details=tail
    )
    if progress:
        progress(failed)
    return [*results, failed]
