"""`reprocheck run` (the checks, their reports, exit 0/1/3) and `reprocheck validate` (specs and model names,
nothing run). Each parses nothing and prints only what it is for; `main` maps what they return or raise to exit
codes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ...goldens import BaselineOptions
from ..exitcodes import UsageError
from .common import (
    checks_to_run,
    load_checks,
    need_torch,
    page_outputs,
    pictures_folder,
    run_checks,
    write_files,
    write_page,
)
from .options import Options

if TYPE_CHECKING:
    from ..checks import outcome


def cmd_run(args: Options) -> int:
    from ..checks import outcome, pipeline
    from ..workers.isolated import Isolation

    checks = checks_to_run(args)
    if args.dry_run or not checks:  # --dry-run, or a shard left without a check
        from .shards import list_only

        return list_only(args, checks)
    golden = None
    if args.baseline:
        golden = BaselineOptions(
            args.baseline,
            args.update_baseline,
            args.baseline_root or Path("."),
            args.seed,
            write_missing=args.missing_baseline == "write",
        )
    from ..checks.invariance import selected_kinds

    kinds = selected_kinds(args.invariance)
    with pictures_folder(args) as drawn:
        session = pipeline.Session(
            Isolation(args.isolation),
            args.keep,
            golden,
            kinds,
            args.require_devices,
            args.reference_float64,
            pictures=drawn,
            trace=args.trace_ops,
        )
        results, crash = run_checks(args, checks, session)
        _write_reports(args, results, drawn)
    if crash is not None:
        raise crash
    return int(outcome.exit_code(results))


def _write_reports(args: Options, results: list[outcome.CheckResult], drawn: Path | None) -> None:
    from .. import report
    from ..report import html

    if not results:
        return
    report.print_console(results)
    write_files(
        args,
        lambda: report.render(report.Format.JSON, results),
        lambda: report.render(report.Format.MARKDOWN, results),
    )
    if args.junit:
        from ...files import atomic_write_text

        atomic_write_text(args.junit, report.render(report.Format.JUNIT, results))
    write_page(args, lambda: html.render_run(results, drawn))
    if args.github:
        from .. import github
        from ..report import annotate

        for line in github.error_annotations(annotate.check_failures(results)):
            github.emit(line)
        for line in github.error_annotations(annotate.check_warnings(results), level="warning"):
            github.emit(line)
        page, where = page_outputs(args, sum(len(r.pictures) for r in results))
        github.append_summary(report.render(report.Format.MARKDOWN, results) + where)
        github.write_outputs({**annotate.step_outputs(results, str(args.report) if args.report else None), **page})


def cmd_validate(args: Options) -> int:
    from ..checks.names import name_errors, name_requests

    checks = load_checks(args.specs)
    requests = name_requests(checks)
    if requests and args.deep:  # asked of a worker: this process never imports torch
        need_torch()
        from ..workers.helper_client import name_problems

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
    if requests and not args.deep:
        print("(keys, values and files checked; `validate --deep` also checks the names against the installed zoos)")
    return 0
