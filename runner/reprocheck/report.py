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
import re
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _val(x: float | None) -> str:
    # Enough digits to show how two nearly equal values differ.
    return "-" if x is None else f"{x:.9g}"


def _where(o: OutputResult) -> str:
    return f"{o.path}[{', '.join(map(str, o.first_index))}]" if o.first_index else o.path


def _run_name(index: int) -> str:
    return "the baseline" if index == 0 else f"run {index}"  # run 0: the stored golden


def summarize(o: OutputResult) -> str:
    """One line: what differs, by how much, where."""
    a, b = _run_name(o.expected_run), _run_name(o.obtained_run)
    if o.kind is Kind.STRUCTURE:
        return f"{o.path}: structure differs ({a} vs {b}): {o.detail}"
    if o.kind is Kind.MATCH:
        extra = f", {o.nan_count} NaN in the same places" if o.nan_count else ""
        return f"{o.path}: matches ({o.total} values{extra})"
    text = (
        f"{o.path}: {o.mismatched} of {o.total} values ({o.mismatch_percent:.1f}%) differ between {a} "
        f"and {b}; max abs diff {_num(o.max_abs_diff)}, "
        f"max rel diff {_num(o.max_rel_diff)}; first at {_where(o)}: "
        f"{_val(o.expected_value)} vs {_val(o.obtained_value)}"
    )
    return text + (f" ({o.detail})" if o.detail else "")


def remedy(o: OutputResult) -> str:
    if o.kind is Kind.STRUCTURE:
        return (
            "the output's structure changes between runs, so no tolerance helps: something before it varies "
            "(values near a score threshold, an unseeded random source, a nondeterministic op); "
            "run `reprocheck diagnose` to find the first module that diverges"
        )
    if o.exact:
        return "integer/bool outputs are compared exactly; find the source of the variation (e.g. argmax over values that differ)"
    if o.needed_atol is None and o.needed_rtol is None:
        return "NaN/inf differ between runs, which no tolerance accepts; find where they come from"
    parts = []
    if o.needed_atol is not None:
        parts.append(f"atol: {o.needed_atol:.3g} (with rtol {o.tolerance.rtol:g})")
    if o.needed_rtol is not None:
        parts.append(f"rtol: {o.needed_rtol:.3g} (with atol {o.tolerance.atol:g})")
    return (
        "would pass with tolerance " + " or ".join(parts) + f" for {o.path!r}; "
        "but first ask why the runs differ: run-to-run nondeterminism usually means a nondeterministic kernel or an "
        "unseeded random source"
    )


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
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _output_rows(outs: list[OutputResult]) -> list[list[str]]:
    rows = [["output", "result", "shape", "dtype", "mismatched", "max abs", "max rel", "first at", "passing tolerance"]]
    for o in outs[:TABLE_ROWS]:
        passing = "-" if o.kind is Kind.STRUCTURE or o.exact or o.needed_atol is None else f"atol {_num(o.needed_atol)}"
        rows.append(
            [
                o.path,
                o.kind.value,
                str(list(o.shape)) if o.shape or o.total else "-",
                o.dtype or "-",
                f"{o.mismatched}/{o.total}" if o.kind is not Kind.STRUCTURE else "-",
                _num(o.max_abs_diff),
                _num(o.max_rel_diff),
                str(list(o.first_index)) if o.first_index is not None else "-",
                passing if o.kind is not Kind.MATCH else "-",
            ]
        )
    return rows


def check_line(r: CheckResult, colour: bool = False) -> str:
    label = r.status.value.upper().ljust(5)
    if colour:
        label = f"\033[{_COLOURS[r.status]}m{label}\033[0m"
    ok_runs = sum(1 for x in r.runs if x.ok)
    tail = ""
    if r.status is Status.FAIL and r.comparison is not None and not r.comparison:
        tail = f"  {len(r.comparison.failures)} of {len(r.comparison.outputs)} outputs differ"
    elif r.status is Status.FAIL and r.baseline is not None and not r.baseline:
        tail = f"  baseline: {r.baseline.status.value}"
    elif r.status is Status.ERROR:
        tail = f"  {run_cause(r)}"
    return f"{label} {r.name}  ({ok_runs}/{r.runs_requested} runs, {r.device}, seed {r.seed}, {r.duration:.1f}s){tail}"


