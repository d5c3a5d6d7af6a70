"""Where goldens live and whether one can be used, decided before anything runs and without torch.

Layout:  DIR/<spec path>/<check>.safetensors            the golden ("expected")
         DIR/<spec path>/<check>.obtained.safetensors   written beside it on a mismatch ("obtained")
where <spec path> is the spec file's path relative to the baseline root (--baseline-root, default the
current folder), file name included: `a/model.yaml` and `b/model.yaml` get `DIR/a/model.yaml/` and
`DIR/b/model.yaml/`. Every path component is escaped (any character outside [A-Za-z0-9._-] and a
leading dot become %XX), so nothing lands outside DIR and distinct specs never share a golden.
A spec outside the root is refused. A golden is checked from its safetensors header alone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import OutputTargetError, refuse_special_target
from .protocol import GoldenJob
from .spec import LoadedCheck
from .tree import tree_leaves

FORMAT = "1"


@dataclass(frozen=True)
class BaselineOptions:
    """Where the goldens are (--baseline), whether to write them, and the root their layout is relative to."""

    root: Path
    update: bool = False
    spec_root: Path = Path(".")  # goldens are laid out by the spec's path relative to this
    seed: int | None = None  # --seed, repeated in the commands that rewrite a golden


SUFFIX = ".safetensors"


OBTAINED_SUFFIX = ".obtained.safetensors"


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
    if options.seed is not None:
        args += ["--seed", str(options.seed)]
    return shlex.join([*args, "--update-baseline"])


def obtained_path(golden: Path) -> Path:
    return golden.with_name(golden.name[: -len(SUFFIX)] + OBTAINED_SUFFIX)


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
        except (UnicodeDecodeError, ValueError, RecursionError):
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


class SeedMismatch(ValueError):
    """A golden written with another seed: not drift, a different question."""

    def __init__(self, written: str, message: str) -> None:
        super().__init__(message)
        self.written = written


def validate_golden(path: Path, check: str, seed: int | None = None) -> None:
    """Raise ValueError saying why `path` is not a usable golden for `check`."""
    refuse_special_target(path)
    header, meta = read_header(path)
    if meta.get("reprocheck.format") != FORMAT:
        raise ValueError(
            f"it is not a reprocheck baseline (safetensors without our metadata; format "
            f"{meta.get('reprocheck.format')!r})"
        )
    try:
        leaves = tree_leaves(json.loads(meta.get("reprocheck.tree") or "null"))
        json.loads(meta.get("reprocheck.fingerprint") or "{}")
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ValueError("its stored output structure is unreadable") from None
    if sorted(leaves) != sorted(header):
        raise ValueError("its stored output structure does not match the tensors it holds")
    if meta.get("reprocheck.check") != check:
        raise ValueError(f"it belongs to check {meta.get('reprocheck.check')!r}, not {check!r}")
    written = meta.get("reprocheck.seed")  # absent in goldens written before seeds were recorded
    if written is not None and not re.fullmatch(r"[0-9]{1,10}", str(written)):
        raise ValueError("its recorded seed is not a seed (edited by hand?)")
    if seed is not None and written is not None and written != str(seed):
        raise SeedMismatch(written, f"was written with seed {written}, and this run uses seed {seed}")


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
                validate_golden(golden, lc.name, lc.check.seed)
            else:  # never a finding: a workflow whose goldens were not committed must not read as drift
                problems.append(
                    f"{lc.file}: check {lc.name} has no golden at {golden}; write it with "
                    f"`{regenerate_command(lc, options)}` (refused if the runs themselves differ) and commit it"
                )
                continue
        except SeedMismatch as exc:
            problems.append(
                f"{lc.file}: check {lc.name}: golden {golden} {exc}; run with --seed {exc.written} to compare "
                f"with it, or rewrite it with `{regenerate_command(lc, options)}`"
            )
        except (OutputTargetError, OSError, ValueError) as exc:
            why = exc.args[-1] if isinstance(exc, OSError) and not isinstance(exc, OutputTargetError) else str(exc)
            problems.append(
                f"golden {golden} cannot be used: {why}. Regenerate it with `{regenerate_command(lc, options)}`"
            )
    return problems


def golden_job(lc: LoadedCheck, options: BaselineOptions) -> GoldenJob:
    tolerance = lc.check.baseline or lc.check.tolerance
    return GoldenJob(
        golden=str(golden_path(options.root, lc, options.spec_root)),
        check=lc.name,
        config_hash=lc.config_hash,
        seed=lc.check.seed,
        tolerance=tolerance,
        regenerate=regenerate_command(lc, options),
        update=options.update,
        compare=lc.check.compare,
    )
