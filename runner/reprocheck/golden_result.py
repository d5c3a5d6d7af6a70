"""A golden's verdict, plain data both sides read: its status, the drift found, the fingerprint diff (the job that
tells the torch side what to check or write is protocol.GoldenJob)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .results import Comparison

# Fingerprint fields, most likely cause of numeric drift first.
CAUSE_ORDER = (
    "torch",
    "torchvision",
    "cuda_build",
    "cudnn",
    "driver",
    "gpus",
    "cpu",
    "threads",
    "interop_threads",
    "flags",
    "mkldnn",
    "numpy",
    "python",
    "env",
    "platform",
    "cpu_count",
    "hash_randomization",
)


class BaselineStatus(str, enum.Enum):
    MATCH = "match"
    DRIFT = "drift"
    MISSING = "missing"
    UPDATED = "updated"
    NOT_UPDATED = "not-updated"  # --update-baseline refused: the runs themselves differ or failed


@dataclass(frozen=True)
class FieldDiff:
    field: str
    expected: Any
    obtained: Any


@dataclass(frozen=True)
class BaselineResult:
    """How a check's outputs compare with its golden. Truthy when nothing drifted."""

    status: BaselineStatus
    golden: Path
    obtained: Path | None = None
    comparison: Comparison | None = None
    fingerprint_diff: tuple[FieldDiff, ...] = ()
    config_changed: bool = False
    golden_created: str | None = None
    message: str = ""

    def __bool__(self) -> bool:
        return self.status in (BaselineStatus.MATCH, BaselineStatus.UPDATED)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def fingerprint_diff(expected: dict[str, Any], obtained: dict[str, Any]) -> tuple[FieldDiff, ...]:
    """Fields that differ between two fingerprints, likeliest causes of drift first."""
    a, b = _flat(expected or {}), _flat(obtained or {})
    keys = [k for k in set(a) | set(b) if a.get(k) != b.get(k)]

    def rank(key: str) -> tuple[int, str]:
        top = key.split(".", 1)[0]
        return (CAUSE_ORDER.index(top) if top in CAUSE_ORDER else len(CAUSE_ORDER), key)

    return tuple(FieldDiff(k, a.get(k), b.get(k)) for k in sorted(keys, key=rank))
