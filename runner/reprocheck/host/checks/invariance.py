"""Invariance: the check run again with one thing changed, each variant compared with the check's own run 1.

  * batch (`invariance: {batch: [1, 8]}`): the same samples in a batch of another size (batching.py): a model
    whose output for a sample depends on the batch it is in (kernel choice by shape, cross-sample leakage,
    padding of detection batches);
  * threads (`invariance: {threads: [1, 4]}`): the CPU intra-op thread count: reductions split their work by
    thread, so a model can be run-to-run deterministic at one count and give other numbers at another;
  * device (`invariance: {device: cuda}`): another device. Where it is not on this machine the variant is
    skipped (not passed), and `--require-devices` makes that an error.
When a variant differs, the float64 reference (`reference: auto` for device variants, `float64` for all, `none`)
is one more run in float64 on the CPU: per output, which side is closer to it says which side is off.
Each variant is one run, isolated like the check's own, with the same recipe otherwise. Batch, device and the
reference are forks of the check's own zygote (which never ran an op: its verdict, too, ran in a fork) with the
job changed, so they import nothing again; a threads variant starts a fresh worker, since the thread count lives
in the environment (OMP_NUM_THREADS, MKL_NUM_THREADS) that OpenMP and MKL read when torch is imported, and a fork
keeps the zygote's. In spawn mode every variant is a fresh interpreter. The comparison happens on the torch side
(a fork of the zygote, else a helper), under `invariance.tolerance` (default: the check's tolerance).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import environment
from ...diagnosis import Divergence
from ...protocol import (
    Distance,
    Distances,
    DistancesRequest,
    GradeJob,
    GradeRequest,
    Grades,
    RunRef,
    TraceJob,
    TracesAnswer,
    TracesRequest,
    VerdictRequest,
)
from ...spec import Check, LoadedCheck, ToleranceSpec
from ..workers import isolated
from ..workers.helper_client import WorkerFailed, helper
from ..workers.run_result import RunResult, said
from .decision import VariantEvidence, decide_variant
from .grades import ULPS, K, accepted, graded_outputs
from .outcome import VariantKind, VariantResult, VariantStatus
from .progress import Progress

KINDS = tuple(k.value for k in VariantKind)


def selected_kinds(choices: Sequence[str] | None) -> frozenset[str] | None:
    """--invariance values -> the kinds to run (None: all a check declares)."""
    if not choices or "all" in choices:
        return None
    return frozenset(c for c in choices if c != "none")


def has_variants(lc: LoadedCheck, kinds: frozenset[str] | None) -> bool:
    return bool(_variants(lc, kinds))


def _variants(lc: LoadedCheck, kinds: frozenset[str] | None) -> list[tuple[VariantKind, int | str]]:
    inv = lc.check.invariance
    if inv is None:
        return []
    wanted: list[tuple[VariantKind, int | str]] = [(VariantKind.BATCH, b) for b in inv.batch]
    wanted += [(VariantKind.THREADS, t) for t in inv.threads]
    wanted += [(VariantKind.DEVICE, inv.device)] if inv.device else []
    wanted += [(VariantKind.COMPILE, inv.compile.label())] if inv.compile else []
    wanted += [(VariantKind.DTYPE, d) for d in inv.dtype]
    wanted += [(VariantKind.AUTOCAST, d) for d in inv.autocast]
    return [(k, v) for k, v in wanted if kinds is None or k.value in kinds]


def kind_tolerance(lc: LoadedCheck, kind: VariantKind) -> ToleranceSpec:
    """`invariance.tolerance` for this kind of variant (its own entry, else the top level), else the check's."""
    inv = lc.check.invariance
    if inv is None or inv.tolerance is None:
        return lc.check.tolerance
    return inv.tolerance.for_kind(kind.value, lc.check.tolerance)


def _request(
    lc: LoadedCheck, runs: Sequence[RunResult], tolerance: ToleranceSpec, batch: tuple[int, int] | None = None
) -> VerdictRequest:
    """The comparison of `runs` (the expected first) under the check's `compare:` rules."""
    refs = [RunRef(index=i, outputs=str(r.outputs_path)) for i, r in enumerate(runs, 1)]
    return VerdictRequest(runs=refs, tolerance=tolerance, compare=lc.check.compare, batch=batch)


REFERENCE = "reference-float64"  # the float64 reference run's folder, in the check's work folder


def reference_outputs(workdir: Path) -> Path:
    """Where the check's float64 reference run (if one ran) left its outputs."""
    return workdir / REFERENCE / "run1" / "outputs.pt"


