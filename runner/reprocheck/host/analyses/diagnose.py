"""`reprocheck diagnose`: why a check is (or would be) irreproducible.

Three probes, each from isolated runs, each a result object for the reports:
  * first divergence: two traced runs, which keep only fingerprints (every module's output, every aten op's
    output: worker/probe.py), so memory and disk stay bounded; the first module, in the order modules finish,
    and the first op whose output differs (or where the two runs part); then a targeted re-run keeps the tensors
    of that module call and that op alone, for their numbers;
  * seed sensitivity: a run with another seed; if the outputs change they depend on RNG, and the
    usual causes found in the model are named (modules in training mode, parameters that change
    with the seed, i.e. random init rather than loaded weights);
  * recipe ablation: each part of the recipe varied in turn, in the fixed order of VARIATIONS
    (after reprotest's variations): which ones break reproducibility; plus the ops that warn
    under use_deterministic_algorithms(warn_only=True).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ... import environment
from ...diagnosis import Ablation, Diagnosis, Divergence, Effect, SeedSensitivity
from ...protocol import (
    TRACE_FILE,
    Capture,
    CompareAnswer,
    CompareRequest,
    TraceJob,
    TracesAnswer,
    TracesRequest,
    worker_check,
)
from ...results import Comparison, RuleError
from ...spec import Check, LoadedCheck, RecipeSpec
from ..checks.pictures import Traced
from ..workers import isolated
from ..workers.helper_client import Helpers, worker_environment
from ..workers.run_result import RunResult
from .causes import causes

DETERMINISM_MARK = environment.DETERMINISM_ERROR

# --- running --------------------------------------------------------------------------------------


class _Runner:
    """diagnose's runs (isolated, like a check's), and the torch side's answers about them (one helper process)."""

    pictures = Traced()  # --pictures: draws the traced runs (this default draws nothing)

    def __init__(
        self, lc: LoadedCheck, root: Path, isolation: isolated.Isolation, helpers: Helpers, max_trace_mb: int
    ) -> None:
        self.lc, self.root, self.isolation, self.count, self.helpers = lc, root, isolation, 0, helpers
        self.max_trace_mb = max_trace_mb

    def run(
        self,
        runs: int,
        *,
        trace: TraceJob | None = None,
        env: dict[str, str] | None = None,
        input_seed: int | None = None,
        **changes: Any,
    ) -> list[RunResult]:
        self.count += 1
        # model_copy skips validation: a single run is fine here, unlike in a spec.
        check: Check = self.lc.check.model_copy(update={"runs": runs, **changes})
        variant = dataclasses.replace(self.lc, check=check)
        return isolated.CheckWorkers(
            variant, self.root / f"p{self.count:02d}", self.isolation, trace=trace, env=env, input_seed=input_seed
        ).run()

    def compare(self, runs: list[Path]) -> Comparison:
        """The check's own comparison of these runs' outputs: its tolerance and its task rules (compare:)."""
        request = CompareRequest(check=worker_check(self.lc.check), runs=[str(p) for p in runs])
        answer = self.helpers.ask(request, CompareAnswer)
        if answer.rule_error is not None:
            e = answer.rule_error
            raise RuleError(e.pattern, e.message, e.unfit)
        assert answer.comparison is not None
        return answer.comparison

    def traces(self, runs: list[RunResult], diverge: bool = False, captured: bool = False) -> TracesAnswer:
        tolerance = self.lc.check.tolerance
        request = TracesRequest(
            runs=[str(r.run_dir) for r in runs], tolerance=tolerance, diverge=diverge, captured=captured
        )
        return self.helpers.ask(request, TracesAnswer)


def _outputs(runs: list[RunResult]) -> list[Path]:
    return [r.outputs_path for r in runs if r.ok]


# Recipe parts that act on CUDA alone (cuDNN, TF32, cuBLAS): varied only where the runs use a GPU.
CUDA_ONLY = frozenset({"cudnn_benchmark", "cudnn_deterministic", "tf32", "cublas_workspace"})


# Each variation: (knob, what it does, how to run the pair). Applied in this order.
def _vary_hash_seed(r: _Runner, base: list[Path]) -> tuple[list[Path], list[RunResult]]:
    runs = r.run(1, env={"PYTHONHASHSEED": str((r.lc.check.seed + 1) % 2**32)})
    return base[:1] + _outputs(runs), runs


def _both(
    **changes: Any,
) -> Callable[[_Runner, list[Path]], tuple[list[Path], list[RunResult]]]:
    def vary(r: _Runner, base: list[Path]) -> tuple[list[Path], list[RunResult]]:
        runs = r.run(2, recipe=r.lc.check.recipe.model_copy(update=changes))
        return _outputs(runs), runs

    return vary


