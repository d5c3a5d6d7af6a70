"""Worker helper processes: the torch side answering one request (`helper`), or many from one process that
imports torch once (`Helpers`, for diagnose); and the environment every worker process gets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from ... import environment
from ...files import PACKAGE
from ...protocol import (
    OPS,
    Answer,
    AnsweredEvent,
    Call,
    Message,
    NameProblem,
    NameProblems,
    NameRequest,
    NameRequests,
    ProtocolError,
    op_of,
)
from .run_result import log_tail
from .zygote import LIVE_ZYGOTES, Events, kill_group, reap_orphans

PARENT_ENV = "REPROCHECK_PARENT_PID"


class WorkerFailed(RuntimeError):
    """A worker could not answer (name checks, comparison): reprocheck itself failed."""


# `python -m` would put the working folder (the pull request's checkout) first on sys.path, where a `torch.py` or a
# `reprocheck/` folder would replace the real ones: the worker starts from `-c` with that entry removed first.
def boot(module: str) -> str:
    """`python -c` code that runs `module` as `python -m` would, without the working folder on sys.path."""
    return (
        "import sys\n"
        "if sys.path and sys.path[0] in ('', '.'): del sys.path[0]\n"
        "import runpy\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    )


def worker_cmd(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-c", boot("reprocheck.worker"), *args]


def worker_environment(env: dict[str, str]) -> dict[str, str]:
    environment.scrub_environment(env)
    # The worker imports this very package, even when it is not installed (tests, source checkouts).
    here = str(PACKAGE.parent)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # The worker dies with this process (parent-death signal); it checks it was not orphaned before that.
    env[PARENT_ENV] = str(os.getpid())
    return env


A = TypeVar("A", bound=Message)


def read_answer(path: Path, kind: type[A]) -> A:
    """An answer file's answer, as its model; WorkerFailed when the worker says why there is none."""
    try:
        answer = Answer.read(path)
        if not answer.ok:
            raise WorkerFailed(answer.error or "the worker failed")
        return answer.value(kind)
    except ProtocolError as exc:
        raise WorkerFailed(f"the worker's answer does not fit: {exc}") from None


def answer_kind(request: Message, kind: type[A]) -> str:
    """The op of a helper request, checked against the answer model the caller expects."""
    op = op_of(request)
    if OPS[op][1] is not kind:
        raise ProtocolError(f"{op} answers a {OPS[op][1].__name__}, not a {kind.__name__}")
    return op


def run_to_end(cmd: list[str], env: dict[str, str], log_path: Path, timeout: float | None) -> tuple[int | None, bool]:
    """One worker process run to its end: a session of its own, stdin closed, its output in log_path, killed past
    `timeout` seconds. What it left running in its group, or orphaned elsewhere, ends with it. Returns its exit
    status and whether it timed out."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_group(proc)  # also what it left running in its group
            reap_orphans()  # and what it left elsewhere, if it died before reaping them itself
    return proc.returncode, timed_out


def helper(base: Path, request: Message, kind: type[A], env: dict[str, str], timeout: float | None = None) -> A:
    """One request to a fresh worker process (spawn mode, or names for `validate`). Raises TimeoutExpired past
    `timeout` seconds, the worker's process group killed."""
    mode = "--" + answer_kind(request, kind)
    base.mkdir(parents=True, exist_ok=True)
    request.write(base / "request.json")
    cmd = worker_cmd(mode, str(base / "request.json"), str(base / "answer.json"))
    code, timed_out = run_to_end(cmd, env, base / "log.txt", timeout)
    if timed_out:
        raise subprocess.TimeoutExpired(cmd, timeout or 0.0)
    if not (base / "answer.json").exists():
        tail = "\n".join(log_tail(base / "log.txt", 30))
        raise WorkerFailed(f"the worker ({mode}) exited with code {code} without answering:\n{tail}")
    return read_answer(base / "answer.json", kind)


def name_problems(requests: list[NameRequest], workdir: Path) -> list[NameProblem]:
    """torchvision name checks in a helper process (for `validate`): this process never imports torch."""
    if not requests:
        return []
    env = worker_environment(dict(os.environ))
    return helper(workdir, NameRequests(requests=requests), NameProblems, env).problems


class Helpers:
    """One helper process for many requests (`python -m reprocheck.worker --serve`): torch imported once. Use as a
    context manager; the process is stopped on exit whatever happens."""

    def __init__(self, env: dict[str, str], timeout: float = 600.0) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="reprocheck-helper-"))
        self.timeout, self.count = timeout, 0
        self.log = open(self.dir / "log.txt", "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            worker_cmd("--serve"),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            start_new_session=True,
        )
        LIVE_ZYGOTES.add(self.proc)
        self.events = Events(self.proc)

    def ask(self, request: Message, kind: type[A]) -> A:
        op = answer_kind(request, kind)
        self.count += 1
        answer = self.dir / f"answer{self.count}.json"
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((Call.of(request, answer).to_json() + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        event = self.events.next(time.monotonic() + self.timeout)
        if not (isinstance(event, AnsweredEvent) and event.op == op) or not answer.exists():
            self.log.flush()
            tail = "\n".join(log_tail(self.dir / "log.txt", 30))
            raise WorkerFailed(f"the worker helper ({op}) ended without answering:\n{tail}")
        return read_answer(answer, kind)

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
            kill_group(self.proc)
        LIVE_ZYGOTES.discard(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
