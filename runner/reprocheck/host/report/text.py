"""The sentences every format shares: one line per differing output, the remedy, a run's cause, table rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...golden_result import BaselineResult
from ...protocol import Distance
from ...results import SAFETY, Comparison, Kind, OutputResult
from ..checks.grades import Grade, OutputGrade, accepted
from ..checks.outcome import CheckResult, VariantResult, VariantStatus
from . import tasks

TABLE_ROWS = 20  # per failing check, in console and Markdown

if TYPE_CHECKING:
    from ...diagnosis import Diagnosis, Divergence, OpFinding


def num(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return str(x)
    if x == 0:
        return "0"
    return f"{x:.3g}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def val(x: float | None) -> str:
    # Enough digits to show how two nearly equal values differ.
    return "-" if x is None else f"{x:.9g}"


def where(o: OutputResult) -> str:
    return f"{o.path}[{', '.join(map(str, o.first_index))}]" if o.first_index else o.path


def run_name(index: int) -> str:
    return "the baseline" if index == 0 else f"run {index}"  # run 0: the stored golden


def summarize(o: OutputResult, names: tuple[str, str] | None = None) -> str:
    """One line: what differs, by how much, where. `names` says what the two sides were (default: run numbers)."""
    a, b = names or (run_name(o.expected_run), run_name(o.obtained_run))
    if o.task is not None and o.kind is not Kind.STRUCTURE:
        return tasks.sentence(o, a, b)
    if o.kind is Kind.STRUCTURE:
        return f"{o.path}: structure differs ({a} vs {b}): {o.detail}"
    if o.kind is Kind.MATCH:
        extra = f", {o.nan_count} NaN in the same places" if o.nan_count else ""
        return f"{o.path}: matches ({o.total} values{extra})"
    # With three runs or more: in how many later runs it differed, and how many distinct results it took.
    prefix = f"{o.path}: "
    if o.distinct_results:
        differing = plural(o.runs_differing, "later run")
        prefix += f"differs in {differing} ({plural(o.distinct_results, 'distinct result')}); worst: "
    size = f"max abs diff {num(o.max_abs_diff)}, max rel diff {num(o.max_rel_diff)}"
    if o.nonfinite:  # no difference to measure there: never "max abs diff 0" beside a NaN change
        nonfinite = f"{o.nonfinite} NaN/inf in one run only"
        size = nonfinite if o.nonfinite == o.mismatched else f"{nonfinite}, elsewhere {size}"
    text = (
        f"{prefix}{o.mismatched} of {o.total} values ({o.mismatch_percent:.1f}%) differ between {a} "
        f"and {b}; {size}; first at {where(o)}: {val(o.expected_value)} vs {val(o.obtained_value)}"
    )
    return text + (f" ({o.detail})" if o.detail else "")


def remedy(o: OutputResult) -> str:
    if o.task is not None and o.kind is not Kind.STRUCTURE:
        return tasks.remedy(o)
    if o.kind is Kind.STRUCTURE:
        return (
            "the output's structure changes between runs, so no tolerance helps: something before it varies "
            "(values near a score threshold, an unseeded random source, a nondeterministic op); "
            "run `reprocheck diagnose` to find the first module that diverges"
        )
    if o.exact:
        return (
            "integer/bool outputs are compared exactly; find the source of the variation "
            "(e.g. argmax over values that differ) with `reprocheck diagnose`"
        )
    if o.needed_atol is None and o.needed_rtol is None:
        return (
            "NaN/inf differ between runs, which no tolerance accepts; find where they come from with "
            "`reprocheck diagnose`"
        )
    parts = []
    if o.needed_atol is not None and not o.blind_atol():
        parts.append(f"atol: {tasks.up(o.needed_atol)} (with rtol {o.tolerance.rtol:g})")
    if o.needed_rtol is not None and not o.blind_rtol():
        parts.append(f"rtol: {tasks.up(o.needed_rtol)} (with atol {o.tolerance.atol:g})")
    if not parts:  # what would pass is as large as the values themselves: a blind check, never proposed
        return (
            f"no tolerance can honestly fix it: {o.path} differs by up to {num(o.max_abs_diff)} while its largest "
            f"|value| is {num(o.magnitude)}, so a tolerance that passes it (with calibrate's {SAFETY:g}x margin) "
            "would pass any output of that scale; find why the runs differ: an unseeded random source, a "
            "nondeterministic kernel, or (boxes, indices) a decision before it; `reprocheck diagnose` finds the "
            "first module that diverges"
        )
    return (
        "would pass with tolerance " + " or ".join(parts) + f" for {o.path!r}; "
        "but first ask why the runs differ: run-to-run nondeterminism usually means a nondeterministic kernel or an "
        "unseeded random source; `reprocheck diagnose` finds the first module that diverges"
    )


def own_runs_failed(r: CheckResult) -> bool:
    """The check's own runs failed, or could not be judged (not only an invariance variant's)."""
    return bool(r.error) or r.failed_run is not None or len(r.runs) < r.runs_requested


def fragile_lines(r: CheckResult) -> list[str]:
    """Outputs on a decision boundary, in task words (warnings, or failures under `fragile: fail`)."""
    return [tasks.fragile_sentence(f) for f in r.fragile]


def blind_lines(r: CheckResult) -> list[str]:
    lines = list(r.blind)
    if r.blind_all:
        lines.append(
            "every compared output is constant: this check cannot see a change"
            + (" (strict: true fails it)" if r.status.value == "fail" else "; `strict: true` makes that a failure")
        )
    return lines


def run_cause(r: CheckResult) -> str:
    if r.error:
        return f"{r.file}:{r.error_line or r.line}: {r.error}"
    run = r.failed_run
    if run is None:
        return f"only {len(r.runs)} of {r.runs_requested} runs happened"
    if run.unavailable:  # the check's own device: nothing ran, so no run number
        return run.cause
    return f"run {run.index} of {r.runs_requested} {run.cause}"


def output_rows(outs: list[OutputResult]) -> list[list[str]]:
    rows = [["output", "result", "shape", "dtype", "mismatched", "max abs", "max rel", "first at", "passing tolerance"]]
    for o in outs[:TABLE_ROWS]:
        passing = "-" if o.kind is Kind.STRUCTURE or o.exact or o.needed_atol is None else f"atol {num(o.needed_atol)}"
        if o.needed_atol is not None and o.blind_atol():
            passing = "none (blind)"  # as large as the values: not a tolerance anyone should set
        if o.task is not None:
            passing = f"as {o.task.task}"
        counts = f"{o.mismatched}/{o.total}" + (f" {o.unit}" if o.judged_by_task else "")
        rows.append(
            [
                o.path,
                o.kind.value,
                str(list(o.shape)) if o.shape or o.total else "-",
                o.dtype or "-",
                counts if o.kind is not Kind.STRUCTURE else "-",
                _max_abs(o),
                num(o.max_rel_diff) if not o.judged_by_task else "-",
                str(list(o.first_index)) if o.first_index is not None else "-",
                passing if o.kind is not Kind.MATCH else "-",
            ]
        )
    return rows


def _max_abs(o: OutputResult) -> str:
    if o.judged_by_task:  # not elementwise: the largest difference between matched items, or why there is none
        if o.kind is Kind.STRUCTURE:
            return "-"
        return "none matched" if o.max_matched_diff is None else f"matched: {num(o.max_matched_diff)}"
    if not o.nonfinite:
        return num(o.max_abs_diff)
    return "NaN/inf" if o.nonfinite == o.mismatched else f"{num(o.max_abs_diff)}+NaN/inf"


def ordinal(n: int) -> str:
    tail = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{tail}"


def _module(path: str) -> str:
    return f"module {path}" if path else "the model itself"


def divergence_lines(v: Divergence, names: tuple[str, str] | None = None) -> list[str]:
    """Where two traced runs first differ: the module, the op, or where their sequences part; in words."""
    out = []
    if v.found:
        # A module can run several times in one forward (a shared block): which of its calls, in words.
        where = f"{_module(v.module)} ({v.type}), in its {ordinal(v.module_call)} call in the forward"
        text = f"first divergence: {where}"
        if v.result is not None:
            text += f": {summarize(v.result, names)}"
        out.append(text + (f" ({v.detail})" if v.detail else ""))
    elif v.detail:
        out.append(f"first divergence: {v.detail}")
    if v.op is not None:
        out.append("  " + op_line(v.op, v, names))
    if v.stopped:
        found = "what is above is what the trace held" if (v.found or v.op) else "no difference in what it held"
        out.append(f"  tracing stopped: {v.stopped}; {found}")
    return out


def op_line(o: OpFinding, v: Divergence | None = None, names: tuple[str, str] | None = None) -> str:
    at = f" at {o.location}" if o.location else ""
    if o.parted:
        return f"the op sequences part at op {o.position + 1} of the forward{at}: {o.detail}"
    owner = f"module {o.module}'s {ordinal(o.module_call)} call" if o.module else "the model's own forward"
    inside = f"in {owner}, its {ordinal(o.index)} op"
    if v is not None and v.found and o.module != v.module and not o.module.startswith(v.module + "."):
        inside += f" (before {_module(v.module)} ran: its input already differed)"
    text = f"first differing op: {o.op} {inside} (op {o.position + 1} of the forward){at}"
    if o.result is not None:
        text += f": {summarize(o.result, names)}"
    return text + (f" ({o.detail})" if o.detail else "")


def _extent(o: OutputResult) -> str:
    """How much an output holds, in its unit: "2 samples, 2000 values", "6 detections", "1000 values"."""
    counted = tasks.counted(o)
    if o.unit in ("samples", "pixels") and o.shape:
        return f"{counted}, {plural(math.prod(o.shape), 'value')}"
    return counted


def _differs(o: OutputResult) -> str:
    """How far the values of an output differ: elementwise, or between a task output's matched items."""
    if not o.judged_by_task:
        return f"differs by up to {num(o.max_abs_diff)}"
    if o.max_matched_diff is None:
        return f"no matched {o.unit} to measure"
    return f"differs by up to {num(o.max_matched_diff)} between matched {o.unit}"


