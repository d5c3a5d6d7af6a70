"""What a check's result says beside its verdict, found from plain data in this process: the compared outputs that
are constant (a change there cannot be seen), and the parts of the recipe the check's own `recipe:` turned off."""

from __future__ import annotations

from typing import Any

from ..results import Comparison


def blind_outputs(comparison: Comparison | None, constants: dict[str, str]) -> tuple[tuple[str, ...], bool]:
    """Compared outputs that are constant in every run (the runs agreed, so run 1 speaks for all): a change there
    cannot be seen. And whether that is every compared output."""
    if comparison is None or not comparison or not constants:
        return (), False
    paths = [o.path for o in comparison.outputs if o.task is None]
    lines = []
    for path in paths:
        if path in constants:
            value = constants[path]
            hint = "; is the head initialised to zero?" if value == "0" else ""
            lines.append(f"{path} is constant {value} in every run: this check cannot detect a change there{hint}")
    return tuple(lines), bool(paths) and len(lines) == len(paths)


# What each part of the recipe, turned off, lets vary between runs: said first when the runs differ.
RECIPE_OFF = {
    "seed_rngs": (False, "random init, dropout and any RNG in forward differ per run"),
    "hash_seed": (False, "set and dict iteration order over str keys differs per run"),
    "deterministic_algorithms": (False, "nondeterministic kernels (scatter_add, index_add, atomics) are allowed"),
    "cudnn_deterministic": (False, "cuDNN may pick nondeterministic convolution algorithms"),
    "cudnn_benchmark": (True, "cuDNN benchmarks and picks its algorithms per run"),
    "tf32": (True, "TF32 matmul/conv rounding is allowed"),
    "eval_mode": (False, "the model stays in training mode (dropout, batch-norm statistics)"),
}


def recipe_parts_off(spec: Any) -> list[str]:
    """A line per part of the full recipe that the check's own `recipe:` turned off."""
    lines = []
    for key, (off, why) in RECIPE_OFF.items():
        if getattr(spec, key) == off:
            lines.append(f"your recipe turns off {key} ({key}: {str(off).lower()}): {why}")
    return lines
