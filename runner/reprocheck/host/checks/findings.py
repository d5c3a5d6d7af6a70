"""What a check's result says beside its verdict, found from plain data in this process: the compared outputs that
are constant (a change there cannot be seen), a check that compared nothing able to see the model, and the parts of
the recipe the check's own `recipe:` turned off."""

from __future__ import annotations

import fnmatch
from typing import Any

from ...results import Comparison, OutputResult
from ...tree import EMPTY, ROOT_NAME


def seeing(comparison: Comparison) -> list[OutputResult]:
    """The compared outputs that can see the model: tensors (0-d ones too), task outputs included. A Python number
    is compared, but its match says nothing of the model's tensors (a constant left beside ignored outputs)."""
    return [o for o in comparison.outputs if not o.python]


def blind_outputs(comparison: Comparison | None, constants: dict[str, str]) -> tuple[tuple[str, ...], bool]:
    """The leaves of compared outputs (a task output's own tensors included) that are constant in every run: a
    change there cannot be seen. Said for each output that matched (the runs agree there, so run 1 speaks for all),
    whether the check passed or not. And whether that is every compared leaf of a passing check."""
    if comparison is None:
        return (), False
    lines, leaves = [], 0
    for o in seeing(comparison):
        for leaf in o.leaves:
            leaves += 1
            if o and leaf in constants:
                lines.append(_blind_line(leaf, constants[leaf]))
    return tuple(lines), bool(comparison) and leaves > 0 and len(lines) == leaves


def _blind_line(leaf: str, value: str) -> str:
    if value == EMPTY:
        return f"{leaf} is empty in every run: this check cannot detect a change there"
    hint = "; is the head initialised to zero?" if value == "0" else ""
    return f"{leaf} is constant {value} in every run: this check cannot detect a change there{hint}"


def nothing_compared(
    comparison: Comparison | None, ignored: tuple[str, ...], patterns: list[str], root_ignored: bool
) -> tuple[str, bool] | None:
    """Why a passing check compared nothing that can see the model (never a pass), and whether `ignore:` is the
    cause (the error's line); None when it compared something."""
    if comparison is None or not comparison or seeing(comparison):
        return None
    python = [o.path for o in comparison.outputs if o.python]
    if root_ignored:
        pattern = next((p for p in patterns if fnmatch.fnmatchcase(ROOT_NAME, p)), patterns[0] if patterns else "?")
        return (
            f"ignore pattern {pattern!r} matches {ROOT_NAME}, the root: the whole output is left out, so nothing is "
            "left to compare (name the parts to leave out instead)"
        ), True
    only = f"only Python values ({_shown(python)}), which say nothing of the model's tensors" if python else ""
    if ignored:
        rest = f"what is left holds {only}" if python else "nothing else holds a tensor"
        return f"nothing left to compare: ignore left out {_shown(list(ignored))} and {rest}; ignore less", True
    if python:
        return f"the model's output holds no tensor to compare, {only}; return tensors", False
    return "the model's output holds no tensor to compare (nothing was compared, so nothing can pass)", False


def _shown(paths: list[str]) -> str:
    return ", ".join(paths[:8]) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")


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