def difference_words(o: OutputResult) -> str:
    """What differs in a failing output, in its unit: "output 0: 1 of 6 detections differ"."""
    where = f"output {o.path}" if o.path else "output"
    if o.kind is Kind.STRUCTURE:
        return f"{where}: its structure differs"
    if o.nonfinite and not o.judged_by_task:
        return f"{where}: {o.mismatched} of {tasks.counted(o)} differ, {o.nonfinite} NaN/inf in one run only"
    return f"{where}: {o.mismatched} of {tasks.counted(o)} differ"


def difference_cell(c: Comparison | None) -> str:
    """A check's largest value difference (elementwise, or between a task output's matched items; "none measured"
    where there is none) and, when it failed, what differs in its worst output first: never a bare 0 beside a
    failure."""
    if c is None:
        return "-"
    d = c.largest_diff
    fails = c.failures
    if not fails:
        return "-" if d is None else num(d)
    worst = max(fails, key=lambda o: o.severity())
    return f"{difference_words(worst)}; largest difference {'none measured' if d is None else num(d)}"


def diagnosis_lines(d: Diagnosis) -> list[str]:
    """Plain sentences, shared by the console and Markdown renderers."""
    out = []
    if d.error:
        out.append(f"the check's own runs failed: {d.error}")
    elif d.reproducible:
        out.append("reproducible under the check's recipe (two isolated runs agree)")
    else:
        differing = len(d.comparison.failures) if d.comparison is not None else 0
        out.append(f"NOT reproducible under the check's recipe: {plural(differing, 'output')} differ")
    if d.divergence is not None:
        out += divergence_lines(d.divergence)
    if d.seed is not None:
        s = d.seed
        if s.sensitive:
            out.append(f"seed sensitivity: outputs change with seed {s.other_seed}, so they depend on RNG")
        else:
            out.append(f"seed sensitivity: outputs are the same with seed {s.other_seed}")
        out += [f"  likely cause: {c}" for c in s.causes]
    repairing = d.reproducible is False
    for a in d.ablations:
        if repairing:  # the fix itself is said once, below
            verdict = "still differs" if a.effect.differs else "the runs agree"
        else:
            verdict = "BREAKS reproducibility" if a.effect.differs else "no effect"
        detail = f" ({a.error})" if a.error else ""
        if a.effect.differs and a.comparison is not None and a.comparison.failures:
            detail = f" ({summarize(a.comparison.failures[0])})"
        out.append(f"{'repair' if repairing else 'ablation'} {a.knob}: {a.description}: {verdict}{detail}")
    if repairing:
        fixes = [a.knob for a in d.ablations if not a.effect.differs]
        if fixes:
            out.append(f"turning {', '.join(fixes)} back on makes it reproducible")
        else:
            out.append(
                "no part of the recipe fixes it: genuine nondeterminism (see the first divergence); "
                "ablations need a reproducible check, so none were run"
            )
    out += [f"not varied: {x}" for x in d.skipped]
    broken = [a.knob for a in d.ablations if a.effect.differs]
    if broken and not repairing:
        out.append(f"knobs that matter for this model: {', '.join(broken)} (keep them on in the recipe)")
    if d.nondeterministic_ops:
        out.append("ops without a deterministic implementation here:")
        out += [f"  {op}" for op in d.nondeterministic_ops]
    else:
        out.append("no op warned under use_deterministic_algorithms(warn_only=True)")
    return out


