"""`reprocheck upgrade`: the same checks on two stacks (the one you have, the one you want), graded output by output.

A stack is `python:PATH` (an interpreter that has torch) or `image:TAG` (run under the launch policy). Both run
this very reprocheck: its package is copied into a folder of its own and put first on the stack's PYTHONPATH
(mounted read-only in a container), so only the stack differs. The stack supplies torch and reprocheck's
dependencies (pydantic, PyYAML, numpy, safetensors); a python: stack without them is refused before anything runs.
Per check:
  1. each side runs it with the full recipe (`reprocheck run --update-baseline` into a private folder): a side
     whose runs differ is the verdict ("not reproducible on the new stack");
  2. the two sides' run-1 outputs are graded on the torch side (grade.py, on the --to stack); where one is not
     identical, a float64 CPU run on the --from stack is the reference for the within-noise test;
  3. safe to bump when every output's grade is at least --require (identical, noise, task).
Nothing here writes goldens of yours: every file lives in a temporary folder, removed at the end.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...diagnosis import Divergence
from ...files import atomic_write
from ...pictures import Picture, safe_name
from ...protocol import (
    META_FILE,
    TRACE_FILE,
    DrawAnswer,
    DrawRequest,
    GradedCheck,
    GradeJob,
    TracesAnswer,
    TracesRequest,
    worker_check,
)
from ...spec import LoadedCheck
from ..checks.grades import Grade, OutputGrade, accepted, graded_outputs
from ..checks.pictures import checked
from ..exitcodes import ExitCode, UsageError
from ..report.shape import CheckReport as ReportedCheck
from ..report.shape import Output as ReportedOutput
from .stacks import Options, Side, Stack, ask_on, copy_code, grade_on, probe, run_side


class Verdict(str, enum.Enum):
    """A check's answer to "safe to bump?"."""

    SAFE = "safe"
    CHANGED = "changed"
    NOT_REPRODUCIBLE = "not-reproducible"  # on one of the stacks: nothing to grade
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class UpgradeCheck:
    name: str
    file: str
    line: int
    seed: int
    verdict: Verdict
    message: str = ""
    outputs: tuple[OutputGrade, ...] = ()
    notes: tuple[str, ...] = ()
    pictures: tuple[Picture, ...] = ()  # --pictures: what changed between the stacks, drawn
    change: Divergence | None = None  # where a traced run on each stack first differs: the op that changed

    @property
    def exit_code(self) -> ExitCode:
        return {Verdict.SAFE: ExitCode.OK, Verdict.ERROR: ExitCode.RUN_FAILED}.get(self.verdict, ExitCode.MISMATCH)


@dataclass(frozen=True)
class Upgrade:
    options: Options
    fingerprints: tuple[dict[str, Any], dict[str, Any]]
    checks: tuple[UpgradeCheck, ...]

    @property
    def exit_code(self) -> ExitCode:
        return max((c.exit_code for c in self.checks), default=ExitCode.OK)

    def fingerprint_diff(self) -> list[tuple[str, Any, Any]]:
        from ...golden_result import fingerprint_diff

        return [(d.field, d.expected, d.obtained) for d in fingerprint_diff(*self.fingerprints)]


def _key(lc: LoadedCheck) -> tuple[str, str]:
    return os.path.abspath(lc.file), lc.name


def _find(side: Side, lc: LoadedCheck) -> ReportedCheck | None:
    checks = side.report.checks if side.report is not None else []
    return next((c for c in checks if (os.path.abspath(c.file), c.name) == _key(lc)), None)


def _side_verdict(side: Side, lc: LoadedCheck, which: str, stack: Stack) -> UpgradeCheck | None:
    """The check's verdict when this side alone decides it (not reproducible there, or an error); None if it passed."""
    c = _find(side, lc)

    def base(verdict: Verdict, message: str) -> UpgradeCheck:
        return UpgradeCheck(lc.name, str(lc.file), lc.line, lc.check.seed, verdict, message)

    if c is None:
        tail = " | ".join(side.log.strip().splitlines()[-3:]) or "no output"
        return base(Verdict.ERROR, f"the {which} stack ({stack}) exited {side.code}: {tail}")
    if c.status == "fail":
        differ = [o for o in c.outputs if o.status != "match"]
        shown = ", ".join(f"{o.path or 'output'} ({_how(o)})" for o in differ[:3]) or "its goldens"
        return base(
            Verdict.NOT_REPRODUCIBLE,
            f"not reproducible on the {which} stack ({stack}): its runs differ in {shown}; "
            f"`reprocheck diagnose` there says why",
        )
    if c.status == "error" or c.baseline is None or c.baseline.status != "updated":
        cause = c.error or next((r.cause for r in c.runs if r.cause), "") or "no golden written"
        return base(Verdict.ERROR, f"on the {which} stack ({stack}): {cause}")
    return None


