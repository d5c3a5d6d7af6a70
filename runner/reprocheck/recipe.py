"""The seeding/determinism recipe.

Two halves, because some settings only work before the interpreter starts:
  * `worker_env`   - environment for a fresh worker process (hash seed, cuBLAS workspace, threads);
  * `apply`        - in-process settings, applied in the fixed order of `STEPS` before the
                     model or input is built.
The public helpers at the bottom (`seed_everything`, `make_generator`, `seed_worker`) give
users the same recipe in their own code. torch is imported lazily so the CLI can build
environments without importing it.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .spec import DEFAULT_SEED, RecipeSpec

# How torch.use_deterministic_algorithms(True) says an op has no deterministic kernel here.
DETERMINISM_ERROR = "does not have a deterministic implementation"

CUBLAS_WORKSPACE_CONFIG = ":4096:8"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_threads(recipe: RecipeSpec) -> int:
    """The intra-op thread count every run of a check uses (fixed once, in the parent)."""
    return recipe.threads or available_cpus()


def worker_env(seed: int, recipe: RecipeSpec, threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a worker must start with. Setting these later, inside the
    worker, does nothing: the hash seed is read once at interpreter start-up and
    cuBLAS reads its workspace config when the handle is created."""
    env = dict(os.environ if base is None else base)
    # "random" rather than unset: an inherited PYTHONHASHSEED would otherwise sneak back in.
    env["PYTHONHASHSEED"] = str(seed) if recipe.hash_seed else "random"
    if recipe.cublas_workspace:
        env["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
    else:
        env.pop("CUBLAS_WORKSPACE_CONFIG", None)
    for var in THREAD_ENV_VARS:
        env[var] = str(threads)
    return env


# --- in-process steps, applied in this order ------------------------------------------------


@dataclass(frozen=True)
class Settings:
    seed: int
    recipe: RecipeSpec
    threads: int


def _threads(torch: Any, s: Settings) -> None:
    torch.set_num_threads(s.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already fixed in this process: only allowed once, before any parallel work


def _seed_rngs(torch: Any, s: Settings) -> None:
    if not s.recipe.seed_rngs:
        return
    random.seed(s.seed)
    try:
        import numpy

        numpy.random.seed(s.seed)
    except ImportError:
        pass
    torch.manual_seed(s.seed)  # seeds every device's generator
    torch.cuda.manual_seed_all(s.seed)  # lazy: no CUDA initialisation here


def _cudnn(torch: Any, s: Settings) -> None:
    torch.backends.cudnn.deterministic = s.recipe.cudnn_deterministic
    torch.backends.cudnn.benchmark = s.recipe.cudnn_benchmark


def _deterministic_algorithms(torch: Any, s: Settings) -> None:
    mode = s.recipe.deterministic_algorithms
    torch.use_deterministic_algorithms(bool(mode), warn_only=(mode == "warn"))


def _tf32(torch: Any, s: Settings) -> None:
    allow = s.recipe.tf32
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    torch.set_float32_matmul_precision("high" if allow else "highest")


STEPS: tuple[tuple[str, Callable[[Any, Settings], None]], ...] = (
    ("threads", _threads),
    ("seed_rngs", _seed_rngs),
    ("cudnn", _cudnn),
    ("deterministic_algorithms", _deterministic_algorithms),
    ("tf32", _tf32),
)


def apply(seed: int, recipe: RecipeSpec, threads: int) -> None:
    """Apply the in-process half of the recipe, in the order of STEPS."""
    import torch

    settings = Settings(seed, recipe, threads)
    with warnings.catch_warnings():
        # Newer torch deprecates the TF32 flags in favour of fp32_precision; both still work.
        warnings.simplefilter("ignore", UserWarning)
        for name, step in STEPS:
            try:
                step(torch, settings)
            except Exception as exc:  # the report says which part of the recipe failed
                raise RuntimeError(f"recipe step {name!r} failed: {exc}") from exc


def describe(seed: int, recipe: RecipeSpec, threads: int) -> dict[str, Any]:
    """The recipe as it was applied, for reports and fingerprints."""
    return {
        "seed": seed,
        "PYTHONHASHSEED": str(seed) if recipe.hash_seed else "random",
        "CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE_CONFIG if recipe.cublas_workspace else None,
        "threads": threads,
        **recipe.model_dump(exclude={"threads"}),
    }


# --- the public API ---------------------------------------------------------------------------


def seed_everything(
    seed: int = DEFAULT_SEED,
    *,
    deterministic: bool = True,
    warn_only: bool = False,
    threads: int | None = None,
    tf32: bool = False,
) -> int:
    """Seed Python, NumPy and torch (all devices) and make torch deterministic.

    The hash seed cannot be changed from inside a running interpreter: if
    PYTHONHASHSEED is not already `seed`, this warns. Start the process with it
    set (see `worker_env`), or accept that set/dict-of-str order may vary.
    Returns the seed.
    """
    recipe = RecipeSpec(
        deterministic_algorithms=("warn" if warn_only else True) if deterministic else False,
        cudnn_deterministic=deterministic,
        cudnn_benchmark=not deterministic,
        tf32=tf32,
        threads=threads,
    )
    if os.environ.get("PYTHONHASHSEED") != str(seed):
        warnings.warn(
            f"PYTHONHASHSEED is {os.environ.get('PYTHONHASHSEED', 'unset')!r}, not {seed}: str hashes (set order) "
            f"are fixed at interpreter start-up; launch the process with PYTHONHASHSEED={seed} to pin them",
            RuntimeWarning,
            stacklevel=2,
        )
    if deterministic and "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        # Read when cuBLAS creates its handle, so still effective if CUDA has not been used yet.
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
    apply(seed, recipe, resolve_threads(recipe))
    return seed


def make_generator(seed: int = DEFAULT_SEED, device: str = "cpu") -> Any:
    """A torch.Generator seeded with `seed`, e.g. for DataLoader(generator=...)."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def seed_worker(worker_id: int) -> None:
    """DataLoader(worker_init_fn=seed_worker): seeds random and NumPy in each worker
    from torch's per-worker seed (which the DataLoader derives from its generator)."""
    import torch

    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    try:
        import numpy

        numpy.random.seed(worker_seed)
    except ImportError:
        pass
