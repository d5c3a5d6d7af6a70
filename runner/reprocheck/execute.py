"""Isolated runs of one check: worker processes, timeouts, crashes, outputs handed back.

Every run happens in a process started with the recipe's environment (`recipe.worker_env`).
Isolation modes:
  * fork  (default on Linux): one zygote process per check imports torch once and forks a
          child per run (see worker.py for why that is equivalent to fresh processes);
  * spawn: a fresh interpreter per run. Slower, works everywhere. Also used whenever the
          recipe's hash seed is off, since forks would share one random hash seed.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import recipe
from .spec import LoadedCheck

ZYGOTE_STARTUP_ALLOWANCE = 300.0  # seconds for the zygote's imports, on top of the runs' own timeouts


class Isolation(str, enum.Enum):
    AUTO = "auto"
    FORK = "fork"
    SPAWN = "spawn"


def resolve_isolation(choice: Isolation) -> Isolation:
    if choice is Isolation.AUTO:
        return Isolation.FORK if sys.platform == "linux" and hasattr(os, "pidfd_open") else Isolation.SPAWN
    return choice


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

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.OK

    @property
    def outputs_path(self) -> Path:
        return self.run_dir / "outputs.pt"


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _log_tail(path: Path, lines: int = 12) -> tuple[str, ...]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ()
    return tuple(text.rstrip().splitlines()[-lines:])


def classify(
    index: int, run_dir: Path, returncode: int | None, timed_out: bool, duration: float, timeout: float
) -> RunResult:
    """How one run ended, from its exit status and what it wrote."""
    base: dict[str, Any] = dict(index=index, duration=duration, run_dir=run_dir)
    if timed_out:
        return RunResult(
            status=RunStatus.TIMEOUT,
            cause=f"timed out after {timeout:g}s and was killed (raise `timeout:` if the model is just slow)",
            details=_log_tail(run_dir / "log.txt"),
            **base,
        )
    try:
        result = json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        result = None
    if returncode is not None and returncode < 0:
        sig = _signal_name(-returncode)
        why = " (out of memory? the kernel's OOM killer sends SIGKILL)" if sig == "SIGKILL" else ""
        return RunResult(
            status=RunStatus.CRASHED,
            cause=f"crashed: killed by {sig}{why}",
            details=_log_tail(run_dir / "log.txt"),
            **base,
        )
    if result is None or (returncode not in (0, 1)):
        return RunResult(
            status=RunStatus.CRASHED,
            cause=f"exited with code {returncode} without writing its result",
            details=_log_tail(run_dir / "log.txt"),
            **base,
        )
    if not result["ok"]:
        return RunResult(
            status=RunStatus.ERROR,
            cause=f"raised while {_STAGES.get(result['stage'], result['stage'])}: {result['error']}",
            details=tuple(result.get("traceback") or ()),
            stage=result["stage"],
            hint=result.get("hint"),
            timings=result.get("timings") or {},
            **base,
        )
    return RunResult(
        status=RunStatus.OK,
        device=result["device"],
        timings=result["timings"],
        fingerprint=result["fingerprint"],
        warnings=tuple(result["warnings"]),
        **base,
    )


_STAGES = {
    "recipe": "applying the recipe",
    "model": "building the model",
    "input": "building the input",
    "forward": "running the model",
    "outputs": "saving the outputs",
}


def _job(lc: LoadedCheck, threads: int) -> dict[str, Any]:
    # Without runs: the worker does one run whatever the count (diagnose runs single variants).
    return {
        "check": lc.check.model_dump(mode="json", exclude={"runs"}),
        "base_dir": str(lc.base_dir),
        "threads": threads,
    }


def _worker_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "reprocheck.worker", *args]


def _pythonpath(env: dict[str, str]) -> dict[str, str]:
    # The worker imports this very package, even when it is not installed (tests, source checkouts).
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # The worker dies with this process (parent-death signal); it checks it was not orphaned before that.
    env[PARENT_ENV] = str(os.getpid())
    return env


PARENT_ENV = "REPROCHECK_PARENT_PID"
_live: set[subprocess.Popen[bytes]] = set()  # zygotes started and not yet reaped


def cancel_all() -> None:
    """Kill every worker this process started that is still alive (on exit, whatever the cause)."""
    for proc in list(_live):
        if proc.poll() is None:
            _kill_group(proc)
        _live.discard(proc)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


Progress = Callable[[RunResult], None]


class Prepared:
    """A check's runs, set up. In fork mode the zygote starts importing torch at once and
    waits for `run()`, so the caller's own work (validation, imports) overlaps with it."""

    def __init__(
        self,
        lc: LoadedCheck,
        workdir: Path,
        isolation: Isolation = Isolation.AUTO,
        *,
        trace: bool = False,
        env: dict[str, str] | None = None,
        input_seed: int | None = None,
    ) -> None:
        check = lc.check
        threads = recipe.resolve_threads(check.recipe)
        self.env = _pythonpath(recipe.worker_env(check.seed, check.recipe, threads))
        self.env.update(env or {})  # diagnose's variations (e.g. another hash seed)
        workdir.mkdir(parents=True, exist_ok=True)
        self.job_file = workdir / "job.json"
        self.job_file.write_text(json.dumps({**_job(lc, threads), "trace": trace, "input_seed": input_seed}))
        self.run_dirs = [workdir / f"run{i}" for i in range(1, check.runs + 1)]
        self.timeout = check.timeout
        self.zygote: subprocess.Popen[bytes] | None = None
        # Forks share their zygote's hash seed: with the hash seed off, each run needs its own
        # interpreter to get its own random seed, as fresh processes would.
        if resolve_isolation(isolation) is Isolation.FORK and check.recipe.hash_seed:
            with open(workdir / "zygote.log", "wb") as zlog:
                self.zygote = subprocess.Popen(
                    _worker_cmd(str(self.job_file), "--fork", str(self.timeout), *map(str, self.run_dirs)),
                    env=self.env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=zlog,
                    start_new_session=True,
                )
            _live.add(self.zygote)

    def cancel(self) -> None:
        if self.zygote is not None:
            if self.zygote.poll() is None:
                _kill_group(self.zygote)
            _live.discard(self.zygote)

    def run(self, progress: Progress | None = None) -> list[RunResult]:
        """Run the check `runs` times in isolation; stops at the first failed run."""
        if self.zygote is not None:
            return _run_forked(self.zygote, self.job_file, self.run_dirs, self.timeout, progress)
        return _run_spawned(self.job_file, self.run_dirs, self.env, self.timeout, progress)


