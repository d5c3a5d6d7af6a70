"""Where goldens live and whether one can be used, decided before anything runs and without torch.

Layout:  DIR/<spec path>/<check>.safetensors                  the golden ("expected")
         DIR/<spec path>/<check>@<key>.safetensors            the golden of one device or GPU generation
         DIR/<spec path>/<check>[@<key>].obtained.safetensors  written beside it on a mismatch ("obtained")
where <spec path> is the spec file's path relative to the baseline root (--baseline-root, default the
current folder), file name included: `a/model.yaml` and `b/model.yaml` get `DIR/a/model.yaml/` and
`DIR/b/model.yaml/`. Every path component is escaped (any character outside [A-Za-z0-9._-] and a
leading dot become %XX), so nothing lands outside DIR and distinct specs never share a golden.
A spec outside the root is refused. A golden is checked from its safetensors header alone.
A key (`baseline: {key: device|gpu}`: cpu, cuda, cuda-sm90) follows an `@`, which an escaped check name never
holds, so a keyed golden never collides with another check's file. A machine's keys, most specific first,
end with the keyless golden: comparing picks the first that exists.
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
    write_missing: bool = False  # --missing-baseline write: a check with no golden for this machine's key gets one


SUFFIX = ".safetensors"


OBTAINED_SUFFIX = ".obtained.safetensors"


class BaselineError(Exception):
    """A golden that cannot be used (unreadable, not ours, another check's) or a spec outside the root:
    refused before anything runs (exit 2), with the command that regenerates it."""


_SAFE = re.compile(r"[A-Za-z0-9_.\-]")


def _escape(component: str) -> str:
    out = "".join(c if _SAFE.match(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in component)
    return "%2E" + out[1:] if out.startswith(".") else out


KEY = re.compile(r"^(cpu|cuda|cuda-sm[0-9]{2,4})$")
_CAPABILITY = re.compile(r"^([0-9]{1,2})\.([0-9]{1,2})$")


def _generation(device: str, fingerprint: dict[str, Any] | None) -> str | None:
    """cuda-sm90 for the GPU a CUDA run used (its compute capability, from the run's fingerprint)."""
    index = int(device.partition(":")[2] or 0)
    gpus = (fingerprint or {}).get("gpus") or []
    if not isinstance(gpus, list) or index >= len(gpus) or not isinstance(gpus[index], dict):
        return None
    m = _CAPABILITY.fullmatch(str(gpus[index].get("capability", "")))
    return f"cuda-sm{m.group(1)}{m.group(2)}" if m else None


def machine_keys(kind: str, device: str, fingerprint: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The goldens a run on `device` may use, most specific first; "" is the keyless golden."""
    if kind == "none":
        return ("",)
    base = device.partition(":")[0]  # cpu, cuda
    gen = _generation(device, fingerprint) if kind == "gpu" and base == "cuda" else None
    return (gen, base, "") if gen else (base, "")


def predicted_keys(lc: LoadedCheck) -> tuple[str, ...] | None:
    """The keys known before anything runs (from the spec's device); None where only the GPU can tell."""
    kind, device = lc.check.baseline_key, lc.check.device
    if kind == "none":
        return ("",)
    if device == "auto":
        if any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/dxg")):
            return None  # CUDA may be there: the run decides
        device = "cpu"
    if kind == "gpu" and device.startswith("cuda"):
        return None
    return machine_keys(kind, device)


def golden_path(root: Path, lc: LoadedCheck, spec_root: Path = Path("."), key: str = "") -> Path:
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
    at = f"@{key}" if key else ""
    return root.joinpath(*[_escape(p) for p in rel.parts], f"{_escape(lc.name)}{at}{SUFFIX}")


def existing_goldens(root: Path, lc: LoadedCheck, spec_root: Path = Path(".")) -> dict[str, Path]:
    """The goldens of this check on disk, by key ("" keyless); files named like a key that is none are left out."""
    keyless = golden_path(root, lc, spec_root)
    found = {"": keyless} if os.path.lexists(keyless) else {}
    stem = keyless.name[: -len(SUFFIX)] + "@"
    try:
        names = os.listdir(keyless.parent)
    except OSError:
        return found
    for name in sorted(names):
        if name.startswith(stem) and name.endswith(SUFFIX) and not name.endswith(OBTAINED_SUFFIX):
            key = name[len(stem) : -len(SUFFIX)]
            if KEY.fullmatch(key):
                found[key] = keyless.parent / name
    return found


@dataclass(frozen=True)
class GoldenChoice:
    """Which golden a check compares with on this machine, and where this machine's own golden goes."""

    keys: tuple[str, ...]  # this machine's, most specific first
    target: Path  # the golden of keys[0]: written by --update-baseline and --missing-baseline write
    found: Path | None = None  # the most specific golden that exists
    found_key: str | None = None

    @property
    def fallback(self) -> bool:
        return self.found is not None and self.found_key != self.keys[0]


def choose(root: Path, lc: LoadedCheck, spec_root: Path, keys: tuple[str, ...]) -> GoldenChoice:
    existing = existing_goldens(root, lc, spec_root)
    target = golden_path(root, lc, spec_root, keys[0])
    for key in keys:
        if key in existing:
            return GoldenChoice(keys=keys, target=target, found=existing[key], found_key=key)
    return GoldenChoice(keys=keys, target=target)


def describe_keys(keys: tuple[str, ...]) -> str:
    """`for cuda-sm90 (nor cuda, nor keyless)`: what was looked for, in words."""
    words = [k or "keyless" for k in keys]
    if keys == ("",):
        return ""
    return f" for key {words[0]}" + (f" (nor {', nor '.join(words[1:])})" if len(words) > 1 else "")


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


def _usable(lc: LoadedCheck, key: str) -> bool:
    """Whether a golden of this key could be this check's on some machine its device may be (keys unknown)."""
    if key == "" or lc.check.device == "auto":
        return True
    return key == "cuda" or key.startswith("cuda-sm")


def _symlinked_folder(root: Path, folder: Path) -> Path | None:
    """The first folder from `root` down to `folder` that is a symbolic link (the root itself is checked where it is
    given); model code and reports then never write through one into a place outside the baseline."""
    try:
        parts = folder.relative_to(root).parts
    except ValueError:
        return None
    here = root
    for part in parts:
        here = here / part
        if os.path.islink(here):
            return here
    return None


def _unusable(path: Path, exc: Exception, lc: LoadedCheck, options: BaselineOptions) -> str:
    why = exc.args[-1] if isinstance(exc, OSError) and not isinstance(exc, OutputTargetError) else str(exc)
    return f"golden {path} cannot be used: {why}. Regenerate it with `{regenerate_command(lc, options)}`"


def _check_preflight(lc: LoadedCheck, options: BaselineOptions) -> str | None:
    """One check's golden problem, if any: files that cannot be used, or no golden this machine could use."""
    keys = predicted_keys(lc)
    keyless = golden_path(options.root, lc, options.spec_root)
    folder = _symlinked_folder(options.root, keyless.parent)
    if folder is not None:
        return _unusable(
            keyless, ValueError(f"{folder} is a symbolic link: goldens are never written through one"), lc, options
        )
    if keys is not None:
        target = golden_path(options.root, lc, options.spec_root, keys[0])
        for path in (obtained_path(target), target) if options.update else (obtained_path(target),):
            try:
                refuse_special_target(path)
            except (OutputTargetError, OSError) as exc:
                return _unusable(target, exc, lc, options)
    if options.update:
        return None
    existing = existing_goldens(options.root, lc, options.spec_root)
    for key, path in existing.items():
        if keys is None or key in keys:
            try:
                validate_golden(path, lc.name, lc.check.seed)
            except SeedMismatch as exc:
                return (
                    f"{lc.file}: check {lc.name}: golden {path} {exc}; run with --seed {exc.written} to compare "
                    f"with it, or rewrite it with `{regenerate_command(lc, options)}`"
                )
            except (OutputTargetError, OSError, ValueError) as exc:
                return _unusable(path, exc, lc, options)
    if options.write_missing:
        return None
    if keys is None:
        has = any(_usable(lc, k) for k in existing)
    else:
        has = any(k in existing for k in keys)
    if has:
        return None
    # never a finding: a workflow whose goldens were not committed must not read as drift
    where = golden_path(options.root, lc, options.spec_root, keys[0] if keys else "")
    return (
        f"{lc.file}: check {lc.name} has no golden{describe_keys(keys) if keys else ''} at {where}; write it with "
        f"`{regenerate_command(lc, options)}` (refused if the runs themselves differ) and commit it, or let the "
        "first run write it with --missing-baseline write"
    )


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
        for path in (golden, obtained_path(golden)):  # `a.obtained`'s golden is `a`'s obtained file
            if path in seen:
                problems.append(
                    f"{lc.file}: check {lc.name} would share the golden file {path} with {seen[path]} (rename one)"
                )
            seen[path] = f"{lc.file} {lc.name}"
        try:
            problem = _check_preflight(lc, options)
        except (OutputTargetError, OSError, ValueError) as exc:
            problem = _unusable(golden, exc, lc, options)
        if problem:
            problems.append(problem)
    return problems


def golden_job(lc: LoadedCheck, options: BaselineOptions, choice: GoldenChoice) -> GoldenJob:
    """The golden job of a check whose run 1 ran on a machine of `choice.keys`."""
    tolerance = lc.check.baseline_tolerance()
    return GoldenJob(
        golden=str(choice.found or choice.target),
        target=str(choice.target),
        key=choice.keys[0],
        golden_key=choice.found_key,
        write_missing=options.write_missing,
        check=lc.name,
        config_hash=lc.config_hash,
        seed=lc.check.seed,
        tolerance=tolerance,
        regenerate=regenerate_command(lc, options),
        update=options.update,
        compare=lc.check.compare,
    )
