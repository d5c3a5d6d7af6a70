"""The in-process half of the seeding/determinism recipe (the environment half is environment.py).

  * `apply` - in-process settings, applied in the fixed order of `STEPS` before the model or input is built.
The public helpers at the bottom (`seed_everything`, `make_generator`, `seed_worker`) give users the same recipe
in their own code.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..environment import CUBLAS_WORKSPACE_CONFIG, resolve_threads
from ..spec import DEFAULT_SEED, RecipeSpec

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