def _baseline_console(r: CheckResult) -> list[str]:
    b = r.baseline
    if b is None:
        return []
    lines = [f"  baseline: {b.status.value} ({b.golden})"]
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
        if r.status is Status.PASS and not r.notes and (r.baseline is None or r.baseline.status.value == "match"):
            continue
        lines += ["", f"{r.name} ({r.file}:{r.line})"]
        if r.status is Status.ERROR:
            run = r.failed_run
            lines.append(f"  {run_cause(r)}")
            if run is not None:
                lines += [f"    | {d}" for d in run.details]
                if run.hint:
                    lines.append(f"  fix: {run.hint}")
        if r.comparison is not None and not r.comparison:
            fails = list(r.comparison.failures)
            lines += [f"  {summarize(o)}" for o in fails[:TABLE_ROWS]]
            if len(fails) > TABLE_ROWS:
                lines.append(f"  ... and {len(fails) - TABLE_ROWS} more outputs differ (see --report)")
            lines += ["  " + t for t in _table(_output_rows(fails))]
            lines.append(f"  remedy: {remedy(fails[0])}")
        lines += _baseline_console(r)
        lines += [f"  note: {n}" for n in r.notes]
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    lines += [
        "",
        f"{_plural(len(results), 'check')}: {counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, {counts[Status.ERROR]} errors",
    ]
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
    passing: dict[str, float | None] | None = None
    if o.kind is Kind.MATCH:
        passing = {
            "atol": 0.0 if o.needed_atol is None else o.needed_atol,
            "rtol": 0.0 if o.needed_rtol is None else o.needed_rtol,
        }
    elif o.kind is Kind.VALUES and not o.exact and (o.needed_atol is not None or o.needed_rtol is not None):
        passing = {"atol": o.needed_atol, "rtol": o.needed_rtol}
    return {
        "path": o.path,
        "status": o.kind.value,
        "shape": list(o.shape),
        "dtype": o.dtype,
        "total": o.total,
        "mismatched": o.mismatched,
        "mismatch_percent": round(o.mismatch_percent, 4),
        "max_abs_diff": o.max_abs_diff,
        "max_rel_diff": o.max_rel_diff,
        "mean_abs_diff": o.mean_abs_diff,
        "first_index": list(o.first_index) if o.first_index is not None else None,
        "expected_value": o.expected_value,
        "obtained_value": o.obtained_value,
        "nan_count": o.nan_count,
        "exact": o.exact,
        "tolerance": {"atol": o.tolerance.atol, "rtol": o.tolerance.rtol, "pattern": o.tolerance.pattern},
        "passing_tolerance": passing,
        "runs": [o.expected_run, o.obtained_run],
        "detail": o.detail,
    }


def check_dict(r: CheckResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "file": str(r.file),
        "line": r.line,
        "status": r.status.value,
        "seed": r.seed,
        "device": r.device,
        "runs_requested": r.runs_requested,
        "config_hash": r.config_hash,
        "duration_s": round(r.duration, 3),
        "recipe": r.recipe,
        "runs": [
            {
                "index": x.index,
                "status": x.status.value,
                "duration_s": round(x.duration, 3),
                "cause": x.cause,
                "stage": x.stage,
                "details": list(x.details),
                "hint": x.hint,
                "timings": x.timings,
                "warnings": list(x.warnings),
            }
            for x in r.runs
        ],
        "outputs": [output_dict(o) for o in (r.comparison.outputs if r.comparison is not None else ())],
        "fingerprint": r.fingerprint,
        "notes": list(r.notes),
        "baseline": baseline_dict(r.baseline) if r.baseline is not None else None,
    }


def baseline_dict(b: Any) -> dict[str, Any]:
    return {
        "status": b.status.value,
        "golden": str(b.golden),
        "obtained": str(b.obtained) if b.obtained else None,
        "golden_created": b.golden_created,
        "config_changed": b.config_changed,
        "message": b.message,
        "fingerprint_diff": [{"field": d.field, "baseline": d.expected, "now": d.obtained} for d in b.fingerprint_diff],
        "outputs": [output_dict(o) for o in (b.comparison.outputs if b.comparison is not None else ())],
    }


