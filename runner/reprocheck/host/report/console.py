"""Console text: one line per check, then per failure a summary, a capped table and the remedy."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

from ..checks.outcome import CheckResult, Status, VariantStatus
from .text import (
    TABLE_ROWS,
    blind_lines,
    diagnosis_lines,
    flake_line,
    fragile_lines,
    output_rows,
    own_runs_failed,
    plural,
    remedy,
    run_cause,
    summarize,
    variant_lines,
    written_line,
)

if TYPE_CHECKING:
    from ...diagnosis import Diagnosis


def _use_colour(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


_COLOURS = {Status.PASS: "32", Status.FAIL: "31", Status.ERROR: "33"}


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def check_line(r: CheckResult, colour: bool = False) -> str:
    label = r.status.value.upper().ljust(5)
    if colour:
        label = f"\033[{_COLOURS[r.status]}m{label}\033[0m"
    ok_runs = sum(1 for x in r.runs if x.ok)
    tail = ""
    if r.status is Status.FAIL and r.comparison is not None and not r.comparison:
        n = len(r.comparison.outputs)
        tail = f"  {len(r.comparison.failures)} of {plural(n, 'output')} {'differs' if n == 1 else 'differ'}"
    elif r.status is Status.FAIL and any(v.status is VariantStatus.FAIL for v in r.invariance):
        tail = f"  invariance: {', '.join(v.label for v in r.invariance if v.status == 'fail')} differ"
    elif r.status is Status.FAIL and r.baseline is not None and not r.baseline:
        tail = f"  baseline: {r.baseline.status.value}"
    elif r.status is Status.FAIL and r.fragile and r.fragile_policy == "fail":
        tail = f"  {plural(len(r.fragile), 'output')} on a decision boundary (fragile: fail)"
    elif r.status is Status.FAIL and r.blind_all:
        tail = "  every compared output is constant: blind (strict: true)"
    elif r.status is Status.PASS and r.blind:
        tail = f"  blind: {plural(len(r.blind), 'output')} constant in every run (see below)"
    elif (
        r.status is Status.ERROR and r.failed_run is None and any(v.status is VariantStatus.ERROR for v in r.invariance)
    ):
        tail = "  an invariance variant's run failed"
    elif r.status is Status.ERROR:
        tail = f"  {run_cause(r)}"
    elif r.status is Status.PASS and any(v.status is VariantStatus.SKIPPED for v in r.invariance):
        tail = f"  invariance: {', '.join(v.label for v in r.invariance if v.status == 'skipped')} skipped (not passed)"
    elif r.status is Status.PASS and flake_line(r):
        tail = f"  {flake_line(r)}"
    elif r.status is Status.PASS and r.fragile:
        tail = f"  fragile: {plural(len(r.fragile), 'output')} on a decision boundary (see below)"
    return f"{label} {r.name}  ({ok_runs}/{r.runs_requested} runs, {r.device}, seed {r.seed}, {r.duration:.1f}s){tail}"


def _baseline_console(r: CheckResult) -> list[str]:
    b = r.baseline
    if b is None:
        return []
    lines = [f"  baseline: {b.status.value} ({b.written or b.golden})"]
    if b.which() and b.key:
        lines.append(f"    compared with {b.which()}; this machine's key: {b.key}")
    if b.message:
        lines.append(f"    {b.message}")
    if b.comparison is not None and not b.comparison:
        fails = list(b.comparison.failures)
        lines += [f"    {summarize(o)}" for o in fails[:TABLE_ROWS]]
    if b.fingerprint_diff and not b:
        rows = [["environment field", "baseline", "now"]] + [
            [d.field, str(d.expected), str(d.obtained)] for d in b.fingerprint_diff[:TABLE_ROWS]
        ]
        lines += ["    " + t for t in _table(rows)]
    return lines


def render_console(results: list[CheckResult], colour: bool = False) -> str:
    lines = [check_line(r, colour) for r in results]
    for r in results:
        quiet_baseline = r.baseline is None or (r.baseline.status.value == "match" and not r.baseline.fallback)
        quiet = not r.notes and not r.blind and not r.ignored and not r.invariance and not r.fragile
        if r.status is Status.PASS and quiet and quiet_baseline:
            continue
        lines += ["", f"{r.name} ({r.file}:{r.line})"]
        if r.status is Status.ERROR and own_runs_failed(r):
            run = r.failed_run
            lines.append(f"  {run_cause(r)}")
            if run is not None:
                lines += [f"    | {d}" for d in run.details]
                if run.hint:
                    lines.append(f"  fix: {run.hint}")
        if r.status is not Status.PASS and flake_line(r):
            lines.append(f"  {flake_line(r)}")
        if r.comparison is not None and not r.comparison:
            fails = list(r.comparison.failures)
            lines += [f"  {summarize(o)}" for o in fails[:TABLE_ROWS]]
            if len(fails) > TABLE_ROWS:
                lines.append(f"  ... and {len(fails) - TABLE_ROWS} more outputs differ (see --report)")
            lines += ["  " + t for t in _table(output_rows(fails))]
            lines.append(f"  remedy: {remedy(fails[0])}")
        lines += [f"  {line}" for v in r.invariance for line in variant_lines(v)]
        lines += _baseline_console(r)
        lines += [f"  fragile ({r.fragile_policy}): {line}" for line in fragile_lines(r)]
        lines += [f"  blind: {b}" for b in blind_lines(r)]
        if r.ignored:
            lines.append(f"  ignored (left out of every comparison): {', '.join(r.ignored)}")
        lines += [f"  note: {n}" for n in r.notes]
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    lines += [
        "",
        f"{plural(len(results), 'check')}: {counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, "
        f"{plural(counts[Status.ERROR], 'error')}",
    ]
    written = written_line(results)
    if written:
        lines.append(written)
    return "\n".join(lines) + "\n"


def print_console(results: list[CheckResult], stream: TextIO | None = None) -> None:
    # sys.stdout as it is now: under --github it is the neutralising stream, never the one seen at import.
    stream = stream or sys.stdout
    stream.write(render_console(results, colour=_use_colour(stream)))


def render_diagnosis_console(diagnoses: list[Diagnosis]) -> str:
    lines = []
    for d in diagnoses:
        lines.append(f"diagnose {d.name} ({d.file}:{d.line})")
        lines += [f"  {t}" for t in diagnosis_lines(d)]
        lines.append("")
    return "\n".join(lines)
