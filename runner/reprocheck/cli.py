"""Command line: parse, call, map to exit codes. torch is imported only by commands that run things."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import enum
import importlib.util
import json
import os
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .exitcodes import ExitCode
from .outputs import OutputTargetError, refuse_special_target
from .spec import LoadedCheck, SpecErrors

if TYPE_CHECKING:
    from . import pipeline
    from .execute import RunResult


class Command(str, enum.Enum):
    RUN = "run"
    VALIDATE = "validate"
    SCHEMA = "schema"
    ENV = "env"
    DOCKER = "docker"
    MATRIX = "matrix"
    DIAGNOSE = "diagnose"


class UsageError(Exception):
    """A bad command line or spec: one message per line, exit 2, no traceback."""

    def __init__(self, message: str, errors: list | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []  # the SpecErrors behind it, for annotations


def _github_usage_error(exc: UsageError) -> None:
    from . import github

    located = [
        (github.workspace_relative(e.file), e.line or 1, "reprocheck: invalid spec", str(e))
        for e in exc.errors
        if e.file != "command line"
    ]
    lines = (
        github.error_annotations(located)
        if located
        else [github.command("error", str(exc), title="reprocheck: invalid command")]
    )
    for line in lines:
        github.emit(line)
    github.write_outputs({"result": "error", "failed-checks": "", "max-abs-diff": "0", "report": ""})


def die(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    for line in message.splitlines():
        print(f"reprocheck: error: {line}", file=sys.stderr)
    raise SystemExit(code)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reprocheck", description="A reproducibility gate for PyTorch inference.")
    p.add_argument("--version", action="version", version=f"reprocheck {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        Command.RUN.value, help="run checks and compare their runs (exit 0 pass, 1 differ, 2 bad spec, 3 run failed)"
    )
    _add_run_options(run)
    run.add_argument("--keep", type=Path, metavar="DIR", help="keep each run's outputs and logs in DIR")

    dock = sub.add_parser(Command.DOCKER.value, help="run the same checks inside the pinned Docker image")
    _add_run_options(dock)
    dock.add_argument("--image", help="image to run (default: the pinned image for this version)")
    dock.add_argument(
        "--build", action="store_true", help="build the image from this source tree's docker/Dockerfile first"
    )
    dock.add_argument("--gpus", default="none", metavar="all|N|none", help="GPUs for the container (default none)")
    dock.add_argument("--network", default="none", help="container network (default none: no network; host is refused)")
    dock.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="mounted read-only; specs and outputs must be inside it (default: the current folder)",
    )

    val = sub.add_parser(Command.VALIDATE.value, help="check spec files without running anything")
    val.add_argument("specs", nargs="+", metavar="SPEC")

    sch = sub.add_parser(
        Command.SCHEMA.value, help="print the JSON Schema of spec v1 (for editors), or of the JSON report"
    )
    sch.add_argument("--output", "-o", type=Path, metavar="FILE")
    sch.add_argument("--report", action="store_true", help="the JSON report's schema instead of the spec's")

    diag = sub.add_parser(
        Command.DIAGNOSE.value,
        help="find why a check is irreproducible: first diverging module, seed sensitivity, recipe ablation",
    )
    diag.add_argument("specs", nargs="+", metavar="SPEC")
    diag.add_argument("--check", action="append", default=[], metavar="NAME", help="only these checks (repeatable)")
    diag.add_argument("--device", help="cpu | cuda | cuda:N | auto, overriding the spec")
    diag.add_argument("--report", type=Path, metavar="FILE", help="write the JSON diagnosis here")
    diag.add_argument("--summary", type=Path, metavar="FILE", help="write the Markdown diagnosis here")
    diag.add_argument("--isolation", choices=[i.value for i in _isolations()], default="auto")

    mat = sub.add_parser(Command.MATRIX.value, help="print the checks as JSON for a GitHub Actions strategy.matrix")
    mat.add_argument("specs", nargs="+", metavar="SPEC")
    mat.add_argument("--check", action="append", default=[], metavar="NAME", help="only these checks (repeatable)")
    mat.add_argument("--github-output", metavar="NAME", help="also write the JSON to $GITHUB_OUTPUT under this name")

    env = sub.add_parser(Command.ENV.value, help="print the environment fingerprint")
    env.add_argument("--json", action="store_true")
    env.add_argument("--cuda", action="store_true", help="also query the GPUs (initialises CUDA)")
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec file(s)")
    p.add_argument("--check", action="append", default=[], metavar="NAME", help="run only this check (repeatable)")
    p.add_argument("--runs", type=int, help="runs per check (>= 2), overriding the spec")
    p.add_argument("--device", help="cpu | cuda | cuda:N | auto, overriding the spec")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    p.add_argument(
        "--summary", type=Path, metavar="FILE", help="write the Markdown report here (e.g. $GITHUB_STEP_SUMMARY)"
    )
    p.add_argument(
        "--isolation",
        choices=[i.value for i in _isolations()],
        default="auto",
        help="fork: one zygote imports torch, each run is a fresh fork (default on Linux); "
        "spawn: a new interpreter per run",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--baseline", type=Path, metavar="DIR", help="also compare with the golden outputs stored in DIR")
    p.add_argument(
        "--baseline-root",
        type=Path,
        metavar="DIR",
        default=None,
        help="goldens are laid out by each spec's path relative to DIR (default: the current folder)",
    )
    p.add_argument("--update-baseline", action="store_true", help="write (or rewrite) the goldens in --baseline DIR")
    p.add_argument(
        "--github",
        action="store_true",
        help="also write GitHub Actions annotations, step outputs ($GITHUB_OUTPUT) and the step summary",
    )


def _isolations() -> list[enum.Enum]:
    from .execute import Isolation

    return list(Isolation)


def _load(paths: list[str]) -> list[LoadedCheck]:
    from .spec import load_spec

    loaded: list[LoadedCheck] = []
    errors = []
    for path in paths:
        try:
            loaded += load_spec(path)
        except SpecErrors as exc:
            errors += exc.errors
    if errors:
        raise UsageError("\n".join(str(e) for e in errors), errors)
    return loaded


def _need_torch() -> None:
    # Checked without importing it: this process never imports torch, its workers do.
    if importlib.util.find_spec("torch") is None:
        raise UsageError(
            "torch is not installed in this environment: install it (pip install 'reprocheck[torch]'), "
            "or run the check in the pinned image with `reprocheck docker`"
        )


def _probe_writable(folder: Path, what: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".reprocheck-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{what}: cannot write in {folder} ({exc.strerror or exc}); choose another place") from None


def _make_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"{what}: {folder} (or a folder above it) is a file, not a folder") from None
    except OSError as exc:
        raise UsageError(f"{what}: cannot create folder {folder} ({exc.strerror or exc})") from None


def prepare_output_file(path: Path | None, flag: str) -> None:
    """Before anything runs: create the missing parent folders of an output file, refuse a target that is a
    symlink, FIFO, device or folder, and make sure the folder is writable."""
    if path is None:
        return
    try:
        refuse_special_target(path)
    except OutputTargetError as exc:
        raise UsageError(f"{flag} {exc}") from None
    parent = path.parent if str(path.parent) else Path(".")
    _make_folder(parent, f"{flag} {path}")
    _probe_writable(parent, f"{flag} {path}")


def prepare_output_folder(path: Path | None, flag: str) -> None:
    if path is None:
        return
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise UsageError(f"{flag} {path}: is not a folder (a symlink or a file is never written through)")
    _make_folder(path, f"{flag} {path}")
    _probe_writable(path, f"{flag} {path}")


def _check_output_flags(args: argparse.Namespace) -> None:
    """Refuse bad output flags before anything runs."""
    prepare_output_file(args.report, "--report")
    prepare_output_file(args.summary, "--summary")
    prepare_output_folder(getattr(args, "keep", None), "--keep")
    if getattr(args, "update_baseline", False) and not args.baseline:
        raise UsageError("--update-baseline needs --baseline DIR (where to write the goldens)")
    if getattr(args, "baseline_root", None) is not None and not getattr(args, "baseline", None):
        raise UsageError("--baseline-root needs --baseline DIR")
    if getattr(args, "baseline", None) is not None:
        prepare_output_folder(args.baseline, "--baseline")


def cmd_run(args: argparse.Namespace) -> int:
    from . import pipeline
    from .execute import Isolation
    from .spec import apply_overrides, select

    _check_output_flags(args)
    try:
        checks = select(apply_overrides(_load(args.specs), runs=args.runs, device=args.device), args.check)
    except SpecErrors as exc:
        raise UsageError(str(exc), exc.errors) from None
    _need_torch()
    golden = None
    if args.baseline:
        golden = pipeline.BaselineOptions(args.baseline, args.update_baseline, args.baseline_root or Path("."))
    session = pipeline.Session(Isolation(args.isolation), args.keep, golden)
    results, crash = _run_checks(args, checks, session)
    _write_reports(args, results)
    if crash is not None:
        raise crash
    return int(pipeline.exit_code(results))


def _run_checks(
    args: argparse.Namespace, checks: list[LoadedCheck], session: pipeline.Session
) -> tuple[list[pipeline.CheckResult], BaseException | None]:
    """Run every check with progress lines; on an internal failure, the checks completed before it."""
    from . import github, pipeline

    quiet = args.quiet
    total = len(checks)
    # Under GitHub the progress log goes to stdout inside a collapsible group.
    log = sys.stdout if args.github else sys.stderr

    def on_start(i: int, lc: LoadedCheck) -> None:
        if not quiet:
            print(
                f"[{i + 1}/{total}] {lc.name} ({lc.file}): {lc.check.runs} runs on {lc.check.device}",
                file=log,
                flush=True,
            )

    def on_run(lc: LoadedCheck, r: RunResult) -> None:
        if not quiet:
            text = "ok" if r.ok else r.cause
            print(f"      run {r.index}/{lc.check.runs} {text} ({r.duration:.1f}s)", file=log, flush=True)
            if not r.ok:
                for line in r.details:
                    print(f"        | {line}", file=log, flush=True)

    if args.github:
        github.begin_group(f"reprocheck: {total} checks")
    crash: BaseException | None = None
    try:
        results = pipeline.run_session(checks, session, on_start, on_run)
    except pipeline.SpecProblems as exc:
        raise UsageError(str(exc), exc.errors) from None
    except pipeline.Interrupted as exc:
        results, crash = exc.completed, exc.cause
    finally:
        if args.github:
            github.end_group()
    return results, crash


def _write_reports(args: argparse.Namespace, results: list[pipeline.CheckResult]) -> None:
    from . import report
    from .outputs import atomic_write_text

    if not results:
        return
    report.print_console(results)
    if args.report:
        atomic_write_text(args.report, report.render(report.Format.JSON, results))
    if args.summary:
        atomic_write_text(args.summary, report.render(report.Format.MARKDOWN, results))
    if args.github:
        from . import github

        for line in github.error_annotations(github.check_failures(results)):
            github.emit(line)
        github.append_summary(report.render(report.Format.MARKDOWN, results))
        github.write_outputs(github.step_outputs(results, str(args.report) if args.report else None))


def cmd_validate(args: argparse.Namespace) -> int:
    from .spec import name_errors, name_requests

    checks = _load(args.specs)
    requests = name_requests(checks)
    if requests:  # torchvision's names: asked of a worker, this process never imports torch
        _need_torch()
        from .execute import name_problems

        with tempfile.TemporaryDirectory(prefix="reprocheck-validate-") as tmp:
            errors = name_errors(checks, name_problems(requests, Path(tmp)))
        if errors:
            raise UsageError("\n".join(str(e) for e in errors), errors)
    for lc in checks:
        c = lc.check
        print(
            f"ok  {lc.name}  ({lc.file}:{lc.line}; model {c.model.source}, input {c.input.source}, "
            f"{c.runs} runs on {c.device})"
        )
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Exit 0 when the check is reproducible under its recipe, 1 when not, 3 when its runs fail."""
    from .spec import apply_overrides, select

    _check_output_flags(args)
    try:
        checks = select(apply_overrides(_load(args.specs), device=args.device), args.check)
    except SpecErrors as exc:
        raise UsageError(str(exc), exc.errors) from None
    _need_torch()
    from . import report
    from .diagnose import diagnose
    from .models import name_problems
    from .spec import name_errors, name_requests

    errors = name_errors(checks, name_problems(name_requests(checks)))  # diagnose itself compares with torch
    if errors:
        raise UsageError("\n".join(str(e) for e in errors), errors)
    from .execute import Isolation
    from .outputs import atomic_write_text

    results = []
    for lc in checks:
        print(f"diagnosing {lc.name} ({lc.file})", file=sys.stderr, flush=True)
        results.append(
            diagnose(lc, Isolation(args.isolation), lambda text: print(f"  {text}", file=sys.stderr, flush=True))
        )
    sys.stdout.write(report.DIAGNOSIS_RENDERERS[report.Format.CONSOLE](results))
    if args.report:
        atomic_write_text(args.report, report.DIAGNOSIS_RENDERERS[report.Format.JSON](results))
    if args.summary:
        atomic_write_text(args.summary, report.DIAGNOSIS_RENDERERS[report.Format.MARKDOWN](results))
    return max((d.exit_code for d in results), default=0)