def render_json(results: list[CheckResult]) -> str:
    data = {
        "tool": "reprocheck",
        "version": __version__,
        "schema_version": 1,
        "exit_code": int(exit_code(results)),
        "summary": {"checks": len(results), **{s.value: sum(1 for r in results if r.status is s) for s in Status}},
        "checks": [check_dict(r) for r in results],
    }
    return json.dumps(_finite(data), indent=2) + "\n"


# --- Markdown -----------------------------------------------------------------------------------


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
        f"{_plural(len(results), 'check')}: **{counts[Status.PASS]} passed**, **{counts[Status.FAIL]} failed**, **{counts[Status.ERROR]} errors**",
        "",
        "| check | result | runs | device | seed | max abs diff | time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        diff = _num(r.comparison.max_abs_diff) if r.comparison is not None else "-"
        ok_runs = sum(1 for x in r.runs if x.ok)
        head.append(
            f"| {_code(r.name)} | {_ICONS[r.status]} | {ok_runs}/{r.runs_requested} | {r.device} | {r.seed} | {diff} | {r.duration:.1f}s |"
        )
    sections: list[str] = []
    for r in results:
        if r.status is Status.PASS and not r.notes and (r.baseline is None or r.baseline.status.value == "match"):
            continue
        body = ["", f"### {_code(r.name)} — {r.status.value}", "", f"Spec: {_code(str(r.file))} line {r.line}", ""]
        if r.status is Status.ERROR:
            run = r.failed_run
            body.append(f"{_md(run_cause(r))}")
            if run is not None and run.details:
                body += ["", "```", *[d.replace("```", "'''") for d in run.details], "```"]
            if run is not None and run.hint:
                body += ["", f"**Fix:** {_md(run.hint)}"]
        if r.comparison is not None and not r.comparison:
            fails = list(r.comparison.failures)
            body += [f"- {_md(summarize(o))}" for o in fails[:TABLE_ROWS]]
            if len(fails) > TABLE_ROWS:
                body.append(f"- … and {len(fails) - TABLE_ROWS} more outputs differ (see the JSON report)")
            rows = _output_rows(fails)
            body += ["", "| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
            body += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows[1:]]
            body += ["", f"**Remedy:** {_md(remedy(fails[0]))}"]
        b = r.baseline
        if b is not None and b.status.value != "match":
            body += ["", f"**Baseline:** {b.status.value} ({_code(str(b.golden))})", ""]
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
        elif r.comparison is not None and not r.comparison:
            fails = r.comparison.failures
            title = f"reprocheck: {r.name} is not reproducible"
            message = "; ".join(summarize(o) for o in fails[:3]) + (
                f"; and {len(fails) - 3} more" if len(fails) > 3 else ""
            )
        else:
            title = f"reprocheck: {r.name} drifted from its baseline"
            message = r.baseline.message if r.baseline is not None else "failed"
        out.append((workspace_relative(r.file), r.line, title, message))
    return out


def github_outputs(results: list[CheckResult], report_path: str | None) -> dict[str, str]:
    code = exit_code(results)
    result = {0: "pass", 1: "fail"}.get(int(code), "error")
    diffs = [
        c.max_abs_diff
        for r in results
        for c in (r.comparison, r.baseline.comparison if r.baseline is not None else None)
        if c is not None
    ]
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


# --- diagnose -----------------------------------------------------------------------------------
# Rendered from diagnose.Diagnosis objects, in the same three formats.


