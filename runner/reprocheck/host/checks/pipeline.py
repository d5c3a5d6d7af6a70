"""Checks end to end: goldens and names checked, isolated runs, the comparison (done on the torch side),
a CheckResult per check, clean-up whatever happens. This process never imports torch."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ... import environment, goldens
from ...golden_result import BaselineResult, BaselineStatus
from ...goldens import BaselineOptions
from ...pictures import Picture
from ...protocol import DrawAnswer, DrawRequest, GoldenJob, RunRef, TraceJob, VerdictAnswer, VerdictRequest
from ...results import Comparison, Fragile
from ...spec import LoadedCheck, SpecError
from ..workers import isolated, zygote
from ..workers.run_result import RunResult
from . import pictures
from .decision import Evidence, decide
from .findings import blind_outputs, nothing_compared, recipe_parts_off
from .invariance import has_variants, reference_outputs, run_variants
from .outcome import CheckResult, VariantResult
from .progress import Progress


def workdir_for(root: Path, index: int, lc: LoadedCheck) -> Path:
    # The index keeps same-named checks from two files apart.
    return root / f"{index + 1:03d}-{lc.name}"


class Interrupted(Exception):
    """reprocheck failed inside a check: the checks before it completed and can still be reported."""

    def __init__(self, completed: list[CheckResult], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.completed, self.cause = completed, cause


@dataclass(frozen=True)
class Session:
    """How the checks run (the command line's choices), and where they say how it goes."""

    isolation: isolated.Isolation = isolated.Isolation.AUTO
    keep: Path | None = None  # keep each run's outputs and logs here
    baseline: BaselineOptions | None = None
    invariance: frozenset[str] | None = None  # the kinds of variants to run; None: every kind a check declares
    require_devices: bool = False  # a device variant whose device is not here is an error, not a skip
    float64: bool = False  # every run in float64 (model and floating inputs): the upgrade canary's reference
    progress: Progress = field(default_factory=Progress)
    pictures: Path | None = None  # draw what differs here (the outputs stay on disk until the check is drawn)
    trace: bool = False  # every run records its modules' and ops' fingerprints (upgrade's traced side)

    @property
    def trace_job(self) -> TraceJob | None:
        return TraceJob() if self.trace else None

    @property
    def discard(self) -> bool:
        """Each later run's outputs are deleted once compared (nothing is kept, nothing is drawn)."""
        return self.keep is None and self.pictures is None


@dataclass
class _Judged:
    """What comparing a check's runs found (before any variant)."""

    comparison: Comparison | None = None
    golden: BaselineResult | None = None
    fragile: tuple[Fragile, ...] = ()
    notes: list[str] = field(default_factory=list)
    error: str = ""
    error_line: int = 0


def run_check(lc: LoadedCheck, prepared: isolated.CheckWorkers, session: Session) -> CheckResult:
    start = time.perf_counter()
    check = lc.check
    runs = prepared.run(lambda run: session.progress.run_ended(lc, run))
    ok = [r for r in runs if r.ok]
    all_ok = len(ok) == len(runs) == check.runs
    j = _judge(lc, prepared, ok, all_ok, session)
    comparison = j.comparison
    blind, blind_all = blind_outputs(comparison, ok[0].constants if ok else {})
    variants: tuple[VariantResult, ...] = ()
    if all_ok and not j.error:  # a check that could not be judged is not varied either
        variants = run_variants(lc, ok[0], prepared, session.invariance, session.require_devices, session.progress)
    drawn: tuple[Picture, ...] = ()
    if session.pictures is not None and ok:
        session.progress.phase(f"{check.name}: drawing what differs")
        drawn, said = _draw(lc, prepared, ok, comparison, variants, session.pictures)
        j.notes += said
    prepared.cancel()
    status = decide(
        Evidence(
            runs_requested=check.runs,
            runs_ended=len(runs),
            runs_ok=len(ok),
            error=j.error,
            comparison=None if comparison is None else bool(comparison),
            baseline=None if j.golden is None else bool(j.golden),
            fragile=bool(j.fragile),
            fragile_policy=check.compare.fragile,
            blind_all=blind_all,
            strict=check.strict,
            variants=tuple(v.status for v in variants),
        )
    )
    if comparison is not None and not comparison:
        j.notes[:0] = recipe_parts_off(check.recipe)
    if comparison is not None:
        outs = ", ".join(o.path for o in comparison.outputs[:5])
        j.notes += [f"tolerance pattern {p!r} matches no output (outputs: {outs})" for p in comparison.unused_patterns]
    return CheckResult(
        name=check.name,
        file=lc.file,
        line=lc.line,
        status=status,
        seed=check.seed,
        device=next((r.device for r in ok if r.device), check.device),
        runs_requested=check.runs,
        runs=tuple(runs),
        comparison=comparison,
        recipe=environment.describe(check.seed, check.recipe, environment.resolve_threads(check.recipe)),
        config_hash=lc.config_hash,
        duration=time.perf_counter() - start,
        notes=tuple(j.notes),
        baseline=j.golden,
        invariance=variants,
        invariance_line=lc.key_line("invariance") if variants else 0,
        fragile=j.fragile,
        fragile_policy=check.compare.fragile,
        compare_line=lc.key_line("compare") if check.compare.outputs else 0,
        error=j.error,
        error_line=j.error_line,
        ignored=ok[0].ignored if ok else (),
        blind=blind,
        blind_all=blind_all,
        pictures=drawn,
    )


def _draw(
    lc: LoadedCheck,
    prepared: isolated.CheckWorkers,
    ok: list[RunResult],
    comparison: Comparison | None,
    variants: tuple[VariantResult, ...],
    folder: Path,
) -> tuple[tuple[Picture, ...], list[str]]:
    """The pictures of the check's runs and failed variants, drawn in a fork of its zygote (else a helper)."""

    def ask(request: DrawRequest, name: str) -> DrawAnswer:
        return prepared.fork_answer(request, DrawAnswer, prepared.workdir / name)

    tag = prepared.workdir.name  # its place and name: same-named checks of two files stay apart
    runs, notes = pictures.draw_runs(lc, tag, ok, comparison, folder, ask)
    more, said = pictures.draw_variants(lc, tag, ok[0], variants, reference_outputs(prepared.workdir), folder, ask)
    return runs + more, notes + said


def _judge(
    lc: LoadedCheck,
    prepared: isolated.CheckWorkers,
    ok: list[RunResult],
    all_ok: bool,
    session: Session,
) -> _Judged:
    """The runs compared with each other (and the golden outputs), on the torch side; and why they could not be."""
    check, baseline = lc.check, session.baseline
    want_golden = baseline is not None and all_ok
    j = _Judged(notes=list(ok[0].notes) if ok else [])
    root_ignored = False
    if len(ok) >= 2 or (want_golden and ok):
        session.progress.phase(f"{check.name}: comparing the runs")
        answer = _verdict(
            prepared,
            VerdictRequest(
                runs=[RunRef(index=r.index, outputs=str(r.outputs_path)) for r in ok],
                tolerance=check.tolerance,
                compare=check.compare,
                fragile=check.compare.fragile if all_ok else "off",
                facts=ok[0].facts,
                golden=_golden_job(lc, baseline, ok[0]) if want_golden and baseline else None,
                fingerprint=ok[0].fingerprint,
                all_ok=all_ok,
                discard=session.discard,
            ),
            # its zygote forks the variants, and draws the pictures
            keep=all_ok and (has_variants(lc, session.invariance) or session.pictures is not None),
        )
        j.error = answer.timeout
        j.comparison = None if j.error else answer.comparison
        j.golden = answer.golden
        j.fragile = tuple(answer.fragile)
        j.notes += answer.notes
        root_ignored = answer.root_ignored
        if answer.error is not None:
            j.error = answer.error.message
            j.error_line = lc.key_line("compare", "outputs", answer.error.pattern)
        elif j.golden is not None and j.golden.status is BaselineStatus.MISSING and not j.error:
            # known only once the GPU said its generation (key: gpu): no golden is not drift, it is no judgement
            j.error, j.error_line = j.golden.message, lc.key_line("baseline")
    else:
        prepared.cancel()
    if ok and ok[0].ignore_unmatched and not j.error:
        shown = ", ".join(ok[0].every_path[:10])
        j.error = f"ignore pattern {ok[0].ignore_unmatched[0]!r} matches no output (the outputs: {shown})"
        j.error_line = lc.key_line("ignore")
    empty = nothing_compared(j.comparison, ok[0].ignored if ok else (), check.ignore, root_ignored)
    if empty is not None and not j.error:  # nothing compared is never a pass
        j.error, j.error_line = empty[0], lc.key_line("ignore") if empty[1] else 0
    return j


def _golden_job(lc: LoadedCheck, options: BaselineOptions, first: RunResult) -> GoldenJob:
    """The golden this machine compares with: its keys come from where run 1 ran (device, GPU generation)."""
    keys = goldens.machine_keys(lc.check.baseline_key, first.device or lc.check.device, first.fingerprint)
    return goldens.golden_job(lc, options, goldens.choose(options.root, lc, options.spec_root, keys))


def _verdict(prepared: isolated.CheckWorkers, request: VerdictRequest, keep: bool = False) -> VerdictAnswer:
    try:
        return prepared.verdict(request, keep)
    except isolated.VerdictTimeout as exc:
        return VerdictAnswer(timeout=str(exc))


def run_all(
    checks: list[LoadedCheck], workroot: Path, session: Session, first: isolated.CheckWorkers | None = None
) -> list[CheckResult]:
    """Run checks in order. `first` is the first check already prepared (its worker warming up).
    An unexpected failure inside a check raises Interrupted with the checks completed before it."""
    results: list[CheckResult] = []
    for i, lc in enumerate(checks):
        session.progress.check_started(i, len(checks), lc)
        try:
            prepared = (
                first
                if (i == 0 and first is not None)
                else isolated.CheckWorkers(
                    lc,
                    workdir_for(workroot, i, lc),
                    session.isolation,
                    fold=session.discard,
                    float64=session.float64,
                    trace=session.trace_job,
                )
            )
            result = run_check(lc, prepared, session)
        except Exception as exc:
            raise Interrupted(results, exc) from exc
        results.append(result)
    return results


class SpecProblems(Exception):
    """Found before anything ran (golden files, torchvision names): exit 2."""

    def __init__(self, messages: list[str], errors: list[SpecError] | None = None) -> None:
        super().__init__("\n".join(messages))
        self.errors = errors or []


def run_session(checks: list[LoadedCheck], session: Session) -> list[CheckResult]:
    """Check the goldens and names, run every check, clean up whatever happens. Raises SpecProblems
    before anything runs, Interrupted (with the completed checks) when reprocheck fails inside a check."""
    from .names import name_errors, name_requests

    if session.baseline is not None:
        problems = goldens.preflight(checks, session.baseline)
        if problems:
            raise SpecProblems(problems)
    root = session.keep or Path(tempfile.mkdtemp(prefix="reprocheck-"))
    try:
        # The first check's zygote imports torch, answers the torchvision name checks of every check,
        # then waits for "go": nothing runs until the whole spec is known to be valid.
        requests = name_requests(checks)
        first = isolated.CheckWorkers(
            checks[0],
            workdir_for(root, 0, checks[0]),
            session.isolation,
            names=requests,
            fold=session.discard,
            float64=session.float64,
            trace=session.trace_job,
        )
        errors = name_errors(checks, first.name_problems(requests))
        if errors:
            raise SpecProblems([str(e) for e in errors], errors)
        return run_all(checks, root, session, first)
    finally:
        zygote.cancel_all()  # whatever ended us, no worker outlives this process
        if session.keep is None:
            shutil.rmtree(root, ignore_errors=True)
