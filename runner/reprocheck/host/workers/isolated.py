"""Isolated runs of one check: worker processes, timeouts, crashes, outputs handed back.

Every run happens in a process started with the recipe's environment (`environment.worker_env`).
Isolation modes:
  * fork  (default on Linux): one zygote process per check imports torch once and forks a
          child per run (see worker/zygote.py for why that is equivalent to fresh processes);
  * spawn: a fresh interpreter per run. Slower, works everywhere. Also used whenever the
          recipe's hash seed is off, since forks would share one random hash seed.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TypeVar

from ... import environment
from ...protocol import (
    AnsweredEvent,
    Call,
    Message,
    NameProblem,
    NameProblems,
    NameRequest,
    NameRequests,
    ReadyEvent,
    RunEvent,
    RunJob,
    TraceJob,
    VariantChanges,
    VariantOp,
    VerdictAnswer,
    VerdictRequest,
    worker_check,
)
from ...spec import Check, CompileSpec, LoadedCheck
from ...spec.types import MAX_TIMEOUT
from .helper_client import WorkerFailed, answer_kind, helper, read_answer, run_to_end, worker_cmd, worker_environment
from .run_result import RunResult, classify, log_tail
from .zygote import (
    LIVE_ZYGOTES,
    ZYGOTE_STARTUP_ALLOWANCE,
    Events,
    Progress,
    kill_group,
    reap_orphans,
    run_forked,
    zygote_died,
)


class Isolation(str, enum.Enum):
    AUTO = "auto"
    FORK = "fork"
    SPAWN = "spawn"


def resolve_isolation(choice: Isolation) -> Isolation:
    if choice is Isolation.AUTO:
        return Isolation.FORK if sys.platform == "linux" and hasattr(os, "pidfd_open") else Isolation.SPAWN
    return choice


A = TypeVar("A", bound=Message)


TRACE_SLOWDOWN = 10


def traced_timeout(check: Check) -> float:
    """Recording every op costs tens of microseconds each: a traced run gets ten times the check's timeout."""
    return float(min(check.timeout * TRACE_SLOWDOWN, MAX_TIMEOUT))


class VerdictTimeout(RuntimeError):
    """Comparing the runs took longer than the check's `timeout`: the comparison was stopped (exit 3)."""