def _diagnosis_lines(d: Any) -> list[str]:
    """Plain sentences, shared by the console and Markdown renderers."""
    out = []
    if d.error:
        out.append(f"the check's own runs failed: {d.error}")
    elif d.reproducible:
        out.append("reproducible under the check's recipe (two isolated runs agree)")
    else:
        out.append(f"NOT reproducible under the check's recipe: {_plural(len(d.comparison.failures), 'output')} differ")
    if d.divergence is not None:
        v = d.divergence
        where = f"module {v.module or '(the model itself)'} ({v.type}), call {v.call + 1}"
        text = f"first divergence: {where}"
        if v.result is not None:
            text += f": {summarize(v.result)}"
        if v.detail:
            text += f": {v.detail}"
        out.append(text)
    if d.seed is not None:
        s = d.seed
        if s.sensitive:
            out.append(f"seed sensitivity: outputs change with seed {s.other_seed}, so they depend on RNG")
        else:
            out.append(f"seed sensitivity: outputs are the same with seed {s.other_seed}")
        out += [f"  likely cause: {c}" for c in s.causes]
    repairing = d.reproducible is False
    for a in d.ablations:
        if repairing:
            verdict = "still differs" if a.broke else "FIXES it"
        else:
            verdict = "BREAKS reproducibility" if a.broke else "no effect"
        detail = f" ({a.error})" if a.error else ""
        if a.broke and a.comparison is not None and a.comparison.failures:
            detail = f" ({summarize(a.comparison.failures[0])})"
        out.append(f"{'repair' if repairing else 'ablation'} {a.knob}: {a.description}: {verdict}{detail}")
    if repairing:
        fixes = [a.knob for a in d.ablations if not a.broke]
        if fixes:
            out.append(f"turning {', '.join(fixes)} back on makes it reproducible")
        else:
            out.append(
                "no part of the recipe fixes it: genuine nondeterminism (see the first divergence); "
                "ablations need a reproducible check, so none were run"
            )
    broken = [a.knob for a in d.ablations if a.broke]
    if broken and not repairing:
        out.append(f"knobs that matter for this model: {', '.join(broken)} (keep them on in the recipe)")
    if d.nondeterministic_ops:
        out.append("ops without a deterministic implementation here:")
        out += [f"  {op}" for op in d.nondeterministic_ops]
    else:
        out.append("no op warned under use_deterministic_algorithms(warn_only=True)")
    return out


def render_diagnosis_console(diagnoses: list[Any]) -> str:
    lines = []
    for d in diagnoses:
        lines.append(f"diagnose {d.name} ({d.file}:{d.line})")
        lines += [f"  {t}" for t in _diagnosis_lines(d)]
        lines.append("")
    return "\n".join(lines)


def render_diagnosis_markdown(diagnoses: list[Any]) -> str:
    lines = ["## reprocheck diagnose", ""]
    for d in diagnoses:
        lines += [f"### `{_md(d.name)}`", "", f"Spec: `{d.file}` line {d.line}", ""]
        lines += [f"- {_md(t.strip())}" for t in _diagnosis_lines(d)]
        lines.append("")
    return "\n".join(lines)


def _comparison_dict(c: Any) -> Any:
    return None if c is None else {"passed": bool(c), "outputs": [output_dict(o) for o in c.outputs]}


def diagnosis_dict(d: Any) -> dict[str, Any]:
    v, s = d.divergence, d.seed
    return {
        "name": d.name,
        "file": str(d.file),
        "line": d.line,
        "reproducible": d.reproducible,
        "error": d.error,
        "comparison": _comparison_dict(d.comparison),
        "first_divergence": None
        if v is None
        else {
            "call": v.call,
            "module": v.module,
            "type": v.type,
            "detail": v.detail,
            "output": output_dict(v.result) if v.result is not None else None,
        },
        "seed_sensitivity": None
        if s is None
        else {
            "sensitive": s.sensitive,
            "other_seed": s.other_seed,
            "causes": list(s.causes),
            "training_modules": [{"module": p, "type": t} for p, t in s.training_modules],
            "random_parameters": list(s.random_parameters),
            "parameters_total": s.parameters_total,
            "comparison": _comparison_dict(s.comparison),
        },
        "ablations": [
            {
                "knob": a.knob,
                "description": a.description,
                "breaks": a.broke,
                "error": a.error,
                "comparison": _comparison_dict(a.comparison),
            }
            for a in d.ablations
        ],
        "nondeterministic_ops": list(d.nondeterministic_ops),
    }


def render_diagnosis_json(diagnoses: list[Any]) -> str:
    data = {
        "tool": "reprocheck",
        "version": __version__,
        "schema_version": 1,
        "kind": "diagnose",
        "checks": [diagnosis_dict(d) for d in diagnoses],
    }
    return json.dumps(_finite(data), indent=2) + "\n"


DIAGNOSIS_RENDERERS: dict[Format, Callable[[list[Any]], str]] = {
    Format.CONSOLE: render_diagnosis_console,
    Format.JSON: render_diagnosis_json,
    Format.MARKDOWN: render_diagnosis_markdown,
}
