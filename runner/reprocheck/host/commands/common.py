"""What the commands share: specs loaded, overridden and selected (every error a UsageError), torch checked
without importing it, the model cache applied, a check's sources kept out of writable folders, and the checks
run with their progress lines. This process never imports torch."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ...spec import LoadedCheck, SpecErrors
from ..checks.progress import Progress, Ticker
from ..exitcodes import UsageError
from .options import Options
from .targets import check_output_flags

if TYPE_CHECKING:
    from ..checks import outcome, pipeline
    from ..workers.run_result import RunResult


def load_checks(paths: Sequence[str]) -> list[LoadedCheck]:
    from ...spec import load_spec, spec_files

    loaded: list[LoadedCheck] = []
    errors = []
    try:
        files = spec_files(paths)
    except SpecErrors as exc:
        raise UsageError(str(exc), exc.errors) from None
    for path, folder in files:
        try:
            loaded += load_spec(path, folder)
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
                "(pip install torch torchvision numpy safetensors, or reprocheck's [torch] extra), or run the check "
                "in the pinned image with `reprocheck docker`"
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


def selected_checks(specs: Sequence[str], names: Sequence[str], **overrides: object) -> list[LoadedCheck]:
    """Specs loaded, command-line overrides applied (None: not given), --check selected; every problem one
    UsageError."""
    from ...spec import apply_overrides, select

    try:
        return select(apply_overrides(load_checks(specs), **overrides), names)
    except SpecErrors as exc:
        raise UsageError(str(exc), exc.errors) from None


def write_files(args: Options, json_text: Callable[[], str], markdown: Callable[[], str]) -> None:
    """--report and --summary, each written whole or not at all."""
    from ...files import atomic_write_text

    if args.report:
        atomic_write_text(args.report, json_text())
    if args.summary:
        atomic_write_text(args.summary, markdown())


@contextlib.contextmanager
def pictures_folder(args: Options) -> Iterator[Path | None]:
    """Where the pictures go: --pictures DIR (checked before anything ran), or for --html alone a temporary folder
    (its pictures are inlined into the page, then it goes); None when neither is asked."""
    if args.pictures is not None:
        yield args.pictures.absolute()
        return
    if args.html is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="reprocheck-pictures-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_page(args: Options, render: Callable[[], str]) -> None:
    """--html, written whole or not at all."""
    if args.html:
        from ...files import atomic_write_text

        atomic_write_text(args.html, render())


def page_outputs(args: Options, drawn: int) -> tuple[dict[str, str], str]:
    """Under GitHub: the `html` and `pictures` step outputs, and the summary's line saying where they are."""
    outputs = {"html": str(args.html or ""), "pictures": str(args.pictures or "")}
    said = []
    if args.pictures:
        said.append(f"{drawn} picture{'' if drawn == 1 else 's'} of what differs in `{args.pictures}`")
    if args.html:
        said.append(f"the page (verdict, outputs, pictures) in `{args.html}`")
    return outputs, ("\n\nreprocheck wrote " + " and ".join(said) + ".\n" if said else "")


def checked_model_cache(cache: str, homes: tuple[str, ...] = (), credentials: bool = True) -> str:
    """--model-cache DIR, its absolute path: a folder that exists and that the launch policy takes as a cache."""
    from ..launcher.launch_checks import LaunchError, check_cache_folder

    if not os.path.isdir(cache):
        raise UsageError(f"--model-cache {cache}: no such folder (fill it first, see the README)")
    try:
        check_cache_folder("--model-cache", Path(os.path.realpath(cache)), homes=homes, credentials=credentials)
    except LaunchError as exc:
        raise UsageError(str(exc)) from None
    return os.path.abspath(cache)


def use_model_cache(cache: str | None) -> None:
    """--model-cache DIR for the runs of this process: checked, then in the environment every worker inherits."""
    if not cache:
        return
    from ..launcher.launch import cache_env

    # Natively the model runs as you: the host's folders and sockets are refused, not your own files.
    os.environ.update(cache_env(checked_model_cache(cache, credentials=False)))


def checks_to_run(args: Options) -> list[LoadedCheck]:
    """Output targets checked, specs loaded, --runs/--device applied, --check selected, --shard taken, torch
    present. Under --dry-run (or for a shard without a check) only what names the checks: nothing made, no torch."""
    from .shards import take_shard

    if not args.dry_run:
        check_output_flags(args)
    strict = True if args.strict else None
    checks = selected_checks(args.specs, args.check, runs=args.runs, device=args.device, strict=strict, seed=args.seed)
    checks = take_shard(checks, args)
    if args.dry_run or not checks:
        return checks
    if args.command != "docker":  # the container mounts it (launcher/launch.py)
        use_model_cache(args.model_cache)
    writable = os.environ.get("REPROCHECK_WRITABLE")  # set by the launch policy in the container
    if writable:
        refuse_writable_sources(checks, json.loads(writable))
    need_torch(baseline=args.baseline is not None)
    return checks


class _Lines(Progress):
    """The progress as lines: a check started, each run's end (and, off a terminal, a failed run's traceback)."""

    def __init__(self, log: TextIO, quiet: bool) -> None:
        super().__init__()
        self.log, self.quiet = log, quiet
        self.ticker = Ticker(log, self)

    def check_started(self, index: int, total: int, lc: LoadedCheck) -> None:
        super().check_started(index, total, lc)
        if not self.quiet:
            self.ticker.clear()
            c = lc.check
            print(
                f"[{index + 1}/{total}] {lc.name} ({lc.file}): {c.runs} runs on {c.device}", file=self.log, flush=True
            )

    def run_ended(self, lc: LoadedCheck, run: RunResult) -> None:
        super().run_ended(lc, run)
        if self.quiet:
            return
        self.ticker.clear()
        text = "ok" if run.ok else run.cause
        print(f"      run {run.index}/{lc.check.runs} {text} ({run.duration:.1f}s)", file=self.log, flush=True)
        # On one terminal the report below prints the traceback too: once is enough there.
        if not run.ok and not (self.log.isatty() and sys.stdout.isatty()):
            for line in run.details:
                print(f"        | {line}", file=self.log, flush=True)


def run_checks(
    args: Options, checks: list[LoadedCheck], session: pipeline.Session
) -> tuple[list[outcome.CheckResult], BaseException | None]:
    """Run every check with progress lines; on an internal failure, the checks completed before it."""
    from .. import github
    from ..checks import pipeline

    total = len(checks)
    # Under GitHub the progress log goes to stdout inside a collapsible group.
    lines = _Lines(sys.stdout if args.github else sys.stderr, args.quiet)
    session = dataclasses.replace(session, progress=lines)
    if args.github:
        github.begin_group(f"reprocheck: {total} check" + ("" if total == 1 else "s"))
    crash: BaseException | None = None
    try:
        with lines.ticker if not args.quiet else contextlib.nullcontext():
            results = pipeline.run_session(checks, session)
    except pipeline.SpecProblems as exc:
        raise UsageError(str(exc), exc.errors) from None
    except pipeline.Interrupted as exc:
        results, crash = exc.completed, exc.cause
    finally:
        if args.github:
            github.end_group()
    return results, crash