def _how(o: ReportedOutput) -> str:
    if o.unit != "values":  # judged by its compare rule: counts in its unit, and what matched differs by
        matched = "nothing matched" if o.max_matched_diff is None else f"matched differ by {_g(o.max_matched_diff)}"
        return f"{o.mismatched} of {o.total} {o.unit}; {matched}"
    # A NaN in one run only, or a sign of zero, differs by "0": its detail says how
    return o.detail if o.max_abs_diff == 0 and o.detail else f"max abs diff {_g(o.max_abs_diff)}"


def _g(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, (int, float)) else str(x)  # "inf"/"nan" arrive as strings in the report


def _golden(side: Side, lc: LoadedCheck) -> str:
    c = _find(side, lc)
    assert c is not None and c.baseline is not None
    return c.baseline.golden


def _say(opts: Options, text: str) -> None:
    if not opts.quiet:
        print(f"reprocheck upgrade: {text}", file=sys.stderr, flush=True)


def run_upgrade(checks: list[LoadedCheck], opts: Options) -> Upgrade:
    """Both stacks, the grading, the float64 reference where needed; the temporary folder removed whatever happens."""
    images = any(s.kind == "image" for s in (opts.source, opts.target))
    # A container can write only inside the workspace: then the private folder lives there (hidden, removed).
    root = Path(tempfile.mkdtemp(prefix=".reprocheck-upgrade-", dir=opts.workspace if images else None))
    try:
        code = copy_code(root / "code")
        for stack in (opts.source, opts.target):
            probe(stack, code)
        sides = []
        for which, stack, device in (("old", opts.source, opts.from_device), ("new", opts.target, opts.to_device)):
            _say(opts, f"the {which} stack, {stack}")
            side = run_side(stack, checks, opts, root / which, code, device, False)
            if side.code == ExitCode.USAGE:
                raise UsageError(f"the {which} stack ({stack}) refused the checks (its message is above)")
            sides.append(side)
        old, new = sides
        decided: dict[tuple[str, str], UpgradeCheck] = {}
        jobs: dict[tuple[str, str], GradeJob] = {}
        for lc in checks:
            verdict = _side_verdict(old, lc, "old", opts.source) or _side_verdict(new, lc, "new", opts.target)
            if verdict is not None:
                decided[_key(lc)] = verdict
                continue
            jobs[_key(lc)] = GradeJob(
                name=lc.name,
                from_=_golden(old, lc),
                to=_golden(new, lc),
                compare=lc.check.compare,
                tolerance=lc.check.baseline_tolerance(),
                k=opts.k,
                ulps=opts.ulps,
            )
        graded = grade_on(opts.target, list(jobs.values()), root / "grade", code, opts) if jobs else []
        answers = dict(zip(jobs, graded, strict=True))
        notes: dict[tuple[str, str], list[str]] = {k: [] for k in jobs}
        unequal = [lc for lc in checks if _key(lc) in answers and _not_identical(answers[_key(lc)])]
        if unequal:
            _say(opts, f"the float64 reference on the old stack, for {len(unequal)} check(s)")
            ref = run_side(opts.source, unequal, opts, root / "reference", code, None, True)
            for lc in unequal:
                problem = _side_verdict(ref, lc, "old", opts.source)
                if problem is None:
                    jobs[_key(lc)] = jobs[_key(lc)].model_copy(update={"reference": _golden(ref, lc)})
                else:
                    notes[_key(lc)].append(
                        f"no float64 reference ({problem.message}), so nothing is graded within noise"
                    )
            again = [k for k in (_key(lc) for lc in unequal) if jobs[k].reference]
            if again:
                regraded = grade_on(opts.target, [jobs[k] for k in again], root / "grade-reference", code, opts)
                answers.update(zip(again, regraded, strict=True))
        changes = _changes(unequal, opts, root, code, notes) if unequal else {}
        results = []
        for lc in checks:
            k = _key(lc)
            if k in decided:
                results.append(decided[k])
                continue
            verdict = graded_check(lc, answers[k], opts.require, tuple(notes[k]))
            results.append(dataclasses.replace(verdict, change=changes.get(k)))
        if opts.pictures is not None:
            results = [
                _drawn(i, lc, c, jobs.get(_key(lc)), opts, root, code)
                for i, (lc, c) in enumerate(zip(checks, results, strict=True))
            ]
        return Upgrade(opts, (_fingerprint(old), _fingerprint(new)), tuple(results))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _changes(
    checks: list[LoadedCheck], opts: Options, root: Path, code: Path, notes: dict[tuple[str, str], list[str]]
) -> dict[tuple[str, str], Divergence | None]:
    """For each check whose outputs changed: a traced run on each stack (fingerprints of every module's and op's
    output), the two traces compared on the --to stack: the first op whose output changed, or where they part."""
    _say(opts, f"traced runs on both stacks, for {len(checks)} check(s): the first op that changed")
    for which, stack, device in (("old", opts.source, opts.from_device), ("new", opts.target, opts.to_device)):
        run_side(stack, checks, opts, root / f"traced-{which}", code, device, False, trace=True)
    found: dict[tuple[str, str], Divergence | None] = {}
    for i, lc in enumerate(checks):
        runs = [_traced_run(root / f"traced-{which}" / "runs", lc) for which in ("old", "new")]
        if None in runs:
            notes[_key(lc)].append("no traced run on both stacks, so the op that changed is not named")
            continue
        request = TracesRequest(runs=[str(r) for r in runs], tolerance=lc.check.tolerance, diverge=True)
        folder = root / f"traced-diff-{i}"
        found[_key(lc)] = ask_on(opts.target, request, TracesAnswer, folder, code, opts, "trace comparison").divergence
    return found


