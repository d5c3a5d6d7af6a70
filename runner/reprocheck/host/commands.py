"""The commands that run checks (run, validate, diagnose; matrix, schema, env, docker are in other_commands.py):
each parses nothing and prints only what it is for; `cli` maps what they return or raise to exit codes. This
process never imports torch."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..goldens import BaselineOptions
from ..spec import LoadedCheck, SpecErrors
from .exitcodes import UsageError
from .targets import check_output_flags

if TYPE_CHECKING:
    from . import outcome, pipeline
    from .runs import RunResult


def load_checks(paths: list[str]) -> list[LoadedCheck]:
    from ..spec import load_spec

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


def need_torch(baseline: bool = False) -> None:
    # Checked without importing them: this process never imports torch, its workers do.
    needed = {"torch": "the runs", "numpy": "the runs"}
    if baseline:
        needed["safetensors"] = "--baseline (the goldens' file format)"
    for package, why in needed.items():
        if importlib.util.find_spec(package) is None:
            raise UsageError(
                f"{package} is not installed in this environment and {why} need it: install it "
                "(pip install 'reprocheck[torch]'), or run the check in the pinned image with `reprocheck docker`"
            )


def _check_files(lc: LoadedCheck) -> list[Path]:
    """The files a check is made of: its spec, model and input files, and its factory's module."""
    c = lc.check
    files = [Path(lc.file).resolve()]
    inputs = [c.input, *(c.input.kwargs or {}).values()]  # keyword inputs have their own files
    files += [Path(p) for p in (c.model.torchscript, c.model.exported) if p]
    files += [Path(p) for i in inputs for p in (i.image, i.tensor) if p]
    if c.model.huggingface and c.model.huggingface.path:
        files.append(Path(c.model.huggingface.path))
    if c.model.factory:
        top = Path(lc.base_dir).resolve() / c.model.factory.partition(":")[0].split(".")[0]
        files += [top, top.with_suffix(".py")]
    return files


def refuse_writable_sources(checks: list[LoadedCheck], writable: list[str]) -> None:
    """In the container: no file a check is made of may lie in a folder the run can write (model code could
    rewrite it for the next run or the next workflow step)."""
    folders = [Path(os.path.realpath(w)) for w in writable]
    for lc in checks:
        for file in _check_files(lc):
            real = Path(os.path.realpath(file))
            folder = next((f for f in folders if real == f or f in real.parents), None)
            if folder is not None and os.path.lexists(file):
                raise UsageError(
                    f"{lc.file}: check {lc.name} loads {file}, which is in the writable output folder {folder}; "
                    "keep specs, models and inputs out of the report, summary and baseline folders"
                )


def checks_to_run(args: argparse.Namespace) -> list[LoadedCheck]:
    """Output targets checked, specs loaded, --runs/--device applied, --check selected, torch present."""
    from ..spec import apply_overrides, select

    check_output_flags(args)
    try:
        strict = True if getattr(args, "strict", False) else None
        checks = select(
            apply_overrides(load_checks(args.specs), runs=args.runs, device=args.device, strict=strict), args.check
        )
    except SpecErrors as exc:
        raise UsageError(str(exc), exc.errors) from None
    cache = getattr(args, "model_cache", None)
    if cache and getattr(args, "command", "run") != "docker":
        from .launch import cache_env

        if not os.path.isdir(cache):
            raise UsageError(f"--model-cache {cache}: no such folder (fill it first, see the README)")
        from .launch_checks import LaunchError, check_cache_folder

        try:
            # Natively the model runs as you: the host's folders and sockets are refused, not your own files.
            check_cache_folder("--model-cache", Path(os.path.realpath(cache)), credentials=False)
        except LaunchError as exc:
            raise UsageError(str(exc)) from None
        os.environ.update(cache_env(os.path.abspath(cache)))  # the workers inherit it
    writable = os.environ.get("REPROCHECK_WRITABLE")  # set by the launch policy in the container
    if writable:
        refuse_writable_sources(checks, json.loads(writable))
    need_torch(baseline=bool(getattr(args, "baseline", None)))
    return checks