def _second(
    **changes: Any,
) -> Callable[[_Runner, list[Path]], tuple[list[Path], list[RunResult]]]:
    def vary(r: _Runner, base: list[Path]) -> tuple[list[Path], list[RunResult]]:
        runs = r.run(1, recipe=r.lc.check.recipe.model_copy(update=changes))
        return base[:1] + _outputs(runs), runs

    return vary


def _other_threads(r: _Runner, base: list[Path]) -> tuple[list[Path], list[RunResult]]:
    n = environment.resolve_threads(r.lc.check.recipe)
    return _second(threads=1 if n > 1 else 2)(r, base)


VARIATIONS = (
    ("hash_seed", "a different PYTHONHASHSEED in the second run", _vary_hash_seed),
    ("seed_rngs", "random, NumPy and torch left unseeded in both runs", _both(seed_rngs=False)),
    ("deterministic_algorithms", "deterministic algorithms off in both runs", _both(deterministic_algorithms=False)),
    (
        "cudnn_benchmark",
        "cuDNN benchmark on and cuDNN determinism off in both runs",
        _both(cudnn_benchmark=True, cudnn_deterministic=False),
    ),
    ("tf32", "TF32 allowed in the second run", _second(tf32=True)),
    ("threads", "a different intra-op thread count in the second run", _other_threads),
)