def written(results: Sequence[CheckResult]) -> list[tuple[CheckResult, BaselineResult]]:
    """The checks whose golden --missing-baseline write wrote (the first night), with their baseline verdict."""
    return [(r, r.baseline) for r in results if r.baseline is not None and r.baseline.written is not None]


def written_line(results: Sequence[CheckResult]) -> str | None:
    """The first night's goldens, counted where the totals are: never silently green."""
    n = len(written(results))
    if not n:
        return None
    return f"{plural(n, 'golden')} written, not yet committed: commit the baseline folder (or upload it) to keep them"


def flake_line(r: CheckResult) -> str | None:
    """The flake statement, for checks of three runs or more (two runs: the comparison says it all)."""
    c = r.comparison
    if c is None or c.runs_compared < 3:
        return None
    return f"{c.flake.statement()}; {plural(c.distinct_results, 'distinct result')} by content hash"


INVARIANCE_REMEDY = {
    "batch": "a sample's outputs depend on the batch it is in (kernels chosen by shape, statistics across the "
    "batch, padding to the largest image): serve at one batch size, or look for cross-sample operations "
    "(BatchNorm in training mode, normalisation over dim 0); a tolerance (`invariance.tolerance`) accepts "
    "small kernel differences",
    "device": "the outputs depend on the device: other kernels, other summation orders, reduced precision (TF32, "
    "fused multiply-add); the float64 reference above says which side is off; accept the difference with "
    "`invariance.tolerance`, or pin the recipe (`tf32: false`, deterministic algorithms) on both",
    "compile": "the compiled model computes something else than eager (code that branches on "
    "torch.compiler.is_compiling(), a backend's fused or autotuned kernels): where the difference is acceptable, "
    "`require: task` with `invariance.tolerance.compile: {atol: ...}` accepts it; else find the compiled path that "
    "differs (`compile: {backend: aot_eager}` compiles without inductor's kernels)",
    "dtype": "reduced precision moves the outputs farther from the float64 reference than the check's own run: a "
    "`compare:` rule (classification, detection, segmentation) judges them as the task does, or `require: task` "
    "with a tolerance for this kind (`invariance.tolerance.dtype: {atol: ...}`) accepts values that close",
    "autocast": "autocast's reduced precision moves the outputs farther from the float64 reference than the "
    "check's own run: a `compare:` rule (classification, detection, segmentation) judges them as the task does, or "
    "`require: task` with a tolerance for this kind (`invariance.tolerance.autocast: {atol: ...}`) accepts values "
    "that close",
    "threads": "the outputs depend on the CPU thread count (reductions split their work by thread): run production "
    "at one pinned count (`recipe.threads`, OMP_NUM_THREADS), or accept the difference with `invariance.tolerance`",
}


