"""Worker helper processes: the torch side answering one request (`helper`), or many from one process that
imports torch once (`Helpers`, for diagnose); and the environment every worker process gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from .runs import _log_tail
from .zygote import _Events, _kill_group, _live

PARENT_ENV = "REPROCHECK_PARENT_PID"


class WorkerFailed(RuntimeError):
    """A worker could not answer (name checks, comparison): reprocheck itself failed."""


def worker_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "reprocheck.worker", *args]


def worker_environment(env: dict[str, str]) -> dict[str, str]:
    # The worker imports this very package, even when it is not installed (tests, source checkouts).
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # The worker dies with this process (parent-death signal); it checks it was not orphaned before that.
    env[PARENT_ENV] = str(os.getpid())
    return env


def read_answer(path: Path) -> dict[str, Any]:
    answer = json.loads(path.read_text())
    if not answer.get("ok"):
        raise WorkerFailed(answer.get("error") or "the worker failed")
    return dict(answer["value"])


def helper(base: Path, mode: str, request: Any, env: dict[str, str], timeout: float | None = None) -> Any:
    """One request to a fresh worker process (spawn mode, or names for `validate`). Raises TimeoutExpired past
    `timeout` seconds, the worker's process group killed."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "request.json").write_text(json.dumps(request))
    with open(base / "log.txt", "wb") as log:
        proc = subprocess.Popen(
            worker_cmd(mode, str(base / "request.json"), str(base / "answer.json")),
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        finally:
            if proc.returncode is None:
                _kill_group(proc)
    if not (base / "answer.json").exists():
        tail = "\n".join(_log_tail(base / "log.txt", 30))
        raise WorkerFailed(f"the worker ({mode}) exited with code {proc.returncode} without answering:\n{tail}")
    return read_answer(base / "answer.json")["answer"]


def name_problems(requests: list[dict[str, Any]], workdir: Path) -> list[dict[str, Any]]:
    """torchvision name checks in a helper process (for `validate`): this process never imports torch."""
    if not requests:
        return []
    env = worker_environment(dict(os.environ))
    return list(helper(workdir, "--names", requests, env))


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
        _live.add(self.proc)
        self.events = _Events(self.proc)

    def ask(self, op: str, request: Any) -> Any:
        import time

        self.count += 1
        answer = self.dir / f"answer{self.count}.json"
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"op": op, "request": request, "answer": str(answer)}) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        event = self.events.next(time.monotonic() + self.timeout)
        if event is None or not answer.exists():
            self.log.flush()
            tail = "\n".join(_log_tail(self.dir / "log.txt", 30))
            raise WorkerFailed(f"the worker helper ({op}) ended without answering:\n{tail}")
        return read_answer(answer)["answer"]

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        import shutil

        if self.proc.poll() is None:
            _kill_group(self.proc)
        _live.discard(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
