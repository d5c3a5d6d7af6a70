"""The half of the seeding/determinism recipe that must be set before the interpreter starts: the environment a
fresh worker process gets (hash seed, cuBLAS workspace, threads), and the recipe as applied, for reports. The
in-process half is worker/recipe.py."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from .spec import RecipeSpec

# How torch.use_deterministic_algorithms(True) says an op has no deterministic kernel here.
DETERMINISM_ERROR = "does not have a deterministic implementation"

CUBLAS_WORKSPACE_CONFIG = ":4096:8"

# What model code must not see. reprocheck's own variables (the worker reads REPROCHECK_PARENT_PID once at start, then
# drops it) and the runner's tokens; GitHub's file commands, where a model could set the step's outputs or the next
# steps' environment.
DROPPED_PREFIXES = ("REPROCHECK_", "ACTIONS_")
# The image's own facts, set by its Dockerfile, not a protocol detail: the CUDA preflight names what the image needs.
KEPT = ("REPROCHECK_FLAVOUR", "REPROCHECK_CUDA", "REPROCHECK_MIN_DRIVER")
DROPPED = ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE", "GITHUB_STEP_SUMMARY", "GITHUB_TOKEN")
# torch.load is weights-only in every worker, whatever a caller passes (torch.hub and torch.export pass False).
WEIGHTS_ONLY_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
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
    scrub_environment(env)
    # "random" rather than unset: an inherited PYTHONHASHSEED would otherwise sneak back in.
    env["PYTHONHASHSEED"] = str(seed) if recipe.hash_seed else "random"
    if recipe.cublas_workspace:
        env["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
    else:
        env.pop("CUBLAS_WORKSPACE_CONFIG", None)
    for var in THREAD_ENV_VARS:
        env[var] = str(threads)
    return env


def scrub_environment(env: MutableMapping[str, str]) -> None:
    """Remove what model code must not see from `env` (os.environ or a dict), in place; torch.load weights-only."""
    for key in list(env):
        if key in DROPPED or (key.startswith(DROPPED_PREFIXES) and key not in KEPT):
            del env[key]
    env[WEIGHTS_ONLY_ENV] = "1"
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    # torch runs every installed `torch.backends` entry point on import: code before any run is sealed.
    env["TORCH_DEVICE_BACKEND_AUTOLOAD"] = "0"


def describe(seed: int, recipe: RecipeSpec, threads: int) -> dict[str, Any]:
    """The recipe as it was applied, for reports and fingerprints."""
    return {
        "seed": seed,
        "PYTHONHASHSEED": str(seed) if recipe.hash_seed else "random",
        "CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE_CONFIG if recipe.cublas_workspace else None,
        "threads": threads,
        **recipe.model_dump(exclude={"threads"}),
    }