def variant_lines(v: VariantResult) -> list[str]:
    """An invariance variant in sentences: matched, or what differs between run 1 and the variant, and the remedy."""
    a, b = v.names()
    if v.status is VariantStatus.SKIPPED:
        return [f"invariance {v.label}: skipped, not passed: {v.cause}"]
    if v.status is VariantStatus.ERROR and v.run is None:  # refused before it ran
        return [f"invariance {v.label}: not run: {v.cause}"]
    if v.kind.graded and v.status is not VariantStatus.ERROR:
        return graded_variant_lines(v)
    if v.status is VariantStatus.ERROR or v.comparison is None:
        return [f"invariance {v.label}: the variant's run failed: {v.cause}"]
    outputs = v.comparison.outputs
    note = f"; not per-sample, so left out: {', '.join(v.left_out)}" if v.left_out else ""
    note += f"; ignored by the spec: {', '.join(v.ignored)}" if v.ignored else ""
    if v.status is VariantStatus.PASS:
        return [f"invariance {v.label}: matches {a} ({plural(len(outputs), 'output')} compared{note})"]
    fails = v.comparison.failures
    lines = [f"invariance {v.label}: {len(fails)} of {plural(len(outputs), 'output')} differ between {a} and {b}{note}"]
    lines += [f"  {summarize(o, (a, b))}" for o in fails[:TABLE_ROWS]]
    lines += [f"  {reference_sentence(d, a, b)}" for d in v.distances]
    if v.change is not None:  # a traced run at each setting: where the forward first differs
        lines += [f"  {line}" for line in divergence_lines(v.change, (a, b))]
    elif v.change_note:
        lines.append(f"  {v.change_note}")
    lines.append(f"  remedy: {INVARIANCE_REMEDY[v.kind.value]}")
    return lines