def _reference(lc: LoadedCheck, workdir: Path, source: isolated.CheckWorkers) -> RunResult:
    """The check's computation in float64 on the CPU, once per check."""
    check = lc.check.model_copy(update={"runs": 1, "device": "cpu"})
    variant = isolated.VariantRun(dataclasses.replace(lc, check=check), workdir / REFERENCE, source, float64=True)
    run = variant.run()
    variant.cancel()
    return run


def run_variants(
    lc: LoadedCheck,
    first: RunResult,
    source: isolated.CheckWorkers,
    kinds: frozenset[str] | None,
    require_devices: bool,
    progress: Progress,
) -> tuple[VariantResult, ...]:
    """Every variant the check declares (and `kinds` selects; None: all): batch sizes, thread counts, device.
    `source`: the check's own prepared runs, whose zygote forks the variants that keep its environment."""
    variants = _variants(lc, kinds)
    if not variants:
        return ()
    runner = _VariantRunner(lc, first, source.workdir, require_devices, source, progress)
    try:
        return tuple(runner.one(kind, value) for kind, value in variants)
    finally:  # the traces are read: their disk is free
        shutil.rmtree(runner.workdir / TRACED, ignore_errors=True)


@dataclass
class _VariantRunner:
    lc: LoadedCheck
    first: RunResult
    workdir: Path
    require_devices: bool
    source: isolated.CheckWorkers
    progress: Progress
    reference_run: RunResult | None = None  # the float64 reference, run once for all variants that need it
    traced_check: RunResult | None = None  # a traced run at the check's own setting, once for all variants

    def one(self, kind: VariantKind, value: int | str) -> VariantResult:
        """One variant run and compared with run 1; every way it can end is a VariantResult, never an exception."""
        lc, first = self.lc, self.first
        check, reference = _setting(lc, first, kind, value)

        def ended(evidence: VariantEvidence, cause: str, **more: Any) -> VariantResult:
            return VariantResult(kind, str(value), reference, decide_variant(evidence), cause=cause, **more)

        def failed(cause: str, **more: Any) -> VariantResult:  # could not be compared with run 1
            return ended(VariantEvidence(error=cause), cause, **more)

        if kind is VariantKind.BATCH and first.samples is None:  # known from the check's own runs: nothing to run
            return failed(NO_BATCH)
        if kind.graded:
            return self.graded(kind, str(value), check, reference)
        self.progress.phase(f"{lc.name}: invariance {kind.value}={value}")
        folder = self.workdir / f"{kind.value}-{str(value).replace(':', '-')}"
        batch = value if kind is VariantKind.BATCH and isinstance(value, int) else None
        prepared = isolated.VariantRun(dataclasses.replace(lc, check=check), folder, self.source, batch=batch)
        run = prepared.run()
        if not run.ok:
            prepared.cancel()
            e = VariantEvidence(run_ok=False, unavailable=run.unavailable, require_devices=self.require_devices)
            skipped = decide_variant(e) is VariantStatus.SKIPPED
            cause = f"{value} is not available on this machine (--require-devices makes that an error)"
            return ended(e, cause if skipped else run.cause, run=run)
        batched: tuple[int, int] | None = None
        if kind is VariantKind.BATCH:
            if first.samples is None or run.samples is None:
                prepared.cancel()
                return failed("the input has no batch dimension (one tensor or list argument) to vary", run=run)
            batched = (first.samples, run.samples)
        inv = lc.check.invariance
        assert inv is not None
        request = _request(lc, [first, run], kind_tolerance(lc, kind), batched)
        try:
            answer = prepared.verdict(request)
        except isolated.VerdictTimeout as exc:
            return failed(str(exc), run=run)
        if answer.error is not None or answer.comparison is None:  # the check's own comparison reported the rule
            prepared.cancel()
            cause = answer.error.message if answer.error else "the variant's comparison compared nothing"
            return failed(cause, run=run)
        comparison = answer.comparison
        left_out = tuple(answer.left_out)
        if not comparison.outputs:  # nothing compared is never a pass
            prepared.cancel()
            if kind is VariantKind.BATCH:
                shown = ", ".join(left_out[:5]) or "none"
                cause = (
                    f"batch variant: no output is per-sample (none has dim 0 = {first.samples} in run 1 and "
                    f"{run.samples} here), so nothing was compared; not per-sample: {shown}"
                )
            else:
                cause = f"{kind.value} variant: the outputs hold no tensor to compare"
            return failed(cause, run=run, left_out=left_out)
        distances: tuple[Distance, ...] = ()
        wants_reference = inv.reference == "float64" or (inv.reference == "auto" and kind is VariantKind.DEVICE)
        if not comparison and wants_reference:
            self.progress.phase(f"{lc.name}: the float64 reference")
            self.reference_run = self.reference_run or _reference(lc, self.workdir, self.source)
            if self.reference_run.ok:
                distances = _distances(first, run, self.reference_run, self.workdir, batched, self.source)
        change, change_note = None, ""
        if not comparison and kind is not VariantKind.BATCH:
            change, change_note = self.first_change(kind, value, check)
        status = decide_variant(VariantEvidence(passed=bool(comparison)))
        return VariantResult(
            kind,
            str(value),
            reference,
            status,
            comparison,
            run,
            left_out=left_out,
            ignored=first.ignored,
            distances=distances,
            change=change,
            change_note=change_note,
        )

    def first_change(self, kind: VariantKind, value: int | str, check: Check) -> tuple[Divergence | None, str]:
        """Threads, device: where the forward first differs, module and aten op: a traced run at the check's
        setting (once for all variants) and one at the variant's, fingerprints compared position by position.
        Batch variants are not traced: every op's output has another batch size, so nothing aligns.
        Each folder is made afresh under a name no run could know in advance: a traced run shares its process
        with the model, which can write beside its own folder."""
        lc = self.lc
        self.progress.phase(f"{lc.name}: invariance {kind.value}={value}: traced runs, the first op that differs")
        not_named = "the op that differs is not named"
        folder: Path | None = None
        try:
            root = self.workdir / TRACED
            root.mkdir(exist_ok=True)
            if self.traced_check is None:
                self.traced_check = _traced(lc, lc.check, _fresh(root, "check-"), self.source.isolation)
            folder = _fresh(root, f"{kind.value}-")
            side = _traced(lc, check, folder, self.source.isolation)
            for which, run in (("the check's setting", self.traced_check), (f"{kind.value}={value}", side)):
                if not run.ok:
                    return None, f"{not_named}: the traced run at {which} failed ({run.cause})"
            request = TracesRequest(
                runs=[str(self.traced_check.run_dir), str(side.run_dir)],
                tolerance=kind_tolerance(lc, kind),
                diverge=True,
            )
            timeout = isolated.traced_timeout(lc.check)
            answer = helper(_fresh(root, "traces-"), request, TracesAnswer, self.source.env, timeout=timeout)
        except (subprocess.TimeoutExpired, WorkerFailed, OSError) as exc:
            return None, f"{not_named}: comparing the traces failed ({said(str(exc).splitlines()[0])})"
        finally:  # one variant's trace at a time on disk, beside the check's
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        if answer.divergence is None:
            return None, f"{not_named}: the two traced runs agree bit for bit"
        return answer.divergence, ""

    def graded(self, kind: VariantKind, value: str, check: Check, reference: str) -> VariantResult:
        """A compile, dtype or autocast variant: run (a compile twice, each with fresh compile caches), its runs
        compared with each other (compile), then graded against run 1 with the float64 reference, as `upgrade`
        grades stacks; it passes when every output reaches `invariance.require`."""
        lc, first, inv = self.lc, self.first, self.lc.check.invariance
        assert inv is not None

        def result(status: VariantStatus, cause: str = "", **more: Any) -> VariantResult:
            return VariantResult(kind, value, reference, status, cause=cause, require=inv.require, **more)

        compiling = ", compiling (a first compile can take minutes)" if kind is VariantKind.COMPILE else ""
        self.progress.phase(f"{lc.name}: invariance {kind.value}={value}{compiling}")
        folder = self.workdir / f"{kind.value}-{value.split('(', maxsplit=1)[0]}"
        prepared = isolated.VariantRun(
            dataclasses.replace(lc, check=check),
            folder,
            self.source,
            dtype=value if kind is VariantKind.DTYPE else None,
            autocast=value if kind is VariantKind.AUTOCAST else None,
            compile=inv.compile if kind is VariantKind.COMPILE else None,
            runs=COMPILED_RUNS if kind is VariantKind.COMPILE else 1,
        )
        runs = prepared.run_all()
        run = runs[-1]
        compiled = next((r.compiled for r in runs if r.compiled), None)
        repeat = None

        def error(cause: str) -> VariantResult:  # what is known so far goes with it
            prepared.cancel()
            return result(VariantStatus.ERROR, cause, run=run, compiled=compiled, repeat=repeat)

        if not run.ok:
            return error(run.cause + (f"; {run.hint}" if run.hint else ""))
        if kind is VariantKind.COMPILE:  # its own runs first: a compiled model must itself be reproducible
            try:
                answer = prepared.verdict(_request(lc, runs, lc.check.tolerance))
            except isolated.VerdictTimeout as exc:
                return error(str(exc))
            if answer.error is not None or answer.comparison is None:
                return error(answer.error.message if answer.error else "the compiled runs' comparison compared nothing")
            repeat = answer.comparison
        prepared.cancel()
        self.progress.phase(f"{lc.name}: the float64 reference")
        self.reference_run = self.reference_run or _reference(lc, self.workdir, self.source)
        if not self.reference_run.ok:
            return error(f"the float64 reference run failed, so nothing can be graded: {self.reference_run.cause}")
        job = GradeJob(
            name=lc.name,
            from_=str(first.outputs_path),
            to=str(run.outputs_path),
            reference=str(self.reference_run.outputs_path),
            compare=lc.check.compare,
            tolerance=kind_tolerance(lc, kind),
            k=K,
            ulps=ULPS,
            cast=kind is not VariantKind.COMPILE,
            tolerance_name=f"the {kind.value} tolerance",
        )
        try:
            (graded,) = self.source.fork_answer(
                GradeRequest(checks=[job]), Grades, self.workdir / f"grade-{folder.name}"
            ).checks
        except isolated.VerdictTimeout as exc:
            return error(str(exc))
        if graded.error:
            return error(graded.error)
        grades = graded_outputs(graded)
        if not grades:
            return error(f"{kind.value} variant: the outputs hold no tensor to compare")
        same = repeat is None or bool(repeat)
        status = decide_variant(VariantEvidence(passed=same and all(accepted(g, inv.require) for g in grades)))
        return result(status, run=run, compiled=compiled, repeat=repeat, grades=grades, ignored=first.ignored)


