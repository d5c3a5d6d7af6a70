"""Check results -> console text, JSON, Markdown. One renderer per format, built from result objects.

JSON report (`--report FILE`), schema_version 1:
  {"tool": "reprocheck", "version": str, "schema_version": 1, "exit_code": int,
   "summary": {"checks": int, "pass": int, "fail": int, "error": int},
   "checks": [{
     "name", "file", "line", "status": "pass"|"fail"|"error", "seed", "device",
     "runs_requested", "config_hash", "duration_s", "recipe": {...as applied...},
     "runs": [{"index", "status": "ok"|"error"|"crashed"|"timeout", "duration_s", "cause",
               "stage", "details": [str], "hint", "timings": {...}, "warnings": [str]}],
     "outputs": [{"path", "status": "match"|"values"|"structure", "shape", "dtype", "total",
                  "mismatched", "mismatch_percent", "max_abs_diff", "max_rel_diff", "mean_abs_diff",
                  "first_index", "expected_value", "obtained_value", "nan_count", "exact",
                  "tolerance": {"atol", "rtol", "pattern"},
                  "passing_tolerance": {"atol", "rtol"},   # null: no tolerance would pass
                  "runs": [expected_run, obtained_run], "detail"}],
     "fingerprint": {...}, "notes": [str]}]}
Non-finite numbers are written as the strings "inf", "-inf", "nan".
"""

from __future__ import annotations

import enum
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from . import __version__
from .compare import Kind, OutputResult
from .pipeline import CheckResult, Status, exit_code

TABLE_ROWS = 20  # per failing check, in console and Markdown
SUMMARY_LIMIT = 1000 * 1024  # GitHub refuses step summaries over 1 MiB


class Format(str, enum.Enum):
    CONSOLE = "console"
    JSON = "json"
    MARKDOWN = "markdown"


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return str(x)
    if x == 0:
        return "0"
    return f"{x:.3g}"


def _val(x: float | None) -> str:
    # Enough digits to show how two nearly equal values differ.
    return "-" if x is None else f"{x:.9g}"


def _where(o: OutputResult) -> str:
    return f"{o.path}[{', '.join(map(str, o.first_index))}]" if o.first_index else o.path


def summarize(o: OutputResult) -> str:
    """One line: what differs, by how much, where."""
    if o.kind is Kind.STRUCTURE:
        return f"{o.path}: structure differs (run {o.expected_run} vs run {o.obtained_run}): {o.detail}"
    if o.kind is Kind.MATCH:
        extra = f", {o.nan_count} NaN in the same places" if o.nan_count else ""
        return f"{o.path}: matches ({o.total} values{extra})"
    text = (f"{o.path}: {o.mismatched} of {o.total} values ({o.mismatch_percent:.1f}%) differ between run "
            f"{o.expected_run} and run {o.obtained_run}; max abs diff {_num(o.max_abs_diff)}, "
            f"max rel diff {_num(o.max_rel_diff)}; first at {_where(o)}: "
            f"{_val(o.expected_value)} vs {_val(o.obtained_value)}")
    return text + (f" ({o.detail})" if o.detail else "")


def remedy(o: OutputResult) -> str:
    if o.kind is Kind.STRUCTURE:
        return ("the output's structure changes between runs, so no tolerance helps: something before it varies "
                "(values near a score threshold, an unseeded random source, a nondeterministic op); "
                "run `reprocheck diagnose` to find the first module that diverges")
    if o.exact:
        return "integer/bool outputs are compared exactly; find the source of the variation (e.g. argmax over values that differ)"
    if o.needed_atol is None and o.needed_rtol is None:
        return "NaN/inf differ between runs, which no tolerance accepts; find where they come from"
    parts = []
    if o.needed_atol is not None:
        parts.append(f"atol: {o.needed_atol:.3g} (with rtol {o.tolerance.rtol:g})")
    if o.needed_rtol is not None:
        parts.append(f"rtol: {o.needed_rtol:.3g} (with atol {o.tolerance.atol:g})")
    return ("would pass with tolerance " + " or ".join(parts) + f" for {o.path!r}; "
            "but first ask why the runs differ: run-to-run nondeterminism usually means a nondeterministic kernel or an "
            "unseeded random source")


def run_cause(r: CheckResult) -> str:
    run = r.failed_run
    if run is None:
        return f"only {len(r.runs)} of {r.runs_requested} runs happened"
    return f"run {run.index} of {r.runs_requested} {run.cause}"


# --- console ------------------------------------------------------------------------------------


