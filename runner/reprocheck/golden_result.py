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
    WRITTEN = "written"  # --missing-baseline write: this machine's key had none; written, not yet committed
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
    key: str = ""  # this machine's key (cpu, cuda, cuda-sm90; "" keyless: `key: none`)
    golden_key: str | None = None  # the key of the golden compared ("" keyless); None: none was compared
    written: Path | None = None  # this machine's golden, written by --missing-baseline write

    def __bool__(self) -> bool:
        return self.status in (BaselineStatus.MATCH, BaselineStatus.UPDATED, BaselineStatus.WRITTEN)

    @property
    def fallback(self) -> bool:
        """Compared with a less specific golden than this machine's key (its device's, or the keyless one)."""
        return self.golden_key is not None and self.golden_key != self.key

    def which(self) -> str:
        """Which golden, in words: `the cuda golden (fallback: none for cuda-sm90)`."""
        if self.golden_key is None:
            return ""
        name = f"the {self.golden_key} golden" if self.golden_key else "the keyless golden"
        return f"{name} (fallback: none for {self.key} yet)" if self.fallback else name


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
