"""What a run's results say to GitHub: the error and warning annotations (spec file and line) and the step's
outputs. The I/O itself (workflow commands, $GITHUB_OUTPUT) is ../github.py."""

from __future__ import annotations

import math

from ..checks.outcome import CheckResult, Status, VariantStatus, exit_code
from ..github import workspace_relative
from .text import blind_lines, fragile_lines, num, own_runs_failed, run_cause, summarize, variant_lines, written


def check_failures(results: list[CheckResult]) -> list[tuple[str, int, str, str]]:
    """(spec file, line, title, message) for each check that did not pass, for annotations; an invariance
    variant that differs or fails is annotated at the check's `invariance:` line."""
    out = []
    for r in results:
        if r.status is Status.PASS:
            continue
        file = workspace_relative(r.file)
        if r.error:
            what = "a compare rule does not fit" if r.error_line else "the runs could not be judged"
            out.append((file, r.error_line or r.line, f"reprocheck: {r.name}: {what}", r.error))
            continue
        if r.status is Status.ERROR and own_runs_failed(r):
            out.append((file, r.line, f"reprocheck: {r.name} failed to run", run_cause(r)))
            continue
        if r.comparison is not None and not r.comparison:
            fails = r.comparison.failures
            more = f"; and {len(fails) - 3} more" if len(fails) > 3 else ""
            message = "; ".join(summarize(o) for o in fails[:3]) + more
            out.append((file, r.line, f"reprocheck: {r.name} is not reproducible", message))
        if r.baseline is not None and not r.baseline:
            message = r.baseline.message or "failed"
            out.append((file, r.line, f"reprocheck: {r.name} drifted from its baseline", message))
        for v in r.invariance:
            if v.status in (VariantStatus.FAIL, VariantStatus.ERROR):
                what = "could not run" if v.status is VariantStatus.ERROR else "is not invariant"
                title = f"reprocheck: {r.name} {what} at {v.label}"
                out.append((file, r.invariance_line or r.line, title, " ".join(x.strip() for x in variant_lines(v))))
        if r.fragile and r.fragile_policy == "fail":
            out += _fragile(r, file)
        if r.blind_all and r.status is Status.FAIL and r.comparison is not None and r.comparison:
            title = f"reprocheck: {r.name} cannot see a change (strict: true)"
            out += [(file, r.line, title, line) for line in blind_lines(r)]
    return out


def check_warnings(results: list[CheckResult]) -> list[tuple[str, int, str, str]]:
    """(spec file, line, title, message) for each fragile output under `fragile: warn` (at the `compare:` line), each
    blind check that passed, and each golden written and not yet committed."""
    out = [
        a for r in results if r.fragile and r.fragile_policy == "warn" for a in _fragile(r, workspace_relative(r.file))
    ]
    for r in results:
        if r.blind_all and r.status is not Status.FAIL:  # a failing one is an error annotation already
            title = f"reprocheck: {r.name} cannot see a change (constant outputs)"
            out += [(workspace_relative(r.file), r.line, title, line) for line in blind_lines(r)]
    for r, b in written(results):  # a workflow that never commits its first night's goldens must not stay green
        title = f"reprocheck: {r.name}: golden written, not yet committed"
        out.append((workspace_relative(r.file), r.line, title, b.message))
    return out


def _fragile(r: CheckResult, file: str) -> list[tuple[str, int, str, str]]:
    title = f"reprocheck: {r.name} has outputs on a decision boundary (fragile)"
    return [(file, r.compare_line or r.line, title, line) for line in fragile_lines(r)]


def max_abs_diff(results: list[CheckResult]) -> str:
    """The step's `max-abs-diff`: the largest value difference measured in any check, run to run or against its
    golden: an elementwise output's largest |difference|, a task output's (compare:) largest difference between
    matched items (box coordinates and scores of matched detections, class scores); "none" when nothing was
    measured (no comparison, or task outputs with nothing matched: every detection missing or extra), never a 0
    standing in for a difference that could not be measured."""
    diffs = [
        d
        for r in results
        for c in (r.comparison, r.baseline.comparison if r.baseline is not None else None)
        if c is not None and (d := c.largest_diff) is not None
    ]
    return num(max(diffs, key=lambda d: math.inf if math.isnan(d) else d)) if diffs else "none"


def step_outputs(results: list[CheckResult], report_path: str | None) -> dict[str, str]:
    """The step's outputs: result, failed-checks, max-abs-diff, report, written-baselines."""
    code = exit_code(results)
    result = {0: "pass", 1: "fail"}.get(int(code), "error")
    return {
        "result": result,
        "failed-checks": ",".join(r.name for r in results if r.status is not Status.PASS),
        "max-abs-diff": max_abs_diff(results),
        "report": report_path or "",
        "written-baselines": "\n".join(str(b.written) for _, b in written(results)),
    }
