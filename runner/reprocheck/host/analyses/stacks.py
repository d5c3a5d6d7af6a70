"""The two sides of `reprocheck upgrade`: a stack (`python:PATH` or `image:TAG`), the checks run on it, and the
grading helper run on it. Both sides run this very reprocheck: its package alone is copied into a folder put first
on the stack's PYTHONPATH (mounted read-only in a container); the stack supplies torch and the dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from ...files import PACKAGE
from ...protocol import Answer, GradedCheck, GradeJob, GradeRequest, Grades, Message, ProtocolError, op_of
from ...spec import LoadedCheck
from ..checks.grades import ULPS, K
from ..exitcodes import UsageError
from ..report.shape import Report
from ..workers.helper_client import boot, run_to_end, worker_cmd
from ..workers.run_result import log_tail

# Imports a python: stack must have, and what to install there when it lacks them.
PROBE = (
    "import importlib.util, json, sys\n"
    "need = ['torch', 'numpy', 'safetensors', 'pydantic', 'yaml']\n"
    "missing = [m for m in need if importlib.util.find_spec(m) is None]\n"
    "print(json.dumps({'missing': missing, 'python': list(sys.version_info[:2])}))\n"
)
PIP_NAMES = {"torch": "torch", "numpy": "numpy", "safetensors": "safetensors", "pydantic": "pydantic", "yaml": "pyyaml"}


@dataclass(frozen=True)
class Stack:
    kind: str  # "python" | "image"
    value: str  # the interpreter's absolute path, or the image reference

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def parse_stack(flag: str, text: str) -> Stack:
    from ..launcher import launch

    kind, sep, value = text.partition(":")
    if not sep or kind not in ("python", "image") or not value:
        raise UsageError(f"{flag} {text!r}: give image:TAG (a local image) or python:PATH (an interpreter with torch)")
    if kind == "image":
        if not launch.IMAGE.match(value):
            raise UsageError(f"{flag} {text!r}: {value!r} is not an image reference (name[:tag][@digest])")
        return Stack("image", value)
    path = shutil.which(value) if os.sep not in value else value
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise UsageError(f"{flag} {text!r}: no executable interpreter at {value} (give the path of its python)")
    return Stack("python", os.path.abspath(path))


@dataclass(frozen=True)
class Options:
    source: Stack
    target: Stack
    require: str = "noise"
    k: float = K
    ulps: float = ULPS
    runs: int | None = None
    seed: int | None = None
    from_device: str | None = None
    to_device: str | None = None
    isolation: str = "auto"
    quiet: bool = False
    model_cache: str | None = None
    gpus: str = "none"
    workspace: Path = field(default_factory=Path.cwd)
    pictures: Path | None = None  # draw what changed here (on the --to stack, from both stacks' goldens)


def copy_code(dest: Path) -> Path:
    """This reprocheck's package alone (no site-packages beside it) in dest/reprocheck."""
    shutil.copytree(PACKAGE, dest / "reprocheck", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _stack_env(code: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code)  # never the caller's: it could hold another torch
    env["REPROCHECK_PARENT_PID"] = str(os.getpid())
    return env


def probe(stack: Stack, code: Path) -> None:
    """Refuse a stack that cannot run the checks, before anything runs."""
    if stack.kind == "image":
        from ..launcher import container

        try:
            container.require_engine()
        except container.ContainerError as exc:
            raise UsageError(str(exc)) from None
        if container.docker("image", "inspect", "--format", "{{.Id}}", stack.value).returncode != 0:
            raise UsageError(f"image {stack.value} is not on this machine: build or load it first (docker images)")
        return
    proc = subprocess.run(
        [stack.value, "-c", PROBE], env=_stack_env(code), capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    try:
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise UsageError(f"python:{stack.value} does not run Python (exit {proc.returncode})") from None
    if tuple(found["python"]) < (3, 10):
        raise UsageError(
            f"python:{stack.value} is Python {'.'.join(map(str, found['python']))}; reprocheck needs 3.10+"
        )
    missing = found["missing"]
    if "torch" in missing:
        raise UsageError(
            f"python:{stack.value} has no torch: install the torch to test there ({stack.value} -m pip install torch)"
        )
    if missing:
        names = " ".join(PIP_NAMES[m] for m in missing)
        raise UsageError(
            f"python:{stack.value} lacks {', '.join(missing)}, which reprocheck's worker needs there: "
            f"{stack.value} -m pip install {names} (reprocheck itself is put on its path by upgrade)"
        )


@dataclass(frozen=True)
class Side:
    """One `reprocheck run` on one stack: its exit code, its JSON report (None if it wrote none) and its log."""

    code: int
    report: Report | None  # read with the models the report is written from
    log: str


def _side_args(checks: list[LoadedCheck], opts: Options, device: str | None, float64: bool) -> list[str]:
    args = ["--invariance", "none", "--isolation", opts.isolation]
    args += ["--seed", str(opts.seed)] if opts.seed is not None else []
    for name in dict.fromkeys(lc.name for lc in checks):
        args += ["--check", name]
    if float64:
        args += ["--reference-float64", "--runs", "2", "--device", "cpu"]
    else:
        args += ["--runs", str(opts.runs)] if opts.runs else []
        args += ["--device", device] if device else []
    return args + (["-q"] if opts.quiet else [])


def run_side(
    stack: Stack,
    checks: list[LoadedCheck],
    opts: Options,
    out: Path,
    code: Path,
    device: str | None,
    float64: bool,
    trace: bool = False,
) -> Side:
    """The checks on one stack, goldens (run 1's outputs) into out/goldens; the console report kept in out/log; with
    trace, every run traced and its folder kept in out/runs."""
    out.mkdir(parents=True, exist_ok=True)
    specs = list(dict.fromkeys(os.path.abspath(lc.file) for lc in checks))
    report, goldens, log = out / "report.json", out / "goldens", out / "log.txt"
    with open(log, "w") as stdout:
        if stack.kind == "python":
            argv = [stack.value, "-c", boot("reprocheck"), "run", *specs, *_side_args(checks, opts, device, float64)]
            argv += ["--baseline", str(goldens), "--baseline-root", "/", "--update-baseline", "--report", str(report)]
            if opts.model_cache:
                argv += ["--model-cache", opts.model_cache]
            argv += ["--keep", str(out / "runs"), "--trace-ops"] if trace else []
            sys.stderr.flush()
            code_ = subprocess.run(argv, env=_stack_env(code), stdout=stdout, stdin=subprocess.DEVNULL).returncode
        else:
            code_ = _run_image(stack, checks, opts, specs, report, goldens, code, device, float64, trace, stdout)
    text = log.read_text(errors="replace")
    parsed = None
    if report.is_file():
        try:
            parsed = Report.model_validate_json(report.read_bytes())
        except ValidationError as exc:  # the side's verdict says why there is nothing to read
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "the file"
            text += f"\nits report is not reprocheck's report: {where}: {first['msg']}"
    return Side(code_, parsed, text)


def _run_image(
    stack: Stack,
    checks: list[LoadedCheck],
    opts: Options,
    specs: list[str],
    report: Path,
    goldens: Path,
    code: Path,
    device: str | None,
    float64: bool,
    trace: bool,
    stdout: Any,
) -> int:
    from ..launcher import launch

    request = launch.Request(
        specs=tuple(specs),
        image=stack.value,
        workspace=opts.workspace,
        checks=tuple(dict.fromkeys(lc.name for lc in checks)),
        runs=2 if float64 else opts.runs,
        seed=opts.seed,
        device="cpu" if float64 else device,
        gpus="none" if float64 else opts.gpus,
        isolation=opts.isolation,
        quiet=opts.quiet,
        report=str(report),
        baseline=str(goldens),
        update_baseline=True,
        invariance=("none",),
        model_cache=opts.model_cache,
        allow_outside_cache=True,
        float64=float64,
        code=str(code),
        trace=str(report.parent / "runs") if trace else None,
    )
    try:
        plan = launch.plan(request)
        launch.prepare(plan)
    except launch.LaunchError as exc:
        raise UsageError(str(exc)) from None
    sys.stderr.flush()
    return subprocess.run(plan.docker_argv(), stdout=stdout, stdin=subprocess.DEVNULL).returncode


def grade_on(stack: Stack, jobs: list[GradeJob], folder: Path, code: Path, opts: Options) -> list[GradedCheck]:
    """The grading helper (grade.py) on a stack; its answer, one entry per job."""
    return ask_on(stack, GradeRequest(checks=jobs), Grades, folder, code, opts, "grading").checks


A = TypeVar("A", bound=Message)


def ask_on(stack: Stack, request: Message, kind: type[A], folder: Path, code: Path, opts: Options, what: str) -> A:
    """One helper call (protocol.OPS) on a stack, in `folder` (writable in a container, nothing else is)."""
    folder.mkdir(parents=True, exist_ok=True)
    path, answer, log = folder / "request.json", folder / "answer.json", folder / "log.txt"
    request.write(path)
    helper = worker_cmd(f"--{op_of(request)}", str(path), str(answer), python=stack.value)
    if stack.kind == "python":  # a worker like any other: its own session, what it leaves behind ended with it
        run_to_end(helper, _stack_env(code), log, timeout=None)
    else:
        with open(log, "wb") as out:
            from ..launcher import launch

            plan = launch.Plan(
                mounts=(
                    launch.Mount(str(Path(os.path.realpath(opts.workspace))), writable=False),
                    launch.Mount(str(folder), writable=True),
                ),
                env={**launch.CONTAINER_ENV, "PYTHONPATH": str(code)},
                user=f"{os.getuid()}:{os.getgid()}",
                network="none",
                gpus="none",
                image=stack.value,
                args=tuple(helper[1:]),
                entrypoint="python3",
            )
            subprocess.run(plan.docker_argv(), stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    if not answer.is_file():
        tail = "\n".join(log_tail(log, 20))
        raise RuntimeError(f"the {what} helper on {stack} did not answer:\n{tail}")
    try:
        return Answer.read(answer).value(kind)
    except ProtocolError as exc:
        raise RuntimeError(f"the {what} helper on {stack} failed: {exc}") from None
