"""Golden baselines: outputs stored per check, compared on later runs to catch drift.

Layout:  DIR/<spec path>/<check>.safetensors            the golden ("expected")
         DIR/<spec path>/<check>.obtained.safetensors   written beside it on a mismatch ("obtained")
where <spec path> is the spec file's path relative to the baseline root (--baseline-root, default the
current folder), file name included: `a/model.yaml` and `b/model.yaml` get `DIR/a/model.yaml/` and
`DIR/b/model.yaml/`. Every path component is escaped (any character outside [A-Za-z0-9._-] and a
leading dot become %XX), so nothing lands outside DIR and distinct specs never share a golden.
A spec outside the root is refused.

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
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import compare
from .outputs import Outputs, OutputTargetError, atomic_write, refuse_special_target
from .spec import LoadedCheck

if TYPE_CHECKING:
    from .pipeline import BaselineOptions

FORMAT = "1"
SUFFIX = ".safetensors"
OBTAINED_SUFFIX = ".obtained.safetensors"

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
    comparison: compare.Comparison | None = None
    fingerprint_diff: tuple[FieldDiff, ...] = ()
    config_changed: bool = False
    golden_created: str | None = None
    message: str = ""

    def __bool__(self) -> bool:
        return self.status in (BaselineStatus.MATCH, BaselineStatus.UPDATED)


class BaselineError(Exception):
    """A golden that cannot be used (unreadable, not ours, another check's) or a spec outside the root:
    refused before anything runs (exit 2), with the command that regenerates it."""


_SAFE = re.compile(r"[A-Za-z0-9_.\-]")


def _escape(component: str) -> str:
    out = "".join(c if _SAFE.match(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in component)
    return "%2E" + out[1:] if out.startswith(".") else out


def golden_path(root: Path, lc: LoadedCheck, spec_root: Path = Path(".")) -> Path:
    # Lexical, not resolved: a symlinked spec keeps the place it is named by.
    spec = Path(os.path.abspath(lc.file))
    base = Path(os.path.abspath(spec_root))
    try:
        rel = spec.relative_to(base)
    except ValueError:
        raise BaselineError(
            f"{lc.file}: the spec is outside the baseline root {base}; goldens are laid out by the "
            f"spec's path under that root (run from a folder above it, or pass --baseline-root)"
        ) from None
    return root.joinpath(*[_escape(p) for p in rel.parts], f"{_escape(lc.name)}{SUFFIX}")


def regenerate_command(lc: LoadedCheck, options: BaselineOptions) -> str:
    args = ["reprocheck", "run", str(lc.file), "--check", lc.name, "--baseline", str(options.root)]
    if options.spec_root.resolve() != Path(".").resolve():
        args += ["--baseline-root", str(options.spec_root)]
    return shlex.join([*args, "--update-baseline"])


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


MAX_HEADER = 100 * 1024 * 1024
_DTYPES = {
    "BOOL",
    "U8",
    "I8",
    "I16",
    "U16",
    "F16",
    "BF16",
    "I32",
    "U32",
    "F32",
    "F64",
    "I64",
    "U64",
    "C64",
    "F8_E4M3",
    "F8_E5M2",
    "F8_E8M0",
    "F4",
    "F6_E2M3",
    "F6_E3M2",
}


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The safetensors header and our metadata, checked against the file's size; no tensor is read."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("shorter than a safetensors header (empty or truncated)")
        n = int.from_bytes(head, "little")
        if n < 2 or n > min(size - 8, MAX_HEADER):
            raise ValueError("its header length does not fit the file (truncated, or not a safetensors file)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError):
            raise ValueError("its header is not JSON (not a safetensors file)") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object (not a safetensors file)")
    meta = header.pop("__metadata__", None) or {}
    data = size - 8 - n
    for name, info in header.items():
        ok = (
            isinstance(info, dict)
            and info.get("dtype") in _DTYPES
            and isinstance(info.get("shape"), list)
            and isinstance(info.get("data_offsets"), list)
            and len(info["data_offsets"]) == 2
            and all(isinstance(x, int) and 0 <= x <= data for x in info["data_offsets"])
            and info["data_offsets"][0] <= info["data_offsets"][1]
        )
        if not ok:
            raise ValueError(f"tensor {name!r} is described wrongly or lies beyond the end of the file (truncated?)")
    if not isinstance(meta, dict):
        raise ValueError("its metadata is not a mapping")
    return header, meta


def _tree_leaves(node: Any) -> list[str]:
    if not isinstance(node, dict) or "t" not in node:
        raise ValueError("its output tree is malformed")
    if node["t"] in ("tensor", "scalar"):
        return [node["path"]]
    if node["t"] == "dict":
        return [p for _, child in node["items"] for p in _tree_leaves(child)]
    if node["t"] in ("list", "tuple"):
        return [p for child in node["items"] for p in _tree_leaves(child)]
    return []


def validate_golden(path: Path, check: str) -> None:
    """Raise ValueError saying why `path` is not a usable golden for `check`."""
    refuse_special_target(path)
    header, meta = read_header(path)
    if meta.get("reprocheck.format") != FORMAT:
        raise ValueError(
            f"it is not a reprocheck baseline (safetensors without our metadata; format "
            f"{meta.get('reprocheck.format')!r})"
        )
    try:
        leaves = _tree_leaves(json.loads(meta.get("reprocheck.tree") or "null"))
        json.loads(meta.get("reprocheck.fingerprint") or "{}")
    except (ValueError, KeyError, TypeError):
        raise ValueError("its stored output structure is unreadable") from None
    if sorted(leaves) != sorted(header):
        raise ValueError("its stored output structure does not match the tensors it holds")
    if meta.get("reprocheck.check") != check:
        raise ValueError(f"it belongs to check {meta.get('reprocheck.check')!r}, not {check!r}")


def preflight(checks: list[LoadedCheck], options: BaselineOptions) -> list[str]:
    """Problems with the goldens of these checks, found before anything runs (one line each)."""
    problems: list[str] = []
    seen: dict[Path, str] = {}
    for lc in checks:
        try:
            golden = golden_path(options.root, lc, options.spec_root)
        except BaselineError as exc:
            problems.append(str(exc))
            continue
        if golden in seen:
            problems.append(
                f"{lc.file}: check {lc.name} would share the golden {golden} with {seen[golden]} (rename one)"
            )
        seen[golden] = f"{lc.file} {lc.name}"
        try:
            refuse_special_target(obtained_path(golden))
            if options.update:
                refuse_special_target(golden)
            elif os.path.lexists(golden):
                validate_golden(golden, lc.name)
        except (OutputTargetError, OSError, ValueError) as exc:
            why = exc.args[-1] if isinstance(exc, OSError) and not isinstance(exc, OutputTargetError) else str(exc)
            problems.append(
                f"golden {golden} cannot be used: {why}. Regenerate it with `{regenerate_command(lc, options)}`"
            )
    return problems


def load(path: Path) -> tuple[Outputs, dict[str, Any]]:
    from safetensors import safe_open

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


def golden_job(lc: LoadedCheck, options: BaselineOptions) -> GoldenJob:
    tolerance = lc.check.baseline or lc.check.tolerance
    return GoldenJob(
        golden=str(golden_path(options.root, lc, options.spec_root)),
        check=lc.name,
        config_hash=lc.config_hash,
        tolerance=tolerance.model_dump(mode="json"),
        regenerate=regenerate_command(lc, options),
        update=options.update,
    )


def apply(job: GoldenJob, obtained: Outputs, fingerprint: dict[str, Any] | None, runs_agree: bool) -> BaselineResult:
    """Write the golden (--update-baseline) or compare run 1's outputs with it. Runs on the torch side."""
    golden = Path(job.golden)
    if job.update:
        if not runs_agree:
            return BaselineResult(
                status=BaselineStatus.NOT_UPDATED,
                golden=golden,
                message="baseline not written: the runs themselves differ, so there is no single right answer to store",
            )
        return update(job, obtained, fingerprint)
    return check_against(job, obtained, fingerprint)


def check_against(job: GoldenJob, obtained: Outputs, fingerprint: dict[str, Any] | None) -> BaselineResult:
    """Compare run 1's outputs with the golden; write the obtained file beside it on any failure."""
    from .spec import ToleranceSpec

    golden = Path(job.golden)
    side = obtained_path(golden)
    if not golden.exists():
        save(obtained, side, check=job.check, config_hash=job.config_hash, fingerprint=fingerprint)
        return BaselineResult(
            status=BaselineStatus.MISSING,
            golden=golden,
            obtained=side,
            message=(
                f"no baseline at {golden}; the obtained outputs are in {side}. Create the baseline with "
                f"`{job.regenerate}` and commit it"
            ),
        )
    expected, info = load(golden)
    comparison = compare.compare_runs([expected, obtained], ToleranceSpec.model_validate(job.tolerance), labels=[0, 1])
    diff = fingerprint_diff(info["fingerprint"], fingerprint or {})
    changed = info["config_hash"] != job.config_hash
    if comparison:
        if side.exists():
            side.unlink()  # a stale obtained file from an earlier failure would mislead
        return BaselineResult(
            status=BaselineStatus.MATCH,
            golden=golden,
            comparison=comparison,
            fingerprint_diff=diff,
            config_changed=changed,
            golden_created=info["created"],
        )
    save(obtained, side, check=job.check, config_hash=job.config_hash, fingerprint=fingerprint)
    causes = (
        ", ".join(d.field for d in diff[:6]) or "none: same environment, so the model, its input or the code changed"
    )
    message = (
        f"outputs drifted from the baseline {golden} (created {info['created']}); obtained outputs written to {side}. "
        f"Environment differences (likely causes): {causes}."
    )
    if changed:
        message += " The check's spec changed since the baseline was made (config hash differs)."
    message += f" If the new outputs are right, accept them with `{job.regenerate}`."
    return BaselineResult(
        status=BaselineStatus.DRIFT,
        golden=golden,
        obtained=side,
        comparison=comparison,
        fingerprint_diff=diff,
        config_changed=changed,
        golden_created=info["created"],
        message=message,
    )


def update(job: GoldenJob, obtained: Outputs, fingerprint: dict[str, Any] | None) -> BaselineResult:
    golden = Path(job.golden)
    save(obtained, golden, check=job.check, config_hash=job.config_hash, fingerprint=fingerprint)
    side = obtained_path(golden)
    if side.exists():
        side.unlink()
    return BaselineResult(status=BaselineStatus.UPDATED, golden=golden, message=f"baseline written to {golden}")


def result_to_dict(b: BaselineResult) -> dict[str, Any]:
    return {
        "status": b.status.value,
        "golden": str(b.golden),
        "obtained": str(b.obtained) if b.obtained else None,
        "comparison": compare.comparison_to_dict(b.comparison) if b.comparison is not None else None,
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
        comparison=compare.comparison_from_dict(d["comparison"]) if d["comparison"] is not None else None,
        fingerprint_diff=tuple(FieldDiff(*f) for f in d["fingerprint_diff"]),
        config_changed=d["config_changed"],
        golden_created=d["golden_created"],
        message=d["message"],
    )
