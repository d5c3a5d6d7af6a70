"""The launch policy's checks of single values and paths, before any reaches `docker run`: no value can be an
option, no path can rewrite a mount or leave the workspace, no writable folder is or holds .git, .github or a
spec. Standard library only, like launch.py (the Action's step imports both without reprocheck installed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

# Docker parses a --mount value as CSV fields of key=value: these characters could end a field or open a quote.
MOUNT_UNSAFE = ',"\r\n\0'
PROTECTED = (".git", ".github")  # never writable, nor any folder holding them


class LaunchError(ValueError):
    """A request the policy refuses: one line naming the input and the fix."""


def _no_option(name: str, value: str) -> str:
    if value.startswith("-"):
        raise LaunchError(f"{name} {value!r} starts with '-': a value can never be an option (rename it)")
    if any(c in value for c in "\r\n\0"):
        raise LaunchError(f"{name} contains a line break or NUL; give one value per line")
    return value


def ascii_count(name: str, value: str) -> int:
    """A whole number written in ASCII digits only (str.isdigit also takes '²' and '٣')."""
    if not re.fullmatch(r"[0-9]{1,9}", value):
        raise LaunchError(f"{name} must be a whole number written in the digits 0-9, got {value!r}")
    return int(value)


def _mountable(name: str, path: str) -> str:
    bad = sorted({c for c in path if c in MOUNT_UNSAFE})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise LaunchError(
            f"{name} {path!r} holds {shown}, which Docker's --mount syntax reads as a separator or quote; "
            "rename the folder or file"
        )
    return path


def _inside(workspace: Path, name: str, value: str, must_exist: bool = False) -> Path:
    """An absolute, symlink-resolved path that must lie inside the workspace."""
    _no_option(name, value)
    path = Path(os.path.realpath(workspace / value))
    _mountable(name, str(path))
    if path != workspace and workspace not in path.parents:
        raise LaunchError(f"{name} {value!r} is outside the workspace {workspace}; give a path inside it")
    if must_exist and not path.is_file():
        raise LaunchError(f"{name} {value!r}: no such file in the workspace (check the path)")
    return path


def cache_env(folder: str) -> dict[str, str]:
    """Where torch and Hugging Face look for weights, under one folder; the hub is never asked (no network)."""
    return {
        "TORCH_HOME": os.path.join(folder, "torch"),
        "HF_HOME": os.path.join(folder, "huggingface"),
        "HF_HUB_OFFLINE": "1",
    }


def _model_cache(workspace: Path, value: str, allow_outside: bool) -> Path:
    _no_option("model-cache", value)
    path = Path(os.path.realpath(workspace / value))
    _mountable("model-cache", str(path))
    if not path.is_dir():
        raise LaunchError(f"model-cache {value!r} is not a folder (fill it in an earlier step, see the README)")
    if path != workspace and workspace not in path.parents and not allow_outside:
        raise LaunchError(
            f"model-cache {value!r} is outside the workspace {workspace}; put it inside it, or give an absolute "
            "path on a self-hosted runner"
        )
    return path


def _gpus(value: str) -> str:
    if value in ("none", "all") or (re.fullmatch(r"[0-9]{1,4}", value) and int(value) > 0):
        return value
    raise LaunchError(f"gpus must be none, all or a positive count (digits 0-9), got {value!r}")


def _refuse_protected(workspace: Path, name: str, folder: Path, specs: list[Path]) -> None:
    """A writable folder must be a dedicated output folder: not in or holding .git/.github or a spec."""
    fix = "give a dedicated output folder, e.g. reprocheck/"
    parts = folder.relative_to(workspace).parts
    hit = next((p for p in parts if p in PROTECTED), None)
    if hit:
        raise LaunchError(f"{name} would make {folder} writable, which is inside {hit}; {fix}")
    for spec in specs:
        if folder in spec.parents:
            raise LaunchError(
                f"{name} would make {folder} writable, which holds the spec {spec.name} (and what it loads); {fix}"
            )
    if folder.is_dir():
        for top, dirs, _ in os.walk(folder):
            found = next((d for d in dirs if d in PROTECTED), None)
            if found:
                raise LaunchError(f"{name} would make {folder} writable, which holds {Path(top) / found}; {fix}")
