"""Golden baselines: outputs stored per check, compared on later runs to catch drift.

Layout:  DIR/<spec file stem>/<check>.safetensors            the golden ("expected")
         DIR/<spec file stem>/<check>.obtained.safetensors   written beside it on a mismatch ("obtained")

Format: safetensors (no pickle; readable on any machine, CPU or not). The leaf tensors are stored under
their output paths; the metadata (strings) holds:
  "reprocheck.format"       "1"
  "reprocheck.tree"         the output structure (JSON, see outputs.py)
  "reprocheck.config_hash"  the hash of what the check computes (spec.Check.config_hash)
  "reprocheck.check"        the check's name
  "reprocheck.fingerprint"  the environment that produced it (JSON, see fingerprint.py)
  "reprocheck.created"      UTC timestamp
Writes go through a temporary file and a rename: a killed writer never leaves half a golden.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import compare
from .outputs import Outputs, atomic_write
from .spec import LoadedCheck

FORMAT = "1"
SUFFIX = ".safetensors"
OBTAINED_SUFFIX = ".obtained.safetensors"

# Fingerprint fields, most likely cause of numeric drift first.
CAUSE_ORDER = ("torch", "torchvision", "cuda_build", "cudnn", "driver", "gpus", "cpu", "threads", "interop_threads",
               "flags", "mkldnn", "numpy", "python", "env", "platform", "cpu_count", "hash_randomization")


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
    comparison: compare.Comparison | None = None
    fingerprint_diff: tuple[FieldDiff, ...] = ()
    config_changed: bool = False
    golden_created: str | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.status in (BaselineStatus.MATCH, BaselineStatus.UPDATED)


def golden_path(root: Path, lc: LoadedCheck) -> Path:
    return root / lc.file.stem / f"{lc.name}{SUFFIX}"


def obtained_path(golden: Path) -> Path:
    return golden.with_name(golden.name[: -len(SUFFIX)] + OBTAINED_SUFFIX)


def save(outputs: Outputs, path: Path, *, check: str, config_hash: str, fingerprint: dict[str, Any] | None) -> None:
    from safetensors.torch import save_file

    # safetensors refuses views sharing storage; every leaf gets its own contiguous copy.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in outputs.tensors.items()}
    metadata = {
        "reprocheck.format": FORMAT,
        "reprocheck.tree": json.dumps(outputs.tree),
        "reprocheck.config_hash": config_hash,
        "reprocheck.check": check,
        "reprocheck.fingerprint": json.dumps(fingerprint or {}),
        "reprocheck.created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load(path: Path) -> tuple[Outputs, dict[str, Any]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        if meta.get("reprocheck.format") != FORMAT:
            raise ValueError(f"{path} is not a reprocheck baseline (format {meta.get('reprocheck.format')!r})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    info = {
        "config_hash": meta.get("reprocheck.config_hash"),
        "check": meta.get("reprocheck.check"),
        "fingerprint": json.loads(meta.get("reprocheck.fingerprint") or "{}"),
        "created": meta.get("reprocheck.created"),
    }
    return Outputs(tree=json.loads(meta["reprocheck.tree"]), tensors=tensors), info


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


def check_against(lc: LoadedCheck, root: Path, obtained: Outputs, fingerprint: dict[str, Any] | None) -> BaselineResult:
    """Compare run 1's outputs with the golden; write the obtained file beside it on any failure."""
    golden = golden_path(root, lc)
    spec_tol = lc.check.baseline or lc.check.tolerance
    if not golden.exists():
        side = obtained_path(golden)
        save(obtained, side, check=lc.name, config_hash=lc.config_hash, fingerprint=fingerprint)
        return BaselineResult(
            status=BaselineStatus.MISSING, golden=golden, obtained=side,
            message=(f"no baseline at {golden}; the obtained outputs are in {side}. Create the baseline with "
                     f"`reprocheck run {lc.file} --check {lc.name} --baseline {root} --update-baseline` and commit it"),
        )
    expected, info = load(golden)
    comparison = compare.compare_runs([expected, obtained], spec_tol, labels=[0, 1])
    diff = fingerprint_diff(info["fingerprint"], fingerprint or {})
    changed = info["config_hash"] != lc.config_hash
    if comparison:
        side = obtained_path(golden)
        if side.exists():
            side.unlink()  # a stale obtained file from an earlier failure would mislead
        return BaselineResult(status=BaselineStatus.MATCH, golden=golden, comparison=comparison,
                              fingerprint_diff=diff, config_changed=changed, golden_created=info["created"])
    side = obtained_path(golden)
    save(obtained, side, check=lc.name, config_hash=lc.config_hash, fingerprint=fingerprint)
    causes = ", ".join(d.field for d in diff[:6]) or "none: same environment, so the model, its input or the code changed"
    message = (f"outputs drifted from the baseline {golden} (created {info['created']}); obtained outputs written to {side}. "
               f"Environment differences (likely causes): {causes}.")
    if changed:
        message += " The check's spec changed since the baseline was made (config hash differs)."
    message += f" If the new outputs are right, accept them with --update-baseline."
    return BaselineResult(status=BaselineStatus.DRIFT, golden=golden, obtained=side, comparison=comparison,
                          fingerprint_diff=diff, config_changed=changed, golden_created=info["created"], message=message)


def update(lc: LoadedCheck, root: Path, obtained: Outputs, fingerprint: dict[str, Any] | None) -> BaselineResult:
    golden = golden_path(root, lc)
    save(obtained, golden, check=lc.name, config_hash=lc.config_hash, fingerprint=fingerprint)
    side = obtained_path(golden)
    if side.exists():
        side.unlink()
    return BaselineResult(status=BaselineStatus.UPDATED, golden=golden, message=f"baseline written to {golden}")