def _traced_run(runs: Path, lc: LoadedCheck) -> Path | None:
    """Run 1's folder of this check in a traced side run (workdir NNN-name): None when it did not finish traced, or
    two checks of that name make it ambiguous."""
    found = [d / "run1" for d in sorted(runs.glob(f"[0-9][0-9][0-9]-{lc.name}"))]
    ok = [d for d in found if (d / TRACE_FILE).is_file() and (d / META_FILE).is_file()]
    return ok[0] if len(found) == 1 and ok else None


def _drawn(
    index: int, lc: LoadedCheck, c: UpgradeCheck, job: GradeJob | None, opts: Options, root: Path, code: Path
) -> UpgradeCheck:
    """A graded check's outputs that are not identical, drawn on the --to stack from both stacks' goldens (and the
    float64 reference, where one was run), then copied into --pictures."""
    changed = [o.path for o in c.outputs if o.grade is not Grade.IDENTICAL]
    if job is None or not changed or opts.pictures is None:
        return c
    folder = root / f"draw-{index + 1:03d}"
    (folder / "pictures").mkdir(parents=True, exist_ok=True)
    request = DrawRequest(
        folder=str(folder / "pictures"),
        prefix=safe_name("upgrade", f"{index + 1:03d}", lc.name),
        expected=job.from_,
        obtained=job.to,
        names=(f"--from {opts.source}", f"--to {opts.target}"),
        reference=job.reference,
        check=worker_check(lc.check),
        paths=changed,
    )
    try:
        answer = ask_on(opts.target, request, DrawAnswer, folder, code, opts, "drawing")
    except RuntimeError as exc:
        return dataclasses.replace(c, notes=(*c.notes, f"pictures: not drawn ({str(exc).splitlines()[0]})"))
    kept = checked(folder / "pictures", answer.pictures)
    for p in kept:
        _copy(folder / "pictures" / p.file, opts.pictures / p.file)
    return dataclasses.replace(c, pictures=kept, notes=(*c.notes, *answer.notes))


def _copy(source: Path, target: Path) -> None:
    data = source.read_bytes()
    atomic_write(target, lambda tmp: Path(tmp).write_bytes(data))


def _not_identical(answer: GradedCheck) -> bool:
    return bool(answer.error) or any(o.grade != Grade.IDENTICAL for o in answer.outputs)


def _fingerprint(side: Side) -> dict[str, Any]:
    # The first check that has one: a check that errored before any run has none.
    checks = side.report.checks if side.report is not None else []
    return dict(next((c.fingerprint for c in checks if c.fingerprint), {}))


def graded_check(lc: LoadedCheck, answer: GradedCheck, require: str, notes: tuple[str, ...]) -> UpgradeCheck:
    def base(verdict: Verdict, message: str = "", outputs: tuple[OutputGrade, ...] = ()) -> UpgradeCheck:
        return UpgradeCheck(lc.name, str(lc.file), lc.line, lc.check.seed, verdict, message, outputs, notes)

    if answer.error:
        return base(Verdict.ERROR, answer.error)
    outputs = graded_outputs(answer)
    if not outputs:
        return base(Verdict.ERROR, "the outputs hold no tensor to compare")
    below = [o for o in outputs if not accepted(o, require)]
    if not below:
        return base(Verdict.SAFE, outputs=outputs)
    shown = ", ".join(f"{o.path} ({o.grade})" for o in below[:3]) + (" ..." if len(below) > 3 else "")
    return base(
        Verdict.CHANGED,
        f"{len(below)} of {len(outputs)} outputs below --require {require}: {shown}",
        outputs=outputs,
    )