def _run_spawned(
    job_file: Path, run_dirs: list[Path], env: dict[str, str], timeout: float, progress: Progress | None
) -> list[RunResult]:
    results = []
    for i, run_dir in enumerate(run_dirs, 1):
        run_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(run_dir / "log.txt", "wb") as log:
            proc = subprocess.Popen(
                _worker_cmd(str(job_file), str(run_dir)),
                env=env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                if proc.returncode is None:
                    _kill_group(proc)
        result = classify(i, run_dir, proc.returncode, timed_out, time.perf_counter() - start, timeout)
        results.append(result)
        if progress:
            progress(result)
        if not result.ok:
            break
    return results


def _run_forked(
    proc: subprocess.Popen[bytes], job_file: Path, run_dirs: list[Path], timeout: float, progress: Progress | None
) -> list[RunResult]:
    zlog_path = job_file.parent / "zygote.log"
    results: list[RunResult] = []
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it already died; reported below from its log
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.decode())
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + ZYGOTE_STARTUP_ALLOWANCE + len(run_dirs) * (timeout + 5)
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            report = json.loads(line)
            i = run_dirs.index(Path(report["dir"])) + 1
            result = classify(
                i, Path(report["dir"]), report["returncode"], report["timed_out"], report["duration"], timeout
            )
            results.append(result)
            if progress:
                progress(result)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        else:
            proc.wait()
        _live.discard(proc)
    if not results or (results[-1].ok and len(results) < len(run_dirs)):
        # The zygote itself died or hung (e.g. torch failed to import).
        i = len(results) + 1
        tail = _log_tail(zlog_path)
        cause = f"the worker process exited with code {proc.returncode} before run {i} finished"
        if proc.returncode is not None and proc.returncode < 0:
            cause = f"the worker process was killed by {_signal_name(-proc.returncode)} before run {i} finished"
        failed = RunResult(
            index=i, status=RunStatus.CRASHED, duration=0.0, run_dir=run_dirs[i - 1], cause=cause, details=tail
        )
        results.append(failed)
        if progress:
            progress(failed)
    return results
