"""The upgrade canary's reports: console, Markdown (fits a PR comment), JSON and GitHub annotations. The two stacks'
fingerprint difference comes first, then a table check x output x grade."""

from __future__ import annotations

import json

from ... import __version__
from ..analyses.upgrade import Upgrade, UpgradeCheck, Verdict
from ..checks.grades import accepted
from . import shape
from .json_report import divergence_model, graded_model, picture_models
from .text import GRADE_WORDS, UPGRADE_SIDES, detail, grade_counts, grade_lines, plural

VERDICT_WORDS = {
    Verdict.SAFE: "safe to bump",
    Verdict.CHANGED: "changed",
    Verdict.NOT_REPRODUCIBLE: "not reproducible",
    Verdict.ERROR: "error",
}
DIFF_ROWS = 12
OUTPUT_ROWS = 30  # per check, in console and Markdown


def _counts(c: UpgradeCheck) -> str:
    return grade_counts(c.outputs) or "-"


def overall(u: Upgrade) -> str:
    code = u.exit_code
    bad = [c for c in u.checks if c.verdict is not Verdict.SAFE]
    if code == 0:
        return f"safe to bump: {plural(len(u.checks), 'check')}, every output {_accepted(u.options.require)}"
    return f"not safe to bump: {len(bad)} of {plural(len(u.checks), 'check')} " + (
        "changed or not reproducible" if code == 1 else "changed, not reproducible or failed"
    )


def _accepted(require: str) -> str:
    return {
        "identical": "identical",
        "noise": "identical or within noise (task outputs: or task-equivalent)",
        "task": "identical, within noise or task-equivalent (by the check's own rules)",
    }[require]


def _diff_rows(u: Upgrade) -> list[tuple[str, str, str]]:
    return [
        (f, json.dumps(a) if not isinstance(a, str) else a, json.dumps(b) if not isinstance(b, str) else b)
        for f, a, b in u.fingerprint_diff()
    ]


def render_console(u: Upgrade) -> str:
    o = u.options
    lines = [f"reprocheck upgrade: {o.source} -> {o.target} (--require {o.require}, k={o.k:g}, eps={o.ulps:g} ulp)"]
    diff = _diff_rows(u)
    lines.append("stack differences:" if diff else "stack differences: none in the fingerprint")
    lines += [f"  {f}: {a} -> {b}" for f, a, b in diff[:DIFF_ROWS]]
    if len(diff) > DIFF_ROWS:
        lines.append(f"  ... and {len(diff) - DIFF_ROWS} more (see --report)")
    for c in u.checks:
        lines.append(f"{VERDICT_WORDS[c.verdict].upper():<17} {c.name} ({c.file}:{c.line}): {_counts(c)}")
        if c.message:
            lines.append(f"    {c.message}")
        lines += [f"    {line}" for line in grade_lines(c.outputs, UPGRADE_SIDES, OUTPUT_ROWS)]
        lines += [f"    {line}" for line in change_lines(u, c)]
        lines += [f"    note: {n}" for n in c.notes]
    lines.append(overall(u))
    return "\n".join(lines) + "\n"


def change_lines(u: Upgrade, c: UpgradeCheck) -> list[str]:
    """What the new stack changed first, in words: "torch X changed aten::op in module M", then the details."""
    v = c.change
    if v is None:
        return []
    torch = u.fingerprints[1].get("torch") or str(u.options.target)
    o = v.op
    if o is not None and not o.parted:
        where = f"module {o.module}" if o.module else "the model itself"
        at = f" (op {o.position + 1} of the forward, at {o.location})" if o.location else f" (op {o.position + 1})"
        head = f"torch {torch} changed {o.op} in {where}{at}"
    elif o is not None:
        head = f"with torch {torch} the op sequences part at op {o.position + 1}: {o.detail}"
    elif v.found:
        head = f"torch {torch} changed the output of module {v.module or '(the model itself)'} ({v.type})"
    else:
        head = f"the traces agree as far as they go: {v.stopped or v.detail}"
    lines = [head]
    if o is not None and o.detail and not o.parted:
        lines.append(f"  {o.detail}")
    if v.found and o is not None:
        lines.append(f"  first module whose output changed: {v.module or '(the model itself)'} ({v.type})")
    if v.stopped and (o is not None or v.found):
        lines.append(f"  tracing stopped: {v.stopped}")
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(u: Upgrade) -> str:
    o = u.options
    icon = "✅" if u.exit_code == 0 else "❌"
    lines = [
        f"## {icon} reprocheck upgrade: `{o.source}` → `{o.target}`",
        "",
        f"**{_md(overall(u))}** (--require {o.require})",
        "",
    ]
    diff = _diff_rows(u)
    if diff:
        lines += ["| stack | old | new |", "|---|---|---|"]
        lines += [f"| {_md(f)} | `{_md(a)}` | `{_md(b)}` |" for f, a, b in diff[:DIFF_ROWS]]
        lines.append("")
    lines += ["| check | output | grade | detail |", "|---|---|---|---|"]
    for c in u.checks:
        if not c.outputs:
            lines.append(f"| {_md(c.name)} | - | {VERDICT_WORDS[c.verdict]} | {_md(c.message)} |")
        for g in c.outputs[:OUTPUT_ROWS]:
            lines.append(f"| {_md(c.name)} | `{_md(g.path or 'output')}` | {GRADE_WORDS[g.grade]} | {_md(detail(g))} |")
    notes = [f"- {c.name}: {line.strip()}" for c in u.checks for line in change_lines(u, c)]
    notes += [f"- {c.name}: {n}" for c in u.checks for n in c.notes]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def upgrade_model(u: Upgrade) -> shape.UpgradeReport:
    o = u.options
    return shape.UpgradeReport(
        tool="reprocheck",
        version=__version__,
        schema_version=2,  # its outputs as the run report's (json_report.SCHEMA_VERSION)
        kind="upgrade",
        exit_code=int(u.exit_code),
        from_=str(o.source),
        to=str(o.target),
        require=o.require,
        noise=shape.Noise(k=o.k, ulps=o.ulps),
        verdict="safe" if u.exit_code == 0 else "not-safe",
        fingerprints=shape.Fingerprints(from_=u.fingerprints[0], to=u.fingerprints[1]),
        fingerprint_diff=[shape.StackDifference(field=f, from_=a, to=b) for f, a, b in u.fingerprint_diff()],
        checks=[
            shape.UpgradedCheck(
                name=c.name,
                file=c.file,
                line=c.line,
                seed=c.seed,
                verdict=c.verdict,
                message=c.message,
                notes=list(c.notes),
                outputs=[graded_model(g, o.require) for g in c.outputs],
                first_change=None if c.change is None else divergence_model(c.change),
                pictures=picture_models(c.pictures),
            )
            for c in u.checks
        ],
    )


def render_json(u: Upgrade) -> str:
    return shape.written(upgrade_model(u))


def failures(u: Upgrade) -> list[tuple[str, int, str, str]]:
    """(file, line, title, message) for each check that is not safe to bump."""
    from ..github import workspace_relative

    found = []
    for c in u.checks:
        if c.verdict is Verdict.SAFE:
            continue
        first = next((g for g in c.outputs if not accepted(g, u.options.require)), None)
        message = c.message + (f". {first.path or 'output'}: {detail(first)}" if first is not None else "")
        title = f"reprocheck upgrade: {c.name} {VERDICT_WORDS[c.verdict]} ({u.options.source} -> {u.options.target})"
        found.append((workspace_relative(c.file), c.line or 1, title, message))
    return found
