"""A golden's verdict, plain data both sides read: its status, the drift found, the fingerprint diff; and the
job that tells the torch side what to check or write (made by goldens.golden_job)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .results import Comparison, comparison_from_dict, comparison_to_dict

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


@dataclass(frozen=True)
class GoldenJob:
    """What the torch side needs to check or write one check's golden: plain data, made by `golden_job`."""

    golden: str
    check: str
    config_hash: str
    tolerance: dict[str, Any]  # a ToleranceSpec dump: the check's `baseline:` tolerance, else its `tolerance:`
    regenerate: str  # the command that writes the golden
    update: bool
    compare: dict[str, Any] | None = None  # the check's `compare:` (a CompareSpec dump): task-aware drift


def result_to_dict(b: BaselineResult) -> dict[str, Any]:
    return {
        "status": b.status.value,
        "golden": str(b.golden),
        "obtained": str(b.obtained) if b.obtained else None,
        "comparison": comparison_to_dict(b.comparison) if b.comparison is not None else None,
        "fingerprint_diff": [[d.field, d.expected, d.obtained] for d in b.fingerprint_diff],
        "config_changed": b.config_changed,
        "golden_created": b.golden_created,
        "message": b.message,
    }


def result_from_dict(d: dict[str, Any]) -> BaselineResult:
    return BaselineResult(
        status=BaselineStatus(d["status"]),
        golden=Path(d["golden"]),
        obtained=Path(d["obtained"]) if d["obtained"] else None,
        comparison=comparison_from_dict(d["comparison"]) if d["comparison"] is not None else None,
        fingerprint_diff=tuple(FieldDiff(*f) for f in d["fingerprint_diff"]),
        config_changed=d["config_changed"],
        golden_created=d["golden_created"],
        message=d["message"],
    )
