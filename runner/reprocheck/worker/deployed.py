"""The model as it is deployed, for the invariance variants: torch.compile, another dtype, autocast.

A compiled run keeps its compile caches (inductor's, Triton's) in its own run folder, so no run reuses another's
kernels; the run is a fresh process (a fork of a zygote that never compiled, or a new interpreter), so nothing
compiled lives in memory either. The recipe's determinism carries over to inductor where torch has the setting:
`deterministic` with `deterministic_algorithms` (no autotuning by timing, no atomics whose order varies),
`fallback_random` with `seed_rngs` (random ops as eager computes them)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from ..spec import CompileSpec, RecipeSpec

CACHE_ENV = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
COMPILE_FIX = (
    "install a C++ compiler (g++) for inductor on the CPU, or compile with another backend "
    "(`invariance: {compile: {backend: aot_eager}}` needs no compiler)"
)


class CompileFailed(RuntimeError):
    """torch.compile could not compile the model (a backend error, no C++ compiler)."""


class BackendUnavailable(CompileFailed):
    """torch.compile refused the backend itself (not registered here, or its package missing)."""


def cast(value: Any, dtype: Any) -> Any:
    """Floating tensors (in lists, tuples, dicts) as `dtype`; everything else as it is."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(cast(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: cast(v, dtype) for k, v in value.items()}
    return value


def autocast(device: str, dtype: str | None) -> Any:
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.partition(":")[0], dtype=getattr(torch, dtype))


def compiled(module: Any, spec: CompileSpec, recipe: RecipeSpec, run_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The module under torch.compile, with the run's own caches and the recipe's inductor settings; and what
    was set, for the report."""
    import torch

    cache = run_dir / "compile-cache"
    for var in CACHE_ENV:  # read when a cache is first used, so a fork may still set them
        os.environ[var] = str(cache / var.split("_")[0].lower())
    # Inductor keeps more caches under the system's temporary folder (torchinductor_<user>: precompiled headers,
    # its newer on-disk caches), shared by every run and left behind: this run's temporary folder is its own.
    temp = cache / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = tempfile.tempdir = str(temp)
    settings: dict[str, Any] = {}
    if spec.backend == "inductor":
        from torch._inductor import config

        config.compile_threads = 1  # no pool of compile processes: fewer children, one order of work
        settings["compile_threads"] = 1
        for name, on in (
            ("deterministic", recipe.deterministic_algorithms is not False),
            ("fallback_random", recipe.seed_rngs),
        ):
            if hasattr(config, name):  # not every torch has both
                setattr(config, name, on)
                settings[name] = on
    from torch._dynamo.utils import counters

    counters.clear()
    try:
        fn = torch.compile(
            module, backend=spec.backend, mode=None if spec.mode == "default" else spec.mode,
            dynamic=spec.dynamic, fullgraph=spec.fullgraph,
        )  # fmt: skip
    except Exception as exc:  # an unknown backend is refused here, before any call
        raise BackendUnavailable(f"torch.compile(backend={spec.backend!r}) failed: {_first_line(exc)}") from None
    info = {
        "backend": spec.backend,
        "mode": spec.mode,
        "dynamic": spec.dynamic,
        "fullgraph": spec.fullgraph,
        "settings": settings,
    }
    return fn, info


def after_forward(info: dict[str, Any], seconds: float) -> None:
    """The compile's counts once the first call (which compiles) has run."""
    from torch._dynamo.utils import counters

    info["seconds"] = seconds
    info["graph_breaks"] = int(sum(counters["graph_break"].values()))
    info["graphs"] = int(counters["stats"].get("unique_graphs", 0))
    check_compiled(info)


class NothingCompiled(RuntimeError):
    """The compiled forward ran no compiled graph: the compile variant would compare eager with eager."""


def check_compiled(info: dict[str, Any]) -> None:
    if info.get("graphs", 0) == 0:
        raise NothingCompiled(
            "the compiled model ran no compiled graph (a forward under torch.compiler.disable, or nothing dynamo can "
            "trace), so the compile variant would compare eager with eager; remove the disable or the compile variant"
        )


def is_compile_error(exc: BaseException) -> bool:
    """An exception of the compiler's own (dynamo, inductor, a backend), not one the model raised."""
    if isinstance(exc, CompileFailed):
        return True
    try:
        from torch._dynamo.exc import BackendCompilerFailed, TorchDynamoException
    except ImportError:
        return False
    if isinstance(exc, (BackendCompilerFailed, TorchDynamoException)):
        return True
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))


def failure(exc: BaseException, spec: CompileSpec) -> tuple[str, str]:
    """A compile error (is_compile_error) in one line, and its fix."""
    text = _first_line(exc)
    message = text if isinstance(exc, CompileFailed) else f"torch.compile(backend={spec.backend!r}) failed: {text}"
    if isinstance(exc, BackendUnavailable):
        try:
            from torch._dynamo import list_backends

            here = ", ".join(list_backends())
        except Exception:
            here = "inductor"
        return (
            message,
            f"use a backend this torch has ({here}, or aot_eager and eager), or install the backend's package",
        )
    if spec.fullgraph and "Unsupported" in type(exc).__name__:
        return message, "fullgraph: true makes a graph break an error: remove it to count graph breaks instead"
    return message, COMPILE_FIX


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]