def cmd_matrix(args: argparse.Namespace) -> int:
    """{"include": [{"check", "spec", "line", "device", "runs"}]} for `strategy.matrix: ${{ fromJSON(...) }}`."""
    from .spec import select

    try:
        checks = select(_load(args.specs), args.check)
    except SpecErrors as exc:
        raise UsageError(str(exc)) from None
    include = [
        {"check": lc.name, "spec": str(lc.file), "line": lc.line, "device": lc.check.device, "runs": lc.check.runs}
        for lc in checks
    ]
    text = json.dumps({"include": include}, separators=(",", ":"))
    print(text)
    if args.github_output:
        from .github import write_outputs

        write_outputs({args.github_output: text})
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    if args.report:
        from .report.schema import json_schema
    else:
        from .spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        from .outputs import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from .fingerprint import collect

    fp = collect(cuda=args.cuda or None)
    if args.json:
        print(json.dumps(fp, indent=2))
    else:
        for key, value in fp.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    print(f"{key}.{k}: {v}")
            else:
                print(f"{key}: {value}")
    return 0


def cmd_docker(args: argparse.Namespace) -> int:
    """The same check in the pinned image, launched by the one policy the Action uses too (launch.py)."""
    from . import container, launch

    if args.baseline_root is not None:
        raise UsageError("--baseline-root: in the container the goldens are laid out relative to --workspace")

    def absolute(path: object) -> str | None:  # command-line paths are relative to the current folder
        return os.path.abspath(str(path)) if path else None

    request = launch.Request(
        specs=tuple(os.path.abspath(s) for s in args.specs),
        image=args.image or container.default_image(),
        workspace=args.workspace or Path.cwd(),
        checks=tuple(args.check),
        runs=args.runs,
        device=args.device,
        gpus=args.gpus,
        network=args.network,
        isolation=args.isolation,
        quiet=args.quiet,
        report=absolute(args.report),
        summary=absolute(args.summary),
        baseline=absolute(args.baseline),
        update_baseline=args.update_baseline,
        github=args.github,
        github_output=os.environ.get("GITHUB_OUTPUT"),
        github_summary=os.environ.get("GITHUB_STEP_SUMMARY"),
    )
    try:
        plan = launch.plan(request)
        _check_output_flags(args)
        return container.run(plan, build=args.build)
    except (launch.LaunchError, container.ContainerError) as exc:
        raise UsageError(str(exc)) from None


