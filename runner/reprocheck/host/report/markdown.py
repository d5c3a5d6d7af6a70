"""Markdown (`--summary`, the GitHub step summary). Model text is escaped: no HTML, links or code-span escapes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..checks.outcome import CheckResult, Status
from ..github import SUMMARY_LIMIT
from .text import (
    TABLE_ROWS,
    blind_lines,
    diagnosis_lines,
    difference_cell,
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

# Headroom under GitHub's cap (github.SUMMARY_LIMIT) for the line that says sections were left out.
SUMMARY_HEADROOM = 24 * 1024

if TYPE_CHECKING:
    from ...diagnosis import Diagnosis


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # emphasis, code, links/images, table cells, strikethrough


def _md(text: str) -> str:
    """Model text (exception messages, output keys, paths) as inert Markdown: no HTML, no links, no images,
    no code spans breaking out, one table cell."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("\r", " ").replace("\n", " ")


def _code(text: str) -> str:
    """`text` as a code span that nothing in it can close."""
    text = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


_ICONS = {Status.PASS: ":white_check_mark: pass", Status.FAIL: ":x: fail", Status.ERROR: ":warning: error"}


def render_markdown(results: list[CheckResult]) -> str:
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    head = [
        "## reprocheck",
        "",
        f"{plural(len(results), 'check')}: **{counts[Status.PASS]} passed**, **{counts[Status.FAIL]} failed**, "
        f"**{plural(counts[Status.ERROR], 'error')}**",
        *(["", f":warning: {line}"] if (line := written_line(results)) else []),
        "",
        "| check | result | runs | device | seed | largest difference | time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        diff = _md(difference_cell(r.comparison))
        ok_runs = sum(1 for x in r.runs if x.ok)
        head.append(
            f"| {_code(r.name)} | {_ICONS[r.status]} | {ok_runs}/{r.runs_requested}"
            f" | {r.device} | {r.seed} | {diff} | {r.duration:.1f}s |"
        )
    sections = [_section(r) for r in results if not _quiet(r)]
    text = "\n".join(head)
    for i, section in enumerate(sections):
        if len((text + section).encode()) > SUMMARY_LIMIT - SUMMARY_HEADROOM:
            text += (
                f"\n\n_{len(sections) - i} more check sections left out to stay "
                "under GitHub's 1 MiB summary limit; see the JSON report._"
            )
            break
        text += "\n" + section
    return text + "\n"


def _quiet(r: CheckResult) -> bool:
    """A pass with nothing to say gets its summary row only."""
    quiet_baseline = r.baseline is None or (r.baseline.status.value == "match" and not r.baseline.fallback)
    quiet = not r.notes and quiet_baseline and not flake_line(r) and not r.invariance and not r.fragile
    return r.status is Status.PASS and quiet and not r.blind and not r.ignored


def _section(r: CheckResult) -> str:
    body = ["", f"### {_code(r.name)} — {r.status.value}", "", f"Spec: {_code(str(r.file))} line {r.line}", ""]
    if r.status is Status.ERROR and own_runs_failed(r):
        run = r.failed_run
        body.append(f"{_md(run_cause(r))}")
        if run is not None and run.details:
            body += ["", "```", *[d.replace("```", "'''") for d in run.details], "```"]
        if run is not None and run.hint:
            body += ["", f"**Fix:** {_md(run.hint)}"]
    if flake_line(r):
        body += [f"**Flake rate:** {_md(flake_line(r) or '')}", ""]
    if r.comparison is not None and not r.comparison:
        fails = list(r.comparison.failures)
        body += [f"- {_md(summarize(o))}" for o in fails[:TABLE_ROWS]]
        if len(fails) > TABLE_ROWS:
            body.append(f"- … and {len(fails) - TABLE_ROWS} more outputs differ (see the JSON report)")
        rows = output_rows(fails)
        body += ["", "| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
        body += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows[1:]]
        body += ["", f"**Remedy:** {_md(remedy(fails[0]))}"]
    if r.invariance:
        body += ["", "**Invariance**", ""]
        for v in r.invariance:
            first, *rest = variant_lines(v)
            body.append(f"- {_md(first)}")
            body += [f"  - {_md(line.strip())}" for line in rest]
    body += _baseline_lines(r)
    if r.fragile:
        what = "fails the check" if r.fragile_policy == "fail" else "a warning"
        body += [
            "",
            f"**Fragile** (outputs on a decision boundary; {what}, `compare.fragile: {r.fragile_policy}`)",
            "",
        ]
        body += [f"- {_md(line)}" for line in fragile_lines(r)]
    body += [f"- blind: {_md(b)}" for b in blind_lines(r)]
    if r.ignored:
        body.append(f"- ignored (left out of every comparison): {_md(', '.join(r.ignored))}")
    body += [f"- note: {_md(n)}" for n in r.notes]
    return "\n".join(body)


def _baseline_lines(r: CheckResult) -> list[str]:
    b = r.baseline
    if b is None or (b.status.value == "match" and not b.fallback):
        return []
    status = "written, not yet committed" if b.status.value == "written" else b.status.value
    body = ["", f"**Baseline:** {status} ({_code(str(b.written or b.golden))})", ""]
    if b.which() and b.key:
        body += [f"Compared with {_md(b.which())}; this machine's key: {_code(b.key)}.", ""]
    if b.message:
        body.append(_md(b.message))
    if b.comparison is not None and not b.comparison:
        body += [f"- {_md(summarize(o))}" for o in list(b.comparison.failures)[:TABLE_ROWS]]
    if b.fingerprint_diff and not b:
        body += ["", "| environment field | baseline | now |", "| --- | --- | --- |"]
        body += [
            f"| {_md(d.field)} | {_md(str(d.expected))} | {_md(str(d.obtained))} |"
            for d in b.fingerprint_diff[:TABLE_ROWS]
        ]
    return body


def render_diagnosis_markdown(diagnoses: list[Diagnosis]) -> str:
    lines = ["## reprocheck diagnose", ""]
    for d in diagnoses:
        lines += [f"### `{_md(d.name)}`", "", f"Spec: `{d.file}` line {d.line}", ""]
        lines += [f"- {_md(t.strip())}" for t in diagnosis_lines(d)]
        lines.append("")
    return "\n".join(lines)