def _use_colour(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


_COLOURS = {Status.PASS: "32", Status.FAIL: "31", Status.ERROR: "33"}


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _output_rows(outs: list[OutputResult]) -> list[list[str]]:
    rows = [["output", "result", "shape", "dtype", "mismatched", "max abs", "max rel", "first at", "passing tolerance"]]
    for o in outs[:TABLE_ROWS]:
        passing = "-" if o.kind is Kind.STRUCTURE or o.exact or o.needed_atol is None else f"atol {_num(o.needed_atol)}"
        rows.append([o.path, o.kind.value, str(list(o.shape)) if o.shape or o.total else "-", o.dtype or "-",
                     f"{o.mismatched}/{o.total}" if o.kind is not Kind.STRUCTURE else "-",
                     _num(o.max_abs_diff), _num(o.max_rel_diff),
                     str(list(o.first_index)) if o.first_index is not None else "-", passing if o.kind is not Kind.MATCH else "-"])
    return rows


def check_line(r: CheckResult, colour: bool = False) -> str:
    label = r.status.value.upper().ljust(5)
    if colour:
        label = f"\033[{_COLOURS[r.status]}m{label}\033[0m"
    ok_runs = sum(1 for x in r.runs if x.ok)
    tail = ""
    if r.status is Status.FAIL and r.comparison is not None:
        tail = f"  {len(r.comparison.failures)} of {len(r.comparison.outputs)} outputs differ"
    elif r.status is Status.ERROR:
        tail = f"  {run_cause(r)}"
    return f"{label} {r.name}  ({ok_runs}/{r.runs_requested} runs, {r.device}, seed {r.seed}, {r.duration:.1f}s){tail}"


def render_console(results: list[CheckResult], colour: bool = False) -> str:
    lines = [check_line(r, colour) for r in results]
    for r in results:
        if r.status is Status.PASS and not r.notes:
            continue
        lines += ["", f"{r.name} ({r.file}:{r.line})"]
        if r.status is Status.ERROR:
            run = r.failed_run
            lines.append(f"  {run_cause(r)}")
            if run is not None:
                lines += [f"    | {d}" for d in run.details]
                if run.hint:
                    lines.append(f"  fix: {run.hint}")
        if r.comparison is not None and r.status is Status.FAIL:
            fails = list(r.comparison.failures)
            lines += [f"  {summarize(o)}" for o in fails[:TABLE_ROWS]]
            if len(fails) > TABLE_ROWS:
                lines.append(f"  ... and {len(fails) - TABLE_ROWS} more outputs differ (see --report)")
            lines += ["  " + t for t in _table(_output_rows(fails))]
            lines.append(f"  remedy: {remedy(fails[0])}")
        lines += [f"  note: {n}" for n in r.notes]
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    lines += ["", f"{len(results)} checks: {counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, {counts[Status.ERROR]} errors"]
    return "\n".join(lines) + "\n"


# --- JSON ---------------------------------------------------------------------------------------


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def output_dict(o: OutputResult) -> dict[str, Any]:
    passing = None
    if o.kind is Kind.MATCH:
        passing = {"atol": 0.0 if o.needed_atol is None else o.needed_atol, "rtol": 0.0 if o.needed_rtol is None else o.needed_rtol}
    elif o.kind is Kind.VALUES and not o.exact and (o.needed_atol is not None or o.needed_rtol is not None):
        passing = {"atol": o.needed_atol, "rtol": o.needed_rtol}
    return {
        "path": o.path, "status": o.kind.value, "shape": list(o.shape), "dtype": o.dtype, "total": o.total,
        "mismatched": o.mismatched, "mismatch_percent": round(o.mismatch_percent, 4),
        "max_abs_diff": o.max_abs_diff, "max_rel_diff": o.max_rel_diff, "mean_abs_diff": o.mean_abs_diff,
        "first_index": list(o.first_index) if o.first_index is not None else None,
        "expected_value": o.expected_value, "obtained_value": o.obtained_value, "nan_count": o.nan_count,
        "exact": o.exact, "tolerance": {"atol": o.tolerance.atol, "rtol": o.tolerance.rtol, "pattern": o.tolerance.pattern},
        "passing_tolerance": passing, "runs": [o.expected_run, o.obtained_run], "detail": o.detail,
    }


def check_dict(r: CheckResult) -> dict[str, Any]:
    return {
        "name": r.name, "file": str(r.file), "line": r.line, "status": r.status.value, "seed": r.seed,
        "device": r.device, "runs_requested": r.runs_requested, "config_hash": r.config_hash,
        "duration_s": round(r.duration, 3), "recipe": r.recipe,
        "runs": [{"index": x.index, "status": x.status.value, "duration_s": round(x.duration, 3), "cause": x.cause,
                  "stage": x.stage, "details": list(x.details), "hint": x.hint, "timings": x.timings,
                  "warnings": list(x.warnings)} for x in r.runs],
        "outputs": [output_dict(o) for o in (r.comparison.outputs if r.comparison is not None else ())],
        "fingerprint": r.fingerprint, "notes": list(r.notes),
    }


def render_json(results: list[CheckResult]) -> str:
    data = {
        "tool": "reprocheck", "version": __version__, "schema_version": 1, "exit_code": int(exit_code(results)),
        "summary": {"checks": len(results), **{s.value: sum(1 for r in results if r.status is s) for s in Status}},
        "checks": [check_dict(r) for r in results],
    }
    return json.dumps(_finite(data), indent=2) + "\n"


# --- Markdown -----------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_ICONS = {Status.PASS: ":white_check_mark: pass", Status.FAIL: ":x: fail", Status.ERROR: ":warning: error"}


def render_markdown(results: list[CheckResult]) -> str:
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    head = [
        "## reprocheck",
        "",
        f"{len(results)} checks: **{counts[Status.PASS]} passed**, **{counts[Status.FAIL]} failed**, **{counts[Status.ERROR]} errors**",
        "",
        "| check | result | runs | device | seed | max abs diff | time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        diff = _num(r.comparison.max_abs_diff) if r.comparison is not None else "-"
        ok_runs = sum(1 for x in r.runs if x.ok)
        head.append(f"| `{_md(r.name)}` | {_ICONS[r.status]} | {ok_runs}/{r.runs_requested} | {r.device} | {r.seed} | {diff} | {r.duration:.1f}s |")
    sections: list[str] = []
    for r in results:
        if r.status is Status.PASS and not r.notes:
            continue
        body = ["", f"### `{_md(r.name)}` — {r.status.value}", "", f"Spec: `{r.file}` line {r.line}", ""]
        if r.status is Status.ERROR:
            run = r.failed_run
            body.append(f"{_md(run_cause(r))}")
            if run is not None and run.details:
                body += ["", "```", *[d.replace("```", "'''") for d in run.details], "```"]
            if run is not None and run.hint:
                body += ["", f"**Fix:** {_md(run.hint)}"]
        if r.comparison is not None and r.status is Status.FAIL:
            fails = list(r.comparison.failures)
            body += [f"- {_md(summarize(o))}" for o in fails[:TABLE_ROWS]]
            if len(fails) > TABLE_ROWS:
                body.append(f"- … and {len(fails) - TABLE_ROWS} more outputs differ (see the JSON report)")
            rows = _output_rows(fails)
            body += ["", "| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
            body += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows[1:]]
            body += ["", f"**Remedy:** {_md(remedy(fails[0]))}"]
        body += [f"- note: {_md(n)}" for n in r.notes]
        sections.append("\n".join(body))
    text = "\n".join(head)
    for i, section in enumerate(sections):
        if len((text + section).encode()) > SUMMARY_LIMIT - 200:
            text += f"\n\n_{len(sections) - i} more check sections left out to stay under GitHub's 1 MiB summary limit; see the JSON report._"
            break
        text += "\n" + section
    return text + "\n"


# --- GitHub Actions ---------------------------------------------------------------------------


def github_failures(results: list[CheckResult]) -> list[tuple[str, int, str, str]]:
    """(spec file, line, title, message) for each check that did not pass, for annotations."""
    from .github import workspace_relative

    out = []
    for r in results:
        if r.status is Status.PASS:
            continue
        if r.status is Status.ERROR:
            title, message = f"reprocheck: {r.name} failed to run", run_cause(r)
        else:
            fails = r.comparison.failures if r.comparison is not None else ()
            title = f"reprocheck: {r.name} is not reproducible"
            message = "; ".join(summarize(o) for o in fails[:3]) + (f"; and {len(fails) - 3} more" if len(fails) > 3 else "")
        out.append((workspace_relative(r.file), r.line, title, message))
    return out


def github_outputs(results: list[CheckResult], report_path: str | None) -> dict[str, str]:
    code = exit_code(results)
    result = {0: "pass", 1: "fail"}.get(int(code), "error")
    diffs = [r.comparison.max_abs_diff for r in results if r.comparison is not None]
    return {
        "result": result,
        "failed-checks": ",".join(r.name for r in results if r.status is not Status.PASS),
        "max-abs-diff": _num(max(diffs)) if diffs else "0",
        "report": report_path or "",
    }


RENDERERS: dict[Format, Callable[[list[CheckResult]], str]] = {
    Format.CONSOLE: render_console,
    Format.JSON: render_json,
    Format.MARKDOWN: render_markdown,
}


def render(fmt: Format, results: list[CheckResult]) -> str:
    return RENDERERS[fmt](results)


def print_console(results: list[CheckResult], stream: TextIO = sys.stdout) -> None:
    stream.write(render_console(results, colour=_use_colour(stream)))