HANDLERS = {
    Command.RUN: cmd_run,
    Command.VALIDATE: cmd_validate,
    Command.SCHEMA: cmd_schema,
    Command.ENV: cmd_env,
    Command.DOCKER: cmd_docker,
    Command.MATRIX: cmd_matrix,
    Command.DIAGNOSE: cmd_diagnose,
}


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so clean-up (workers, temp folders) runs."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def _crash_log(exc: BaseException, argv: list[str]) -> Path | None:
    """Write the traceback where the user can find it; None when even that fails."""
    folder = Path(os.environ.get("REPROCHECK_CRASH_DIR") or tempfile.gettempdir())
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = (
        f"reprocheck {__version__} crashed at {stamp}\ncommand: reprocheck {' '.join(argv)}\n"
        f"python: {sys.version.split()[0]} on {sys.platform}\n\n"
        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"reprocheck-crash-{stamp}-", suffix=".log", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return Path(name)
    except OSError:
        return None


def _internal_error(exc: BaseException, argv: list[str], github: bool) -> int:
    log = _crash_log(exc, argv)
    what = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    where = f"traceback in {log}" if log else "no crash log could be written"
    message = f"internal error ({what}); this is a bug in reprocheck, not in your model: {where}"
    if github:
        from . import github as gh

        gh.emit(gh.command("error", message, title="reprocheck: internal error"))
        with contextlib.suppress(OSError):
            gh.write_outputs({"result": "error", "failed-checks": "", "max-abs-diff": "0", "report": ""})
    print(f"reprocheck: {message}", file=sys.stderr)
    return int(ExitCode.INTERNAL)


def main(argv: list[str] | None = None) -> int:
    """Every command goes through here: usage errors exit 2, interruptions 130/143, anything unexpected 4."""
    argv = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    args = _parser().parse_args(argv)
    github = bool(getattr(args, "github", False))
    if github:
        from .github import guard_streams

        guard_streams()  # model text printed from here on can never act as a workflow command
    handler = HANDLERS[Command(args.command)]
    try:
        return int(handler(args))
    except UsageError as exc:
        if github:
            _github_usage_error(exc)
        die(str(exc))
    except OutputTargetError as exc:
        if github:
            _github_usage_error(UsageError(str(exc)))
        die(str(exc))
    except KeyboardInterrupt:
        print("reprocheck: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Terminated:
        print("reprocheck: terminated", file=sys.stderr)
        return int(ExitCode.TERMINATED)
    except Exception as exc:
        return _internal_error(exc, argv, github)