def cmd_run(args: argparse.Namespace) -> int:
    from . import outcome, pipeline
    from .execute import Isolation

    checks = checks_to_run(args)
    golden = None
    if args.baseline:
        golden = BaselineOptions(args.baseline, args.update_baseline, args.baseline_root or Path("."))
    from .invariance import selected_kinds

    kinds = selected_kinds(args.invariance)
    session = pipeline.Session(
        Isolation(args.isolation),
        args.keep,
        golden,
        kinds,
        args.require_devices,
        getattr(args, "reference_float64", False),
    )
    results, crash = run_checks(args, checks, session)
    _write_reports(args, results)
    if crash is not None:
        raise crash
    return int(outcome.exit_code(results))


def run_checks(
    args: argparse.Namespace, checks: list[LoadedCheck], session: pipeline.Session
) -> tuple[list[outcome.CheckResult], BaseException | None]:
    """Run every check with progress lines; on an internal failure, the checks completed before it."""
    from . import github, pipeline

    quiet = args.quiet
    total = len(checks)
    # Under GitHub the progress log goes to stdout inside a collapsible group.
    log = sys.stdout if args.github else sys.stderr

    from . import progress

    ticker = progress.Ticker(log)

    def on_start(i: int, lc: LoadedCheck) -> None:
        progress.phase(f"{lc.name}: run 1/{lc.check.runs}")
        if not quiet:
            ticker.clear()
            print(
                f"[{i + 1}/{total}] {lc.name} ({lc.file}): {lc.check.runs} runs on {lc.check.device}",
                file=log,
                flush=True,
            )

    def on_run(lc: LoadedCheck, r: RunResult) -> None:
        nxt = r.index + 1
        progress.phase(f"{lc.name}: run {nxt}/{lc.check.runs}" if r.ok and nxt <= lc.check.runs else None)
        if not quiet:
            ticker.clear()
            text = "ok" if r.ok else r.cause
            print(f"      run {r.index}/{lc.check.runs} {text} ({r.duration:.1f}s)", file=log, flush=True)
            # On one terminal the report below prints the traceback too: once is enough there.
            if not r.ok and not (log.isatty() and sys.stdout.isatty()):
                for line in r.details:
                    print(f"        | {line}", file=log, flush=True)

    if args.github:
        github.begin_group(f"reprocheck: {total} check" + ("" if total == 1 else "s"))
    crash: BaseException | None = None
    try:
        with ticker if not quiet else contextlib.nullcontext():
            results = pipeline.run_session(checks, session, on_start, on_run)
    except pipeline.SpecProblems as exc:
        raise UsageError(str(exc), exc.errors) from None
    except pipeline.Interrupted as exc:
        results, crash = exc.completed, exc.cause
    finally:
        if args.github:
            github.end_group()
    return results, crash


def _write_reports(args: argparse.Namespace, results: list[outcome.CheckResult]) -> None:
    from ..files import atomic_write_text
    from . import report

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
        for line in github.error_annotations(github.check_warnings(results), level="warning"):
            github.emit(line)
        github.append_summary(report.render(report.Format.MARKDOWN, results))
        github.write_outputs(github.step_outputs(results, str(args.report) if args.report else None))


def cmd_validate(args: argparse.Namespace) -> int:
    from .names import name_errors, name_requests

    checks = load_checks(args.specs)
    requests = name_requests(checks)
    if requests:  # torchvision's names: asked of a worker, this process never imports torch
        need_torch()
        from .helpers import name_problems

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
    from ..spec import apply_overrides, select

    check_output_flags(args)
    try:
        checks = select(apply_overrides(load_checks(args.specs), device=args.device), args.check)
    except SpecErrors as exc:
        raise UsageError(str(exc), exc.errors) from None
    need_torch()
    from . import report
    from .diagnose import diagnose
    from .helpers import name_problems
    from .names import name_errors, name_requests

    with tempfile.TemporaryDirectory(prefix="reprocheck-names-") as tmp:
        errors = name_errors(checks, name_problems(name_requests(checks), Path(tmp)))
    if errors:
        raise UsageError("\n".join(str(e) for e in errors), errors)
    from ..files import atomic_write_text
    from .execute import Isolation

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