TRACED = "traced"  # the traced runs of threads and device variants, under the check's folder


def _fresh(root: Path, prefix: str) -> Path:
    """A new folder under `root` (never one that was there: a link or a file a run left is not followed)."""
    if root.is_symlink() or not root.is_dir():
        raise OSError(f"{root.name} is no longer a folder")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def _traced(lc: LoadedCheck, check: Check, folder: Path, isolation: isolated.Isolation) -> RunResult:
    """One run of `check` in a fresh worker (its own thread count and device), recording fingerprints."""
    traced = check.model_copy(update={"runs": 1, "timeout": isolated.traced_timeout(check)})
    workers = isolated.CheckWorkers(dataclasses.replace(lc, check=traced), folder, isolation, trace=TraceJob())
    try:
        return workers.run()[0]
    finally:
        workers.cancel()


COMPILED_RUNS = 2  # a compiled model is itself checked run to run, each run compiling afresh

NO_BATCH = (
    "the input has no batch to vary: batch invariance needs one tensor or list argument, or keyword "
    "tensors that share dim 0 (give them one batch size, or remove invariance.batch)"
)


def _setting(lc: LoadedCheck, first: RunResult, kind: VariantKind, value: int | str) -> tuple[Check, str]:
    """The variant's check (one run, one thing changed), and what run 1 was in the same words."""
    check = lc.check.model_copy(update={"runs": 1})
    if kind is VariantKind.THREADS:
        check = check.model_copy(update={"recipe": check.recipe.model_copy(update={"threads": value})})
        return check, str(environment.resolve_threads(lc.check.recipe))
    if kind is VariantKind.DEVICE:
        return check.model_copy(update={"device": value}), first.device or lc.check.device
    if kind.graded:
        return check, "eager"
    return check, str(first.samples) if first.samples is not None else "?"


def _distances(
    first: RunResult,
    run: RunResult,
    ref: RunResult,
    workdir: Path,
    batch: tuple[int, int] | None,
    source: isolated.CheckWorkers,
) -> tuple[Distance, ...]:
    """Per output, how far run 1 and the variant each are from the float64 reference (in a fork of the check's
    zygote, else a helper with the check's environment)."""
    request = DistancesRequest(
        reference=str(ref.outputs_path), expected=str(first.outputs_path), obtained=str(run.outputs_path), batch=batch
    )
    # A folder per variant: an answer file is never one left by another variant.
    folder = workdir / f"distances-{run.run_dir.parent.name}"
    return tuple(source.fork_answer(request, Distances, folder).items)