def reference_sentence(d: Distance, a: str, b: str) -> str:
    """Which side of a differing output the float64 reference agrees with."""
    text = f"{d.path}: {b} is {d.obtained:.2g} from the float64 reference, {a} {d.expected:.2g}"
    if d.obtained > 2 * d.expected:
        return text + f": the {b} side is off"
    if d.expected > 2 * d.obtained:
        return text + f": the {a} side is off"
    return text + ": both are as far (rounding on both sides, not one wrong kernel)"


GRADE_WORDS = {
    Grade.IDENTICAL: "identical",
    Grade.NOISE: "within noise",
    Grade.TASK: "task-equivalent",
    Grade.CHANGED: "changed",
}


@dataclass(frozen=True)
class Sides:
    """The two sides of a grade, in words: the reference side and the graded one (as summaries name them), the
    reference side in a sentence and in a parenthesis, and what either side is."""

    names: tuple[str, str]
    reference: str
    short: str
    each: str


UPGRADE_SIDES = Sides(("old stack", "new stack"), "the old stack", "old", "stack")


def variant_sides(v: VariantResult) -> Sides:
    a, b = v.names()
    return Sides((a, b), a, a, "side")


def detail(o: OutputGrade, sides: Sides = UPGRADE_SIDES) -> str:
    """What the grade rests on, in one line."""
    first = sides.names[0]
    if o.grade is Grade.IDENTICAL:
        return f"bitwise equal ({_extent(o.result)})" if o.result.total else "bitwise equal"
    tests = [t for t in o.noise if "rmse_new" in t]
    if o.grade is Grade.NOISE and tests:
        worst = max(tests, key=lambda t: float(t["max_new"]) / max(float(t["bound_max"]), 1e-300))
        return (
            f"{_differs(o.result)}; from the float64 reference: max {num(worst['max_new'])} "
            f"({first} {num(worst['max_old'])}, bound {num(worst['bound_max'])}), RMSE {num(worst['rmse_new'])} "
            f"({sides.short} {num(worst['rmse_old'])}, bound {num(worst['bound_rmse'])})"
        )
    if o.grade is Grade.TASK and o.result.task is None:
        return f"within {o.rule}: differs by up to {num(o.result.max_abs_diff)} ({o.result.mismatched} values)"
    text = summarize(o.result, sides.names).removeprefix(f"{o.result.path}: ")
    far = [t for t in tests if not t["ok"]]
    if o.grade is Grade.CHANGED and any(t.get("reference_off") for t in far):
        text += (
            f"; the float64 reference is far from {first} as well (the model computes something else in float64), "
            "so it cannot tell rounding from a change here: nothing is graded within noise"
        )
    elif o.grade is Grade.CHANGED and any(t.get("nonfinite_differ") for t in far):
        text += f"; NaN or inf where the other {sides.each} holds another value: no noise bound applies there"
    elif o.grade is Grade.CHANGED and far:
        t = far[0]
        text += (
            f"; farther from the float64 reference than {sides.reference}: max {num(t['max_new'])} vs bound "
            f"{num(t['bound_max'])}, RMSE {num(t['rmse_new'])} vs bound {num(t['bound_rmse'])}"
        )
    return text