class CheckWorkers:
    """The torch side of one check: its job written, its workers (a zygote in fork mode, else a fresh interpreter
    per run) and what they answer. In fork mode the zygote starts importing torch at once and
    waits for `run()`, so the caller's own work overlaps with it. The zygote also answers the
    torchvision name checks (`names`) and, after the runs, compares them (`verdict`): this
    process never imports torch."""

    def __init__(
        self,
        lc: LoadedCheck,
        workdir: Path,
        isolation: Isolation = Isolation.AUTO,
        *,
        trace: TraceJob | None = None,
        env: dict[str, str] | None = None,
        input_seed: int | None = None,
        names: list[NameRequest] | None = None,
        batch: int | None = None,
        float64: bool = False,
        dtype: str | None = None,
        autocast: str | None = None,
        compile: CompileSpec | None = None,
        fold: bool = False,
    ) -> None:
        check = lc.check
        threads = environment.resolve_threads(check.recipe)
        self.base_env = environment.worker_env(check.seed, check.recipe, threads)
        self.env = worker_environment(dict(self.base_env))
        self.env.update(env or {})  # diagnose's variations (e.g. another hash seed)
        self.varied = bool(env)
        workdir = workdir.absolute()  # model code may change its working folder; the runs' folders stay put
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.isolation = isolation
        self.job_file = workdir / "job.json"
        RunJob(
            check=worker_check(check),
            base_dir=str(lc.base_dir),
            threads=threads,
            trace=trace,
            input_seed=input_seed,
            names=names or [],
            batch=batch,
            float64=float64,
            dtype=dtype,
            autocast=autocast,
            compile=compile,
            fold=fold,
        ).write(self.job_file)
        self.run_dirs = [workdir / f"run{i}" for i in range(1, check.runs + 1)]
        self.timeout = check.timeout
        self.zygote: subprocess.Popen[bytes] | None = None
        self.forkable = False  # the verdict is done and the zygote waits to fork variants
        self.events: Events | None = None
        self.problems: list[NameProblem] | None = None
        # Forks share their zygote's hash seed: with the hash seed off, each run needs its own
        # interpreter to get its own random seed, as fresh processes would.
        if resolve_isolation(isolation) is Isolation.FORK and check.recipe.hash_seed:
            with open(workdir / "zygote.log", "wb") as zlog:
                self.zygote = subprocess.Popen(
                    worker_cmd(str(self.job_file), "--fork", str(self.timeout), *map(str, self.run_dirs)),
                    env=self.env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=zlog,
                    start_new_session=True,
                )
            LIVE_ZYGOTES.add(self.zygote)
            self.events = Events(self.zygote)

    def cancel(self) -> None:
        self.forkable = False
        if self.zygote is not None:
            if self.zygote.poll() is None:
                kill_group(self.zygote)
            LIVE_ZYGOTES.discard(self.zygote)
            reap_orphans()

    def _send(self, line: str) -> None:
        assert self.zygote is not None and self.zygote.stdin is not None
        try:
            self.zygote.stdin.write(line.encode() + b"\n")
            self.zygote.stdin.flush()
        except BrokenPipeError:
            pass  # it already died; reported from its log

    def _ready(self) -> bool:
        """Wait until the zygote has imported torch; False when it died first."""
        if self.problems is None and self.events is not None:
            event = self.events.next(time.monotonic() + ZYGOTE_STARTUP_ALLOWANCE)
            if not isinstance(event, ReadyEvent):
                return False
            self.problems = event.problems
        return True

    def name_problems(self, requests: list[NameRequest]) -> list[NameProblem]:
        """Answers to names.name_requests: from the zygote (given them as `names`), else a helper process."""
        if not requests:
            return []
        if self.zygote is not None and self._ready():
            return self.problems or []
        return helper(self.workdir / "names", NameRequests(requests=requests), NameProblems, self.env).problems

    def run(self, progress: Progress | None = None) -> list[RunResult]:
        """Run the check `runs` times in isolation; stops at the first failed run."""
        if self.zygote is None:
            return _run_spawned(self.job_file, self.run_dirs, self.env, self.timeout, progress)
        if not self._ready():
            return zygote_died(self.zygote, self.job_file, self.run_dirs, [], progress)
        self._send("go")
        return run_forked(self.zygote, self.events, self.job_file, self.run_dirs, self.timeout, progress)

    def verdict(self, request: VerdictRequest, keep: bool = False) -> VerdictAnswer:
        """Compare the runs (and the golden) in a process with torch: a fork of the zygote, else a helper. With
        `keep`, the zygote stays for the variants (`fork_run`); `cancel` ends it."""
        if self._alive():
            assert self.events is not None
            self._send(request.to_json())
            deadline = time.monotonic() + self.timeout
            event = self.events.next(deadline)
            if not keep or event is None:
                self.cancel()
            if event is None and time.monotonic() >= deadline:
                raise VerdictTimeout(self._too_slow())
            if not (isinstance(event, AnsweredEvent) and event.op == "verdict"):
                tail = "\n".join(log_tail(self.job_file.parent / "zygote.log", 30))
                raise WorkerFailed(f"the worker died while comparing the runs:\n{tail}")
            self.forkable = keep
            return read_answer(self.workdir / "verdict.json", VerdictAnswer)
        self.cancel()
        try:
            return helper(self.workdir / "verdict", request, VerdictAnswer, self.env, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise VerdictTimeout(self._too_slow()) from None

    def fork_run(self, run_dir: Path, changes: VariantChanges, index: int = 1) -> RunResult | None:
        """One variant run, a fresh fork of this check's zygote with the job changed (batch, device, float64);
        None when there is no zygote left to fork (the caller starts a fresh worker instead)."""
        if not (self.forkable and self._alive()):
            return None
        assert self.events is not None
        self._send(VariantOp(dir=str(run_dir), changes=changes).to_json())
        event = self.events.next(time.monotonic() + self.timeout + 30)
        if not isinstance(event, RunEvent):
            self.cancel()
            return None
        return classify(index, run_dir, event.returncode, event.timed_out, event.duration, self.timeout)

    def fork_answer(self, request: Message, kind: type[A], folder: Path) -> A:
        """A variant's comparison ("verdict") or reference distances ("distances") in a fork of the zygote, else in
        a helper. Raises VerdictTimeout past the check's timeout."""
        op = answer_kind(request, kind)
        if self.forkable and self._alive():
            assert self.events is not None
            folder.mkdir(parents=True, exist_ok=True)
            answer = folder / "answer.json"
            self._send(Call.of(request, answer).to_json())
            deadline = time.monotonic() + self.timeout
            event = self.events.next(deadline)
            if isinstance(event, AnsweredEvent) and event.op == op:
                return read_answer(answer, kind)
            self.cancel()
            if time.monotonic() >= deadline:
                raise VerdictTimeout(self._too_slow())
        try:
            return helper(folder, request, kind, self.env, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise VerdictTimeout(self._too_slow()) from None

    def shares_environment(self, check: Check) -> bool:
        """Whether a fork of this zygote can run `check`: a fork keeps the environment torch was imported with
        (the hash seed; the thread counts OpenMP and MKL read then), so a check that needs another one (a
        threads variant) needs a fresh worker."""
        threads = environment.resolve_threads(check.recipe)
        return not self.varied and environment.worker_env(check.seed, check.recipe, threads) == self.base_env

    def _alive(self) -> bool:
        """A zygote still running, whose events can be read."""
        return self.zygote is not None and self.zygote.poll() is None and self.events is not None

    def _too_slow(self) -> str:
        return (
            f"comparing the runs took longer than the check's timeout ({self.timeout:g}s) and was stopped; raise "
            "`timeout:`, or compare less (cap the detections, e.g. detections_per_img, or fewer runs)"
        )


def _run_spawned(
    job_file: Path, run_dirs: list[Path], env: dict[str, str], timeout: float, progress: Progress | None
) -> list[RunResult]:
    results = []
    for i, run_dir in enumerate(run_dirs, 1):
        run_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        code, timed_out = run_to_end(worker_cmd(str(job_file), str(run_dir)), env, run_dir / "log.txt", timeout)
        result = classify(i, run_dir, code, timed_out, time.perf_counter() - start, timeout)
        results.append(result)
        if progress:
            progress(result)
        if not result.ok:
            break
    return results


class VariantRun:
    """The runs of the check with one thing changed (batch, device, threads, float64, dtype, autocast, compile),
    and their comparison: forks of the check's own zygote when they can be (torch imported already), else a fresh
    worker. The one place that chooses. Each run is its own process, whichever."""

    def __init__(
        self,
        lc: LoadedCheck,
        folder: Path,
        source: CheckWorkers,
        *,
        batch: int | None = None,
        float64: bool = False,
        dtype: str | None = None,
        autocast: str | None = None,
        compile: CompileSpec | None = None,
        runs: int = 1,
    ) -> None:
        self.lc, self.folder, self.source, self.runs = lc, folder, source, runs
        self.changes = VariantChanges(
            check=worker_check(lc.check), batch=batch, float64=float64, dtype=dtype, autocast=autocast, compile=compile
        )
        self.fresh: CheckWorkers | None = None
        self.forked = False

    def run(self) -> RunResult:
        return self.run_all()[0]

    def run_all(self) -> list[RunResult]:
        """Every run (`runs`); stops at the first that failed."""
        if self.source.shares_environment(self.lc.check):
            results: list[RunResult] = []
            while len(results) < self.runs and (not results or results[-1].ok):
                run = self.source.fork_run(self.folder / f"run{len(results) + 1}", self.changes, len(results) + 1)
                if run is None:  # no zygote left to fork: all of them in a fresh worker instead
                    break
                results.append(run)
            if results and (len(results) == self.runs or not results[-1].ok):
                self.forked = True
                return results
        c = self.changes
        self.fresh = CheckWorkers(
            dataclasses.replace(self.lc, check=self.lc.check.model_copy(update={"runs": self.runs})),
            self.folder,
            self.source.isolation,
            batch=c.batch,
            float64=c.float64,
            dtype=c.dtype,
            autocast=c.autocast,
            compile=c.compile,
        )
        return self.fresh.run()

    def verdict(self, request: VerdictRequest) -> VerdictAnswer:
        """Raises VerdictTimeout past the check's timeout."""
        if self.forked:
            return self.source.fork_answer(request, VerdictAnswer, self.folder / "verdict")
        assert self.fresh is not None, "run() first"
        return self.fresh.verdict(request)

    def cancel(self) -> None:
        if self.fresh is not None:
            self.fresh.cancel()
