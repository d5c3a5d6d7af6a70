"""`reprocheck diagnose`: why a check is (or would be) irreproducible.

Three probes, each from isolated runs, each a result object for the reports:
  * first divergence: two traced runs (forward hooks on every module); the first module, in the
    order modules finish, whose output differs, with its stats;
  * seed sensitivity: a run with another seed; if the outputs change they depend on RNG, and the
    usual causes found in the model are named (modules in training mode, parameters that change
    with the seed, i.e. random init rather than loaded weights);
  * recipe ablation: each part of the recipe varied in turn, in the fixed order of VARIATIONS
    (after reprotest's variations): which ones break reproducibility; plus the ops that warn
    under use_deterministic_algorithms(warn_only=True).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import compare, execute, outputs, recipe
from .spec import Check, LoadedCheck, RecipeSpec

DETERMINISM_MARK = recipe.DETERMINISM_ERROR


@dataclass(frozen=True)
class Divergence:
    call: int  # position in the order modules finished
    module: str  # dotted path; "" is the model itself
    type: str
    result: compare.OutputResult | None  # the worst differing leaf of that module's output
    detail: str = ""


@dataclass(frozen=True)
class SeedSensitivity:
    sensitive: bool
    other_seed: int
    comparison: compare.Comparison | None
    training_modules: tuple[tuple[str, str], ...]  # (path, type) in training mode during forward
    random_parameters: tuple[str, ...]  # change with the seed: randomly initialised, not loaded
    parameters_total: int
    causes: tuple[str, ...]


class Effect(str, enum.Enum):
    """What varying one knob did. Ablation (the check is reproducible): turn it off, does it break?
    Repair (it is not): turn it back on, does that fix it?"""

    BREAKS = "breaks"  # ablation: off, the runs differ
    NO_EFFECT = "no-effect"  # ablation: off, still reproducible
    FIXES = "fixes"  # repair: on, the runs agree
    STILL_DIFFERS = "still-differs"  # repair: on, they still differ

    @property
    def differs(self) -> bool:
        return self in (Effect.BREAKS, Effect.STILL_DIFFERS)


@dataclass(frozen=True)
class Ablation:
    knob: str
    description: str
    effect: Effect
    comparison: compare.Comparison | None = None
    error: str | None = None


@dataclass(frozen=True)
class Diagnosis:
    name: str
    file: Path
    line: int
    reproducible: bool | None  # under the check's own recipe; None: the runs failed
    comparison: compare.Comparison | None
    divergence: Divergence | None
    seed: SeedSensitivity | None
    ablations: tuple[Ablation, ...]
    nondeterministic_ops: tuple[str, ...]
    error: str | None = None  # the runs under the check's own recipe failed

    @property
    def exit_code(self) -> int:
        if self.error:
            return 3
        return 0 if self.reproducible else 1


# --- running --------------------------------------------------------------------------------------


class _Runner:
    def __init__(self, lc: LoadedCheck, root: Path, isolation: execute.Isolation) -> None:
        self.lc, self.root, self.isolation, self.count = lc, root, isolation, 0

    def run(
        self,
        runs: int,
        *,
        trace: bool = False,
        env: dict[str, str] | None = None,
        input_seed: int | None = None,
        **changes: Any,
    ) -> list[execute.RunResult]:
        self.count += 1
        # model_copy skips validation: a single run is fine here, unlike in a spec.
        check: Check = self.lc.check.model_copy(update={"runs": runs, **changes})
        variant = dataclasses.replace(self.lc, check=check)
        return execute.Prepared(
            variant, self.root / f"p{self.count:02d}", self.isolation, trace=trace, env=env, input_seed=input_seed
        ).run()


def _outputs(runs: list[execute.RunResult]) -> list[outputs.Outputs]:
    return [outputs.load(r.outputs_path) for r in runs if r.ok]


def _trace(run: execute.RunResult) -> dict[str, Any]:
    import torch

    return torch.load(run.run_dir / "trace.pt", map_location="cpu", weights_only=True)


def first_divergence(a: dict[str, Any], b: dict[str, Any], tolerance: Any) -> Divergence | None:
    """The first module (in finishing order) whose output differs between two traces."""
    for i, (ca, cb) in enumerate(zip(a["calls"], b["calls"], strict=False)):
        if ca != cb:
            return Divergence(
                call=i,
                module=ca[0],
                type=ca[1],
                result=None,
                detail=f"the runs call different modules here: {ca[0] or '(model)'} vs {cb[0] or '(model)'}",
            )
        prefix = f"{i}|"
        keys_a = [k for k in a["tensors"] if k.startswith(prefix)]
        worst = None
        for key in keys_a:
            ta, tb = a["tensors"][key], b["tensors"].get(key)
            if tb is None:
                return Divergence(
                    call=i, module=ca[0], type=ca[1], result=None, detail="an output leaf is missing in run 2"
                )
            leaf = key[len(prefix) :]
            r = compare.compare_tensors(leaf, ta, tb, compare.tolerance_for(leaf, tolerance))
            if not r and (worst is None or r.severity() > worst.severity()):
                worst = r
        if worst is not None:
            return Divergence(call=i, module=ca[0], type=ca[1], result=worst)
    if len(a["calls"]) != len(b["calls"]):
        n = min(len(a["calls"]), len(b["calls"]))
        return Divergence(
            call=n,
            module="",
            type="",
            result=None,
            detail=f"run 1 made {len(a['calls'])} module calls, run 2 made {len(b['calls'])}",
        )
    return None


# Each variation: (knob, what it does, how to run the pair). Applied in this order.
def _vary_hash_seed(r: _Runner, base: list[outputs.Outputs]) -> tuple[list[outputs.Outputs], list[execute.RunResult]]:
    runs = r.run(1, env={"PYTHONHASHSEED": str((r.lc.check.seed + 1) % 2**32)})
    return base[:1] + _outputs(runs), runs


def _both(
    **changes: Any,
) -> Callable[[_Runner, list[outputs.Outputs]], tuple[list[outputs.Outputs], list[execute.RunResult]]]:
    def vary(r: _Runner, base: list[outputs.Outputs]) -> tuple[list[outputs.Outputs], list[execute.RunResult]]:
        runs = r.run(2, recipe=r.lc.check.recipe.model_copy(update=changes))
        return _outputs(runs), runs

    return vary


def _second(
    **changes: Any,
) -> Callable[[_Runner, list[outputs.Outputs]], tuple[list[outputs.Outputs], list[execute.RunResult]]]:
    def vary(r: _Runner, base: list[outputs.Outputs]) -> tuple[list[outputs.Outputs], list[execute.RunResult]]:
        runs = r.run(1, recipe=r.lc.check.recipe.model_copy(update=changes))
        return base[:1] + _outputs(runs), runs

    return vary


def _other_threads(r: _Runner, base: list[outputs.Outputs]) -> tuple[list[outputs.Outputs], list[execute.RunResult]]:
    n = recipe.resolve_threads(r.lc.check.recipe)
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


def _causes(seed: SeedSensitivity | None, lc: LoadedCheck) -> tuple[str, ...]:
    causes = []
    if seed is None:
        return ()
    for path, kind in seed.training_modules:
        causes.append(f"module {path or '(model)'} ({kind}) ran in training mode")
    if seed.random_parameters:
        n, total = len(seed.random_parameters), seed.parameters_total
        head = ", ".join(seed.random_parameters[:5]) + (", ..." if n > 5 else "")
        causes.append(
            f"{n} of {total} parameters/buffers change with the seed, so they are randomly initialised, "
            f"not loaded ({head})"
        )
        if lc.check.model.torchvision and lc.check.model.kwargs.get("weights") is None:
            causes.append(
                "the torchvision model was built with weights: null (random init); load real weights "
                "(weights: DEFAULT with a pre-filled TORCH_HOME) for outputs that mean something"
            )
    if seed.sensitive and not causes:
        causes.append("random draws in forward (e.g. dropout called with training=True, torch.rand, random noise)")
    return tuple(causes)


def diagnose(
    lc: LoadedCheck,
    isolation: execute.Isolation = execute.Isolation.AUTO,
    progress: Callable[[str], None] | None = None,
) -> Diagnosis:
    say = progress or (lambda text: None)
    root = Path(tempfile.mkdtemp(prefix="reprocheck-diagnose-"))
    try:
        return _diagnose(lc, _Runner(lc, root, isolation), say)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _diagnose(lc: LoadedCheck, r: _Runner, say: Callable[[str], None]) -> Diagnosis:
    tol = lc.check.tolerance
    say("two traced runs with the check's own recipe")
    traced = r.run(2, trace=True)
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
            error=f"run {failed.index if failed else 2} {cause}",
        )
    base = _outputs(traced)
    comparison = compare.compare_runs(base, tol)
    trace_a, trace_b = _trace(traced[0]), _trace(traced[1])
    divergence = None if comparison else first_divergence(trace_a, trace_b, tol)

    other = (lc.check.seed + 1) % 2**32
    say(f"a run with seed {other}")
    # Only the RNG seed changes: the hash seed and a random input stay, or they would change the outputs too.
    keep_hash = {"PYTHONHASHSEED": str(lc.check.seed)} if lc.check.recipe.hash_seed else None
    seeded = r.run(1, trace=True, seed=other, env=keep_hash, input_seed=lc.check.seed)
    seed = None
    if seeded and seeded[0].ok:
        trace_s = _trace(seeded[0])
        changed = compare.compare_runs(base[:1] + _outputs(seeded), tol)
        params = tuple(k for k, v in trace_a["params"].items() if trace_s["params"].get(k) != v)
        seed = SeedSensitivity(
            sensitive=not changed,
            other_seed=other,
            comparison=changed,
            training_modules=tuple(sorted(trace_a["training"].items())),
            random_parameters=params,
            parameters_total=len(trace_a["params"]),
            causes=(),
        )
        seed = dataclasses.replace(seed, causes=_causes(seed, lc))

    ablations = _ablations(r, base, say) if comparison else _repairs(r, say)
    return _finish(lc, r, say, comparison, divergence, seed, ablations, ops)


def _ablations(r: _Runner, base: list[outputs.Outputs], say: Callable[[str], None]) -> list[Ablation]:
    """Reproducible under the recipe: vary one part at a time and see which ones break it."""
    tol = r.lc.check.tolerance
    ablations = []
    for knob, description, vary in VARIATIONS:
        say(f"ablation: {description}")
        pair, runs = vary(r, base)
        bad = next((x for x in runs if not x.ok), None)
        if bad is not None:
            ablations.append(Ablation(knob, description, Effect.BREAKS, error=f"run {bad.index} {bad.cause}"))
            continue
        c = compare.compare_runs(pair, tol)
        ablations.append(Ablation(knob, description, Effect.NO_EFFECT if c else Effect.BREAKS, comparison=c))
    return ablations


def _repairs(r: _Runner, say: Callable[[str], None]) -> list[Ablation]:
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
        if getattr(mine, knob) == getattr(full, knob):
            continue
        description = f"{knob} set back to {getattr(full, knob)!r} (the full recipe)"
        say(f"repair: {description}")
        runs = r.run(2, recipe=mine.model_copy(update={knob: getattr(full, knob)}))
        bad = next((x for x in runs if not x.ok), None)
        if bad is not None:
            out.append(Ablation(knob, description, Effect.STILL_DIFFERS, error=f"run {bad.index} {bad.cause}"))
            continue
        c = compare.compare_runs(_outputs(runs), r.lc.check.tolerance)
        out.append(Ablation(knob, description, Effect.FIXES if c else Effect.STILL_DIFFERS, comparison=c))
    return out


def _finish(
    lc: LoadedCheck,
    r: _Runner,
    say: Callable[[str], None],
    comparison: compare.Comparison,
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
    )


# --- the probe: runs inside the worker when a run is traced ---------------------------------------


class Tracer:
    """For `diagnose`: every module's output in the order the modules finish (forward hooks),
    which modules ran in training mode, and a digest of every parameter and buffer (to tell
    loaded weights from random ones by comparing two seeds)."""

    def __init__(self, model: Any) -> None:
        import torch

        self.calls: list[list[str]] = []
        self.tensors: dict[str, Any] = {}
        self.training: dict[str, str] = {}
        self.params: dict[str, str] = {}
        if isinstance(model, torch.nn.Module):
            for name, t in [*model.named_parameters(), *model.named_buffers()]:
                data = t.detach().cpu().contiguous().reshape(-1)
                self.params[name] = hashlib.sha256(data.view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
            for path, module in model.named_modules():
                try:
                    module.register_forward_hook(self._hook(path))
                except (RuntimeError, AttributeError):
                    pass  # scripted modules may refuse hooks

    def _hook(self, path: str) -> Any:
        from .outputs import UnsupportedOutput, flatten

        def hook(module: Any, args: Any, output: Any) -> None:
            i = len(self.calls)
            self.calls.append([path, type(module).__name__])
            if getattr(module, "training", False):
                self.training[path] = type(module).__name__
            try:
                flat = flatten(output)
            except UnsupportedOutput:
                return
            for leaf, t in flat.tensors.items():
                self.tensors[f"{i}|{leaf}"] = t.clone()

        return hook

    def save(self, path: Path) -> None:
        import torch

        from .outputs import atomic_write

        payload = {"calls": self.calls, "tensors": self.tensors, "training": self.training, "params": self.params}
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
