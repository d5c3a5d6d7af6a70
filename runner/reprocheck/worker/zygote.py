"""The zygote: import torch once, then fork one child per run, per comparison and per variant
(`python -m reprocheck.worker JOB.json --fork TIMEOUT DIR...`, see __main__.py).

The comparison happens here, on the torch side, never in reprocheck's own process: after the runs
the zygote reads one more line on stdin, a verdict request (which runs to compare, with which
tolerance, and the golden to check or write), and answers in WORKDIR/verdict.json from a fork of
itself. Then, while the parent asks (one line each, until an empty line or EOF), it forks the check's
invariance variants with the job changed (protocol.VariantOp: batch, device, the float64 reference) and
compares them (a protocol.Call: verdict or distances), each in a fresh fork, so the zygote itself never
runs an op. What it reports on stdout are protocol events, one line each.

The forked mode is observably equivalent to fresh processes: the zygote starts with the
same environment (so the same hash seed), imports torch and torchvision but never touches
CUDA or runs an op, and each run is a child forked from that same untouched state, so
nothing carries over from one run to the next. Each run writes RUN_DIR/result.json (and
outputs.pt on success); the zygote reports how each child ended as one JSON line on stdout.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..protocol import (
    Answer,
    AnsweredEvent,
    Call,
    Message,
    NameRequests,
    ReadyEvent,
    RunEvent,
    RunJob,
    VerdictRequest,
    read_command,
)
from .one_run import run_once
from .verdict import verdict


def die_with_parent() -> None:
    # A run must not outlive the zygote that waits for it.
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _fresh_rng_state() -> None:
    # A fresh interpreter seeds random, NumPy and torch from OS entropy; a fork would
    # otherwise share its zygote's state, making unseeded runs look reproducible.
    import numpy
    import torch

    random.seed()
    numpy.random.seed()
    torch.seed()


def _wait(pid: int, timeout: float) -> tuple[int, bool]:
    """Wait for a child up to `timeout` seconds; kill its group on timeout. Returns (wait status, timed_out)."""
    deadline = time.monotonic() + timeout
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    timed_out = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            break
        if fd is not None:
            select.select([fd], [], [], left)
        else:
            time.sleep(min(0.05, left))
    if fd is not None:
        os.close(fd)
    return status, timed_out


def serve_forked(job: RunJob, timeout: float, run_dirs: list[Path]) -> int:
    # What every run would import anyway: paid once here, before any op runs.
    import torch

    from . import boundary, names

    boundary.preload()

    # Orphans of a run that died before cleaning up are reparented here, and reaped after each fork.
    boundary.subreaper()
    boundary.force_weights_only()

    problems = names.name_problems(NameRequests(requests=job.names)).problems if job.names else []
    assert not torch.cuda.is_initialized(), "CUDA must not be initialised before forking runs"
    _event(ReadyEvent(problems=problems))
    # The parent says "go" once the spec is fully validated (or closes stdin to cancel).
    if sys.stdin.readline().strip() != "go":
        return 0
    for run_dir in run_dirs:
        report = _run_in_fork(job, run_dir, timeout)
        if not report.timed_out and report.returncode == 0 and run_dir != run_dirs[0] and job.fold:
            _fold_in_child(job, run_dirs[0], run_dir, timeout)
        _event(report)
        if report.timed_out or report.returncode != 0:
            break  # the next run would most likely fail the same way
    line = sys.stdin.readline()
    if line.strip():
        _answer_in_fork(
            Path(run_dirs[0]).parent / "verdict.json", lambda: verdict(VerdictRequest.from_json(line)), timeout
        )
        _event(AnsweredEvent(op="verdict"))
    _serve_variants(job, timeout)
    return 0


def _run_in_fork(job: RunJob, run_dir: Path, timeout: float) -> RunEvent:
    """One run in a fresh fork of the zygote: the event that says how it ended."""
    run_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    start = time.perf_counter()
    status, timed_out = _wait(_in_fork(functools.partial(_forked_run, job, run_dir)), timeout)
    from .boundary import reap

    reap()  # whatever the run left behind and was reparented here
    return RunEvent(
        dir=str(run_dir),
        returncode=os.waitstatus_to_exitcode(status),
        timed_out=timed_out,
        duration=time.perf_counter() - start,
    )


def _answer_in_fork(path: Path, fn: Callable[[], Message], timeout: float) -> None:
    """Answer a request in a fresh fork, so that the zygote itself never runs an op and stays fit to fork the
    variants; a fork that dies without answering leaves an answer that says so."""

    def body() -> int:
        answer(path, fn)
        return 0

    # A little past the parent's own deadline, so that a slow comparison reads as the check's timeout there.
    status, _ = _wait(_in_fork(body), timeout + 5)
    if not path.exists():
        code = os.waitstatus_to_exitcode(status)
        Answer(ok=False, error=f"the comparison process ended with code {code} without answering").write(path)


def _serve_variants(job: RunJob, timeout: float) -> None:
    """After the verdict, while the parent asks: invariance variants (batch, device, the float64 reference), each a
    fresh fork of the same untouched zygote with the job changed, and their comparisons (each in a fork too)."""
    from .pictures import draw
    from .verdict import distances

    for line in sys.stdin:
        if not line.strip():
            return
        command = read_command(line)
        if isinstance(command, Call):
            fns: dict[str, Callable[[Any], Message]] = {"distances": distances, "verdict": verdict, "draw": draw}
            fn, request = fns[command.op], command.parsed()
            _answer_in_fork(Path(command.answer), functools.partial(fn, request), timeout)
            _event(AnsweredEvent(op=command.op))
        else:
            _event(_run_in_fork(command.changes.applied(job), Path(command.dir), timeout))


def _fold_in_child(job: RunJob, first: Path, run_dir: Path, timeout: float) -> None:
    """Compare a finished run with run 1 in a fresh fork of the zygote (which never ran a model, so the comparison
    is untouched by model code), keep the small result and delete the run's outputs: the disk then holds run 1 and
    one later run at a time. A fold that fails leaves the outputs for the verdict to compare itself."""

    def fold() -> int:
        from . import compare, outputs
        from .tasks import select

        check = job.check
        expected = outputs.load(first / "outputs.pt")
        selection = select(expected, check.compare.outputs)
        index = int(run_dir.name.removeprefix("run"))
        folded = compare.fold(expected, index, outputs.load(run_dir / "outputs.pt"), check.tolerance, 1, selection)
        folded.write(run_dir / compare.FOLDED)
        (run_dir / "outputs.pt").unlink()
        return 0

    _wait(_in_fork(fold), timeout)


def _in_fork(body: Callable[[], int]) -> int:
    """A fresh fork of the zygote in its own process group, dying with it, that runs `body` and exits with its
    code (1 if it raised). Returns the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setpgid(0, 0)
            die_with_parent()
            code = body()
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def _forked_run(job: RunJob, run_dir: Path) -> int:
    from .boundary import reap, seal

    run_dir = run_dir.absolute()
    log = os.open(run_dir / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    seal()  # no command pipe, no inherited descriptor: the zygote's stdin and stdout stay the parent's alone
    _fresh_rng_state()
    try:
        code = run_once(job, run_dir)
    finally:
        reap()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _event(event: Message) -> None:
    print(event.to_json(), flush=True)


def answer(path: Path, fn: Callable[[], Message]) -> None:
    """Run fn() and write its answer, or the error with its traceback, to `path` (a protocol.Answer)."""
    try:
        result = Answer(ok=True, answer=fn().model_dump(mode="json", by_alias=True))
    except Exception as exc:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        result = Answer(ok=False, error=f"{type(exc).__name__}: {exc}\n{text}")
    result.write(path)