def diagnose(
    lc: LoadedCheck,
    isolation: isolated.Isolation = isolated.Isolation.AUTO,
    progress: Callable[[str], None] | None = None,
    max_trace_mb: int = 256,
    pictures: Path | None = None,
) -> Diagnosis:
    say = progress or (lambda text: None)
    root = Path(tempfile.mkdtemp(prefix="reprocheck-diagnose-"))
    try:
        with Helpers(worker_environment(environment.worker_env(lc.check.seed, lc.check.recipe, 1))) as helpers:
            runner = _Runner(lc, root, isolation, helpers, max_trace_mb)
            runner.pictures = Traced(lc, pictures, helpers)
            found = _diagnose(lc, runner, say)
            for note in runner.pictures.notes:
                say(note)
            return dataclasses.replace(found, pictures=runner.pictures.pictures)
    except RuleError as exc:  # a compare rule that fits no output: the check cannot be judged
        line = lc.key_line("compare", "outputs", exc.pattern)
        return Diagnosis(
            lc.name, lc.file, lc.line, None, None, None, None, (), (), lc.check.seed, f"{lc.file}:{line}: {exc}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _diagnose(lc: LoadedCheck, r: _Runner, say: Callable[[str], None]) -> Diagnosis:
    say("two traced runs with the check's own recipe (a fingerprint of every module's and op's output)")
    traced = r.run(2, trace=TraceJob(max_mb=r.max_trace_mb), timeout=isolated.traced_timeout(lc.check))
    ops = []
    failed = next((x for x in traced if not x.ok), None)
    if failed is not None or len(traced) < 2:
        cause = failed.cause if failed else "the second run did not happen"
        if failed is not None and DETERMINISM_MARK in cause:
            ops.append(cause.split(": ", 1)[-1])
        return Diagnosis(
            lc.name,
            lc.file,
            lc.line,
            None,
            None,
            None,
            None,
            (),
            tuple(ops),
            lc.check.seed,
            f"run {failed.index if failed else 2} {cause}",
        )
    base = _outputs(traced)
    r.pictures.draw(traced)
    comparison = r.compare(base)
    found = r.traces(traced[:2], diverge=not comparison)
    for run in traced:  # their fingerprints are read: the disk they hold is free for the next runs
        (run.run_dir / TRACE_FILE).unlink(missing_ok=True)
    divergence = found.divergence if found.divergence is None else _pinpoint(r, found.divergence, say)
    params_a, training_a = found.params[0], found.training[0]

    other = (lc.check.seed + 1) % 2**32
    say(f"a run with seed {other}")
    # Only the RNG seed changes: the hash seed and a random input stay, or they would change the outputs too.
    keep_hash = {"PYTHONHASHSEED": str(lc.check.seed)} if lc.check.recipe.hash_seed else None
    seeded = r.run(1, trace=TraceJob(ops=False), seed=other, env=keep_hash, input_seed=lc.check.seed)
    seed = None
    if seeded and seeded[0].ok:
        params_s = r.traces(seeded[:1]).params[0]
        changed = r.compare(base[:1] + _outputs(seeded))
        params = tuple(k for k, v in params_a.items() if params_s.get(k) != v)
        seed = SeedSensitivity(
            sensitive=not changed,
            other_seed=other,
            comparison=changed,
            training_modules=tuple(sorted(training_a.items())),
            random_parameters=params,
            parameters_total=len(params_a),
            causes=(),
        )
        seed = dataclasses.replace(seed, causes=causes(seed, lc, runs_differ=not comparison))

    cuda = any((x.device or "").startswith("cuda") for x in traced)
    ablations = _ablations(r, base, say, cuda) if comparison else _repairs(r, say, cuda)
    skipped = () if cuda else (f"{', '.join(sorted(CUDA_ONLY))}: the runs are on the CPU, where they do nothing",)
    return dataclasses.replace(_finish(lc, r, say, comparison, divergence, seed, ablations, ops), skipped=skipped)


def _pinpoint(r: _Runner, d: Divergence, say: Callable[[str], None]) -> Divergence:
    """The targeted re-run: two more runs keep only the diverging module call's and op's tensors, which give the
    finding its numbers (the traces hold fingerprints only)."""
    op = d.op if d.op is not None and not d.op.parted else None
    if not d.found and op is None:
        return d
    what = [f"module {d.module or '(the model itself)'}, call {d.module_call}"] if d.found else []
    what += [f"op {op.position + 1} ({op.op})"] if op is not None else []
    say(f"a targeted re-run keeping the tensors of {' and '.join(what)} only")
    capture = Capture(module=d.module if d.found else None, module_call=d.module_call, op=op and op.position)
    runs = r.run(2, trace=TraceJob(capture=capture), timeout=isolated.traced_timeout(r.lc.check))
    bad = next((x for x in runs if not x.ok), None)
    if bad is not None or len(runs) < 2:
        note = f"the targeted re-run failed (run {bad.index} {bad.cause})" if bad else "the targeted re-run did not run"
        return dataclasses.replace(d, detail="; ".join(x for x in (d.detail, note) if x))
    answer = r.traces(runs, captured=True)
    notes = [d.detail, answer.capture_note]
    if d.found and answer.module_result is not None and answer.module_result:
        notes.append("in the targeted re-run this module's output agreed within the check's tolerance")
    return dataclasses.replace(
        d,
        result=answer.module_result if d.found else None,
        op=dataclasses.replace(op, result=answer.op_result) if op is not None else d.op,
        detail="; ".join(x for x in notes if x),
    )


def _ablations(r: _Runner, base: list[Path], say: Callable[[str], None], cuda: bool) -> list[Ablation]:
    """Reproducible under the recipe: vary one part at a time and see which ones break it."""
    ablations = []
    for knob, description, vary in VARIATIONS:
        if knob in CUDA_ONLY and not cuda:
            continue
        say(f"ablation: {description}")
        pair, runs = vary(r, base)
        bad = next((x for x in runs if not x.ok), None)
        if bad is not None:
            ablations.append(Ablation(knob, description, Effect.BREAKS, error=f"run {bad.index} {bad.cause}"))
            continue
        c = r.compare(pair)
        ablations.append(Ablation(knob, description, Effect.NO_EFFECT if c else Effect.BREAKS, comparison=c))
    return ablations


def _repairs(r: _Runner, say: Callable[[str], None], cuda: bool) -> list[Ablation]:
    """Not reproducible under the check's recipe: turn each part it has off back on, alone, and see
    which one fixes it."""
    full, mine = RecipeSpec(threads=r.lc.check.recipe.threads), r.lc.check.recipe
    out = []
    for knob in (
        "hash_seed",
        "seed_rngs",
        "deterministic_algorithms",
        "cudnn_deterministic",
        "cudnn_benchmark",
        "tf32",
        "eval_mode",
        "inference_mode",
        "cublas_workspace",
    ):
        if getattr(mine, knob) == getattr(full, knob) or (knob in CUDA_ONLY and not cuda):
            continue
        description = f"{knob} set back to {getattr(full, knob)!r} (the full recipe)"
        say(f"repair: {description}")
        runs = r.run(2, recipe=mine.model_copy(update={knob: getattr(full, knob)}))
        bad = next((x for x in runs if not x.ok), None)
        if bad is not None:
            out.append(Ablation(knob, description, Effect.STILL_DIFFERS, error=f"run {bad.index} {bad.cause}"))
            continue
        c = r.compare(_outputs(runs))
        out.append(Ablation(knob, description, Effect.FIXES if c else Effect.STILL_DIFFERS, comparison=c))
    return out


def _finish(
    lc: LoadedCheck,
    r: _Runner,
    say: Callable[[str], None],
    comparison: Comparison,
    divergence: Divergence | None,
    seed: SeedSensitivity | None,
    ablations: list[Ablation],
    ops: list[str],
) -> Diagnosis:
    say("one run with deterministic algorithms in warn-only mode")
    warned = r.run(1, recipe=lc.check.recipe.model_copy(update={"deterministic_algorithms": "warn"}))
    for run in warned:
        ops += [w for w in run.warnings if DETERMINISM_MARK in w]
        if not run.ok and DETERMINISM_MARK in run.cause:
            ops.append(run.cause)
    return Diagnosis(
        lc.name,
        lc.file,
        lc.line,
        bool(comparison),
        comparison,
        divergence,
        seed,
        tuple(ablations),
        tuple(dict.fromkeys(ops)),
        lc.check.seed,
    )
