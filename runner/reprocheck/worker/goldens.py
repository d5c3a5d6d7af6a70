"""Golden baselines: outputs stored per check, compared on later runs to catch drift.

Where goldens live, and the checks made before anything runs: ../goldens.py; the verdict objects: ../golden_result.py.

Format: safetensors (no pickle; readable on any machine, CPU or not). The leaf tensors are stored under
their output paths; the metadata (strings) holds:
  "reprocheck.format"       "1"
  "reprocheck.tree"         the output structure (JSON, see tree.py)
  "reprocheck.config_hash"  the hash of what the check computes (spec.Check.config_hash)
  "reprocheck.check"        the check's name
  "reprocheck.seed"         the check's seed (a golden of another seed is refused before anything runs)
  "reprocheck.fingerprint"  the environment that produced it (JSON, see fingerprint.py)
  "reprocheck.created"      UTC timestamp
Writes go through a temporary file and a rename: a killed writer never leaves half a golden.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file

from ..files import atomic_write
from ..golden_result import BaselineResult, BaselineStatus, FieldDiff, fingerprint_diff
from ..goldens import FORMAT, obtained_path
from ..protocol import GoldenJob
from ..tree import Outputs
from . import compare


def save(
    outputs: Outputs,
    path: Path,
    *,
    check: str,
    config_hash: str,
    fingerprint: dict[str, Any] | None,
    seed: int | None = None,
) -> None:
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
    if seed is not None:
        metadata["reprocheck.seed"] = str(seed)
    if seed is not None:
        metadata["reprocheck.seed"] = str(seed)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _save(outputs: Outputs, path: Path, job: GoldenJob, fingerprint: dict[str, Any] | None) -> None:
    save(outputs, path, check=job.check, config_hash=job.config_hash, fingerprint=fingerprint, seed=job.seed)


def load(path: Path) -> tuple[Outputs, dict[str, Any]]:
    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        if meta.get("reprocheck.format") != FORMAT:
            raise ValueError(f"{path} is not a reprocheck baseline (format {meta.get('reprocheck.format')!r})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    info = {
        "config_hash": meta.get("reprocheck.config_hash"),
        "check": meta.get("reprocheck.check"),
        "fingerprint": json.loads(meta.get("reprocheck.fingerprint") or "{}"),
        "created": meta.get("reprocheck.created"),
    }
    return Outputs(tree=json.loads(meta["reprocheck.tree"]), tensors=tensors), info


def apply(job: GoldenJob, obtained: Outputs, fingerprint: dict[str, Any] | None, runs_agree: bool) -> BaselineResult:
    """Write the golden (--update-baseline, or --missing-baseline write where this machine's key has none) or
    compare run 1's outputs with the most specific golden that exists. Runs on the torch side."""
    target = Path(job.target or job.golden)
    if job.update:
        if not runs_agree:
            return _not_written(job, target)
        return update(job, obtained, fingerprint)
    exists = job.golden_key is not None and Path(job.golden).exists()
    if job.write_missing and (not exists or job.golden_key != job.key):
        if not runs_agree:
            result = check_against(job, obtained, fingerprint, runs_agree) if exists else None
            return result or _not_written(job, target)
        fallback = check_against(job, obtained, fingerprint, save_obtained=False) if exists else None
        return _write_missing(job, obtained, fingerprint, fallback)
    return check_against(job, obtained, fingerprint, runs_agree)


def _not_written(job: GoldenJob, target: Path) -> BaselineResult:
    return BaselineResult(
        status=BaselineStatus.NOT_UPDATED,
        golden=target,
        key=job.key,
        message="baseline not written: the runs themselves differ, so there is no single right answer to store",
    )


def _write_missing(
    job: GoldenJob, obtained: Outputs, fingerprint: dict[str, Any] | None, fallback: BaselineResult | None
) -> BaselineResult:
    """The first night: this machine's golden written; a fallback golden, where one exists, compared for information."""
    target = Path(job.target)
    _save(obtained, target, job, fingerprint)
    side = obtained_path(target)
    if side.exists():  # a stale one from an earlier failure would mislead
        side.unlink()
    key = f" for key {job.key}" if job.key else ""
    message = f"no golden{key}: written to {target}, not yet committed (commit it, or the next run writes it again)"
    if fallback is None:
        return BaselineResult(
            status=BaselineStatus.WRITTEN, golden=target, written=target, key=job.key, message=message
        )
    verdict = "matches it" if fallback else "differs from it (reported for information, not a failure)"
    message += f"; compared with {fallback.which()} at {fallback.golden}, run 1 {verdict}"
    return dataclasses.replace(fallback, status=BaselineStatus.WRITTEN, written=target, obtained=None, message=message)


def check_against(
    job: GoldenJob,
    obtained: Outputs,
    fingerprint: dict[str, Any] | None,
    runs_agree: bool = True,
    save_obtained: bool = True,  # False: this machine's golden is written instead (the first night)
) -> BaselineResult:
    """Compare run 1's outputs with the golden; write the obtained file beside it on any failure."""
    from ..spec import CompareSpec

    golden = Path(job.golden)
    side = obtained_path(Path(job.target or job.golden))
    if not golden.exists():
        _save(obtained, side, job, fingerprint)
        return BaselineResult(
            status=BaselineStatus.MISSING,
            golden=golden,
            key=job.key,
            obtained=side,
            message=(
                f"no baseline{f' for key {job.key}' if job.key else ''} at {golden}; the obtained outputs are in "
                f"{side}. "
                + (
                    f"Create the baseline with `{job.regenerate}` and commit it"
                    if runs_agree
                    else "The runs themselves differ, so make them agree first (`reprocheck diagnose`)"
                )
            ),
        )
    expected, info = load(golden)
    tolerance = job.tolerance
    rules = job.compare or CompareSpec()
    comparison = compare.compare_runs([expected, obtained], tolerance, labels=[0, 1], rules=rules)
    diff = fingerprint_diff(info["fingerprint"], fingerprint or {})
    changed = info["config_hash"] != job.config_hash
    found: dict[str, Any] = dict(
        golden=golden,
        key=job.key,
        golden_key=job.golden_key,
        comparison=comparison,
        fingerprint_diff=diff,
        config_changed=changed,
        golden_created=info["created"],
    )
    if comparison:
        if side.exists():
            side.unlink()  # a stale obtained file from an earlier failure would mislead
        return BaselineResult(status=BaselineStatus.MATCH, **found)
    if save_obtained:
        _save(obtained, side, job, fingerprint)
    message = _drift_message(job, info, side, diff, changed, runs_agree)
    return BaselineResult(status=BaselineStatus.DRIFT, obtained=side, message=message, **found)


def _drift_message(
    job: GoldenJob,
    info: dict[str, Any],
    side: Path,
    diff: tuple[FieldDiff, ...],
    changed: bool,
    runs_agree: bool,
) -> str:
    """What a drift says: the likely causes, a fallback golden, a changed spec, and what can be done."""
    golden = Path(job.golden)
    causes = (
        ", ".join(d.field for d in diff[:6]) or "none: same environment, so the model, its input or the code changed"
    )
    message = (
        f"outputs drifted from the baseline {golden} (created {info['created']}); obtained outputs written to {side}. "
        f"Environment differences (likely causes): {causes}."
    )
    if job.golden_key is not None and job.golden_key != job.key:
        message += (
            f" That golden is a fallback ({job.golden_key or 'keyless'}; none for {job.key} yet): if the difference "
            f"is only this machine's hardware, write this machine's own with `{job.regenerate}`."
        )
    if changed:
        message += " The check's spec changed since the baseline was made (config hash differs)."
    if runs_agree:
        message += f" If the new outputs are right, accept them with `{job.regenerate}`."
    else:  # --update-baseline would refuse: lead to what can be done
        message += (
            " The runs themselves differ, so no golden can be written yet: make them agree first "
            "(`reprocheck diagnose` finds the first module that diverges)."
        )
    return message


def update(job: GoldenJob, obtained: Outputs, fingerprint: dict[str, Any] | None) -> BaselineResult:
    golden = Path(job.target or job.golden)
    _save(obtained, golden, job, fingerprint)
    side = obtained_path(golden)
    if side.exists():
        side.unlink()
    return BaselineResult(
        status=BaselineStatus.UPDATED,
        golden=golden,
        key=job.key,
        golden_key=job.key,
        message=f"baseline written to {golden}",
    )
