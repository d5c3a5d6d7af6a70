"""One run of one check, in this process: the recipe applied, the model and input built, the forward pass, the
outputs saved (RUN_DIR/outputs.pt) and how it went (RUN_DIR/result.json). The worker (zygote.py, __main__.py)
calls it in a fresh interpreter or in a fresh fork of its zygote."""

from __future__ import annotations

import contextlib
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from ..protocol import RunJob, RunReport

DETERMINISM_HINT = (
    "this op has no deterministic implementation on this device; set `recipe: {deterministic_algorithms: warn}` "
    "to run it anyway and let the comparison decide"
)


class DeviceUnavailable(RuntimeError):
    """The device asked for is not on this machine (an invariance variant is then skipped, not failed)."""


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            from . import cuda_preflight

            # each missing part named with its fix, before the model is built (reprocheck env --cuda says the same)
            found = cuda_preflight.problems(cuda_preflight.gather(), device)
            raise DeviceUnavailable(
                f"device {device} is not available on this machine: " + "; ".join(found or ["CUDA is not usable"])
            )
    return device


def run_once(job: RunJob, run_dir: Path) -> int:
    """Build, run, save. Returns the process exit code (0 ok, 1 the run raised)."""
    from ..tree import all_paths
    from . import deployed, fingerprint, inputs, models, outputs, recipe

    timings: dict[str, float] = {}
    stage = "recipe"
    caught: list[str] = []
    try:
        check = job.check
        recipe.apply(check.seed, check.recipe, job.threads)
        device = _resolve_device(check.device)

        stage = "model"
        t = time.perf_counter()
        built = models.build(check.model, Path(job.base_dir), device, check.recipe.eval_mode)
        timings["build_model"] = time.perf_counter() - t

        stage = "input"
        t = time.perf_counter()
        input_seed = check.seed if job.input_seed is None else job.input_seed
        args, kwargs = inputs.build(check.input, input_seed, device, built)
        args, kwargs = _in_precision(job, built.module, args, kwargs)
        if job.batch:  # an invariance variant: the same input at another batch size
            from .batching import rebatch

            args, kwargs = rebatch(args, kwargs, job.batch, check.seed)
        timings["build_input"] = time.perf_counter() - t
        from .batching import samples

        n_samples = samples(args, kwargs)
        if check.input.kwargs:
            from .signature import check_module_keywords

            check_module_keywords(built.module, list(check.input.kwargs))

        tracer = None
        if job.trace is not None:
            from .probe import Tracer

            tracer = Tracer(built.module, job.trace, run_dir)

        module, compiled = built.module, None
        if job.compile is not None:
            stage = "compile"
            module, compiled = deployed.compiled(built.module, job.compile, check.recipe, run_dir)

        stage = "forward"
        with tracer.recording() if tracer is not None else contextlib.nullcontext():
            out = _forward(module, args, kwargs, check.recipe.inference_mode, device, caught, timings, job.autocast)
        if compiled is not None:
            stage = "compile"
            deployed.after_forward(compiled, timings["forward"])  # raises when nothing was compiled

        stage = "outputs"
        flat, ignored, unmatched = outputs.prune(outputs.flatten(out), check.ignore)
        outputs.save(flat, run_dir / "outputs.pt")
        if tracer is not None:
            tracer.save()
        RunReport(
            ok=True,
            device=device,
            timings=timings,
            warnings=caught,
            notes=list(built.notes),
            samples=n_samples,
            facts=models.decision_facts(built.module),
            ignored=list(ignored),
            ignore_unmatched=list(unmatched),
            every_path=all_paths(flat.tree)[:20] if unmatched else [],
            constants=outputs.constants(flat),
            fingerprint=fingerprint.collect(),
            compiled=compiled,
        ).write(run_dir / "result.json")
        return 0
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        _failed(exc, stage, timings, run_dir, job)
        return 1


def _in_precision(job: RunJob, module: Any, args: Any, kwargs: Any) -> tuple[Any, Any]:
    """The float64 reference, or a dtype variant: the model (in place) and the floating inputs in that dtype."""
    precision = "float64" if job.float64 else job.dtype
    if precision is None:
        return args, kwargs
    import torch

    from .deployed import cast

    dtype = getattr(torch, precision)
    module.to(dtype)
    return cast(args, dtype), cast(kwargs, dtype)


def _forward(
    module: Any,
    args: Any,
    kwargs: Any,
    inference: bool,
    device: str,
    caught: list[str],
    timings: dict[str, float],
    autocast: str | None = None,
) -> Any:
    """The forward pass (under autocast for an autocast variant), timed, its warnings kept (the first 20
    distinct ones)."""
    import torch

    from .deployed import autocast as autocast_to

    mode = torch.inference_mode() if inference else contextlib.nullcontext()
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as seen, mode, autocast_to(device, autocast):
        warnings.simplefilter("always")
        out = module(*args, **kwargs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    timings["forward"] = time.perf_counter() - t
    for w in seen:
        text = f"{w.category.__name__}: {str(w.message).splitlines()[0] if str(w.message) else ''}"
        if text not in caught and len(caught) < 20:
            caught.append(text)
    return out


def _failed(exc: BaseException, stage: str, timings: dict[str, float], run_dir: Path, job: RunJob) -> None:
    """The run's report when it raised (or exited): the stage, one line, and the model's traceback where it helps."""
    from ..environment import DETERMINISM_ERROR
    from . import deployed, models
    from .outputs import UnsupportedOutput

    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    # Our own refusal of an output says all there is to say; a model's exception needs its traceback.
    from .signature import KeywordInputMismatch

    ours = isinstance(
        exc,
        (
            UnsupportedOutput,
            DeviceUnavailable,
            models.Unpicklable,
            models.WeightsNotCached,
            KeywordInputMismatch,
            deployed.NothingCompiled,
        ),
    )
    tail = [] if ours else "".join(lines).rstrip().splitlines()[-12:]
    message = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, (DeviceUnavailable, deployed.NothingCompiled)):
        message = str(exc)
    if isinstance(exc, SystemExit):
        message = f"the model called sys.exit({exc.code!r})"
    hint = DETERMINISM_HINT if DETERMINISM_ERROR in str(exc) else None
    if job.compile is not None and stage in ("compile", "forward") and deployed.is_compile_error(exc):
        # the compiler's own failure: its cause and the fix, not the compiler's traceback
        stage, message, hint, tail = "compile", *deployed.failure(exc, job.compile), []
    RunReport(
        ok=False,
        stage=stage,
        error=message,
        traceback=tail,
        hint=hint,
        timings=timings,
        unavailable=isinstance(exc, DeviceUnavailable),
    ).write(run_dir / "result.json")
