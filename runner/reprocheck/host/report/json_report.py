"""The JSON report (`--report`) and the JSON diagnosis, built as the models shape.py declares: a value that does
not fit its field fails here, in this process, before anything is written."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ... import __version__, flake
from ...results import Kind, OutputResult
from ..checks.grades import OutputGrade, accepted
from ..checks.outcome import CheckResult, Status, VariantResult, exit_code
from . import shape
from .tasks import fragile_sentence
from .text import UPGRADE_SIDES, Sides, blind_lines, detail, variant_sides

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ...diagnosis import Diagnosis, Divergence
    from ...golden_result import BaselineResult
    from ...pictures import Picture
    from ...results import Comparison
    from ..workers.run_result import RunResult


SCHEMA_VERSION = 2  # of the run report and the diagnosis (shape.py says what changed)


def output_model(o: OutputResult) -> shape.Output:
    passing: shape.PassingTolerance | None = None
    if o.kind is Kind.MATCH:
        passing = shape.PassingTolerance(
            atol=0.0 if o.needed_atol is None else o.needed_atol,
            rtol=0.0 if o.needed_rtol is None else o.needed_rtol,
        )
    elif o.kind is Kind.VALUES and not o.exact and (o.needed_atol is not None or o.needed_rtol is not None):
        passing = shape.PassingTolerance(atol=o.needed_atol, rtol=o.needed_rtol)
    task = o.judged_by_task  # its elementwise statistics are not measured: max_matched_diff is its measure
    return shape.Output(
        path=o.path,
        status=o.kind.value,
        shape=list(o.shape),
        dtype=o.dtype,
        unit=o.unit,
        total=o.total,
        mismatched=o.mismatched,
        mismatch_percent=round(o.mismatch_percent, 4),
        max_abs_diff=None if task else o.max_abs_diff,
        max_rel_diff=None if task else o.max_rel_diff,
        mean_abs_diff=None if task else o.mean_abs_diff,
        max_matched_diff=o.max_matched_diff if task and o.kind is not Kind.STRUCTURE else None,
        first_index=list(o.first_index) if o.first_index is not None else None,
        expected_value=o.expected_value,
        obtained_value=o.obtained_value,
        nan_count=o.nan_count,
        exact=o.exact,
        tolerance=shape.ToleranceUsed(atol=o.tolerance.atol, rtol=o.tolerance.rtol, pattern=o.tolerance.pattern),
        passing_tolerance=passing,
        runs=[o.expected_run, o.obtained_run],
        detail=o.detail,
        runs_differing=o.runs_differing,
        distinct_results=o.distinct_results,
        task=shape.Task.model_validate(dataclasses.asdict(o.task)) if o.task is not None else None,
    )


def _outputs(c: Comparison | None) -> list[shape.Output]:
    return [output_model(o) for o in (c.outputs if c is not None else ())]


def _run(x: RunResult) -> shape.Run:
    return shape.Run(
        index=x.index,
        status=x.status.value,
        duration_s=round(x.duration, 3),
        cause=x.cause,
        stage=x.stage,
        details=list(x.details),
        hint=x.hint,
        timings=x.timings,
        warnings=list(x.warnings),
    )


def _variant(v: VariantResult) -> shape.Variant:
    return shape.Variant(
        kind=v.kind.value,
        variant=v.variant,
        reference=v.reference,
        status=v.status.value,
        cause=v.cause,
        left_out=list(v.left_out),
        ignored=list(v.ignored),
        reference_distances=[
            shape.ReferenceDistance(path=d.path, expected=d.expected, obtained=d.obtained) for d in v.distances
        ],
        outputs=_outputs(v.comparison),
        require=v.require or None,
        grades=[graded_model(g, v.require, variant_sides(v)) for g in v.grades],
        compiled=v.compiled,
        compiled_runs=_outputs(v.repeat),
        compiled_reproducible=None if v.repeat is None else bool(v.repeat),
        first_change=None if v.change is None else divergence_model(v.change),
        first_change_note=v.change_note,
    )


def graded_model(g: OutputGrade, require: str, sides: Sides = UPGRADE_SIDES) -> shape.Graded:
    return shape.Graded(
        path=g.path,
        grade=g.grade.value,
        detail=detail(g, sides),
        noise=list(g.noise),
        rule=g.rule,
        accepted=accepted(g, require),
        comparison=output_model(g.result),
    )


def check_model(r: CheckResult) -> shape.CheckReport:
    return shape.CheckReport(
        name=r.name,
        file=str(r.file),
        line=r.line,
        status=r.status.value,
        seed=r.seed,
        device=r.device,
        runs_requested=r.runs_requested,
        config_hash=r.config_hash,
        duration_s=round(r.duration, 3),
        recipe=r.recipe,
        runs=[_run(x) for x in r.runs],
        outputs=_outputs(r.comparison),
        fingerprint=r.fingerprint,
        notes=list(r.notes),
        ignored=list(r.ignored),
        blind=list(blind_lines(r)),
        flake=_flake(r),
        invariance=[_variant(v) for v in r.invariance],
        baseline=baseline_model(r.baseline) if r.baseline is not None else None,
        fragile=[shape.Fragile(**dataclasses.asdict(f), message=fragile_sentence(f)) for f in r.fragile],
        fragile_policy=r.fragile_policy,
        error=f"{r.file}:{r.error_line}: {r.error}" if r.error else "",
        pictures=picture_models(r.pictures),
    )


def picture_models(pictures: Sequence[Picture]) -> list[shape.PictureFile]:
    return [shape.PictureFile(file=p.file, output=p.output, caption=p.caption) for p in pictures]


def _flake(r: CheckResult) -> shape.Flake | None:
    c = r.comparison
    if c is None or c.runs_compared < 3:
        return None
    f = c.flake
    return shape.Flake(
        runs_compared=f.compared,
        runs_differing=f.differing,
        rate=f.rate,
        interval=[f.low, f.high],
        confidence=flake.CONFIDENCE,
        method=flake.METHOD,
        distinct_results=c.distinct_results,
        statement=f.statement(),
    )


def baseline_model(b: BaselineResult) -> shape.Baseline:
    return shape.Baseline(
        status=b.status.value,
        golden=str(b.golden),
        key=b.key,
        golden_key=b.golden_key,
        fallback=b.fallback,
        written=str(b.written) if b.written else None,
        obtained=str(b.obtained) if b.obtained else None,
        golden_created=b.golden_created,
        config_changed=b.config_changed,
        message=b.message,
        fingerprint_diff=[
            shape.FingerprintDiff(field=d.field, baseline=d.expected, now=d.obtained) for d in b.fingerprint_diff
        ],
        outputs=_outputs(b.comparison),
    )


def report_model(results: list[CheckResult]) -> shape.Report:
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    return shape.Report(
        tool="reprocheck",
        version=__version__,
        schema_version=SCHEMA_VERSION,
        exit_code=int(exit_code(results)),
        summary=shape.Summary(
            checks=len(results), passed=counts[Status.PASS], fail=counts[Status.FAIL], error=counts[Status.ERROR]
        ),
        checks=[check_model(r) for r in results],
    )


def render_json(results: list[CheckResult]) -> str:
    return shape.written(report_model(results))


def _compared(c: Comparison | None) -> shape.Compared | None:
    return None if c is None else shape.Compared(passed=bool(c), outputs=_outputs(c))


def divergence_model(v: Divergence) -> shape.FirstDivergence:
    o = v.op
    return shape.FirstDivergence(
        found=v.found,
        call=v.call,
        module_call=v.module_call,
        module=v.module,
        type=v.type,
        detail=v.detail,
        output=output_model(v.result) if v.result is not None else None,
        op=None
        if o is None
        else shape.FirstOp(
            op=o.op,
            module=o.module,
            module_call=o.module_call,
            index=o.index,
            position=o.position,
            location=o.location,
            parted=o.parted,
            other=o.other,
            detail=o.detail,
            output=output_model(o.result) if o.result is not None else None,
        ),
        stopped=v.stopped,
    )


def diagnosis_model(d: Diagnosis) -> shape.Diagnosed:
    v, s = d.divergence, d.seed
    return shape.Diagnosed(
        name=d.name,
        file=str(d.file),
        line=d.line,
        seed=d.check_seed,
        reproducible=d.reproducible,
        error=d.error,
        comparison=_compared(d.comparison),
        first_divergence=None if v is None else divergence_model(v),
        seed_sensitivity=None
        if s is None
        else shape.SeedSensitivity(
            sensitive=s.sensitive,
            other_seed=s.other_seed,
            causes=list(s.causes),
            training_modules=[shape.TrainingModule(module=p, type=t) for p, t in s.training_modules],
            random_parameters=list(s.random_parameters),
            parameters_total=s.parameters_total,
            comparison=_compared(s.comparison),
        ),
        ablations=[
            shape.Ablation(
                knob=a.knob,
                description=a.description,
                effect=a.effect.value,
                breaks=a.effect is a.effect.BREAKS,
                error=a.error,
                comparison=_compared(a.comparison),
            )
            for a in d.ablations
        ],
        nondeterministic_ops=list(d.nondeterministic_ops),
        not_varied=list(d.skipped),
        pictures=picture_models(d.pictures),
    )


def render_diagnosis_json(diagnoses: list[Diagnosis]) -> str:
    return shape.written(
        shape.DiagnosisReport(
            tool="reprocheck",
            version=__version__,
            schema_version=SCHEMA_VERSION,
            kind="diagnose",
            checks=[diagnosis_model(d) for d in diagnoses],
        )
    )