def compiled_words(info: dict[str, Any] | None) -> str:
    """A compile's settings, time and graph breaks, in one phrase."""
    if not info:
        return ""
    set_ = [k for k, on in (info.get("settings") or {}).items() if on is True]
    text = f"compiled in {num(info.get('seconds', 0.0))}s, {plural(int(info.get('graph_breaks', 0)), 'graph break')}"
    return text + (f", inductor {' and '.join(set_)} set" if set_ else "")


def graded_variant_lines(v: VariantResult) -> list[str]:
    """A compile, dtype or autocast variant: its own runs compared (compile), then its grades against run 1."""
    sides = variant_sides(v)
    a = sides.reference
    unrepeatable = v.repeat is not None and not v.repeat
    extra = [compiled_words(v.compiled)] if v.compiled else []
    if v.repeat is not None and not unrepeatable:
        extra.append(f"its {v.repeat.runs_compared} compiled runs agree")
    extra += [f"ignored by the spec: {', '.join(v.ignored)}"] if v.ignored else []
    tail = f" ({'; '.join(extra)})" if extra else ""
    lines: list[str] = []
    if unrepeatable:
        assert v.repeat is not None
        fails = v.repeat.failures
        lines.append(
            f"invariance {v.label}: the compiled model is not reproducible run to run: {len(fails)} of "
            f"{plural(len(v.repeat.outputs), 'output')} differ between its compiled runs (each compiled afresh)"
        )
        lines += [f"  {summarize(o, ('compiled run 1', 'compiled run 2'))}" for o in fails[:TABLE_ROWS]]
    below = [o for o in v.grades if not accepted(o, v.require)]
    if not below:
        lines.append(f"invariance {v.label}: reaches require {v.require} against {a}: {grade_counts(v.grades)}{tail}")
        lines += [f"  {x}" for x in grade_lines([o for o in v.grades if o.grade is not Grade.IDENTICAL], sides)]
    else:
        shown = ", ".join(f"{o.path or 'output'} ({GRADE_WORDS[o.grade]})" for o in below[:3])
        lines.append(
            f"invariance {v.label}: {len(below)} of {plural(len(v.grades), 'output')} below require {v.require} "
            f"against {a}: {shown}{tail}"
        )
        lines += [f"  {x}" for x in grade_lines(v.grades, sides)]
    if unrepeatable:
        lines.append(f"  remedy: {COMPILED_REPEAT_REMEDY}")
    if below:
        lines.append(f"  remedy: {INVARIANCE_REMEDY[v.kind.value]}")
    return lines


COMPILED_REPEAT_REMEDY = (
    "the compiled kernels are not the same from one compile to the next (autotuning by timing, atomics): keep "
    "`recipe.deterministic_algorithms` on (it sets inductor's `deterministic`), use `mode: default` rather than "
    "max-autotune, or ship the compile cache the check was run with"
)


def grade_lines(grades: Sequence[OutputGrade], sides: Sides, rows: int = TABLE_ROWS) -> list[str]:
    """One line per graded output (the first `rows`): its grade and what the grade rests on."""
    return [f"{GRADE_WORDS[o.grade]:<15} {o.path or 'output'}: {detail(o, sides)}" for o in grades[:rows]]


def grade_counts(grades: Sequence[OutputGrade]) -> str:
    """How many outputs have each grade, best first: "2 identical, 1 within noise"."""
    found = [(g, sum(1 for o in grades if o.grade is g)) for g in GRADE_WORDS]
    return ", ".join(f"{n} {GRADE_WORDS[g]}" for g, n in found if n)
