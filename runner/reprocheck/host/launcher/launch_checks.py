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


def no_option(name: str, value: str) -> str:
    if value.startswith("-"):
        raise LaunchError(f"{name} {value!r} starts with '-': a value can never be an option (rename it)")
    if any(c in value for c in "\r\n\0"):
        raise LaunchError(f"{name} contains a line break or NUL; give one value per line")
    return value


# A count given as text (an input, a command-line value): ASCII digits only (int() also reads '٣' and '1_000',
# str.isdigit takes '²').
COUNT = re.compile(r"[0-9]{1,9}")
COUNT_RULE = "must be a whole number written in the digits 0-9"


SEED = re.compile(r"[0-9]{1,10}")
SEED_LIMIT = 2**32  # what numpy.random.seed takes
SEED_RULE = f"must be a whole number from 0 to {SEED_LIMIT - 1} written in the digits 0-9"


def ascii_seed(name: str, value: str) -> int:
    if not SEED.fullmatch(value) or int(value) >= SEED_LIMIT:
        raise LaunchError(f"{name} {SEED_RULE}, got {value!r}")
    return int(value)


def ascii_count(name: str, value: str) -> int:
    if not COUNT.fullmatch(value):
        raise LaunchError(f"{name} {COUNT_RULE}, got {value!r}")
    return int(value)


def mountable(name: str, path: str) -> str:
    bad = sorted({c for c in path if c in MOUNT_UNSAFE})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise LaunchError(
            f"{name} {path!r} holds {shown}, which Docker's --mount syntax reads as a separator or quote; "
            "rename the folder or file"
        )
    return path


def inside_workspace(workspace: Path, name: str, value: str, must_exist: bool = False, folder_ok: bool = False) -> Path:
    """An absolute, symlink-resolved path that must lie inside the workspace (a file, or with folder_ok a folder)."""
    no_option(name, value)
    path = Path(os.path.realpath(workspace / value))
    mountable(name, str(path))
    if path != workspace and workspace not in path.parents:
        raise LaunchError(f"{name} {value!r} is outside the workspace {workspace}; give a path inside it")
    if must_exist and not (path.is_file() or (folder_ok and path.is_dir())):
        kind = "file or folder" if folder_ok else "file"
        raise LaunchError(f"{name} {value!r}: no such {kind} in the workspace (check the path)")
    return path


def cache_env(folder: str) -> dict[str, str]:
    """Where torch and Hugging Face look for weights, under one folder; the hub is never asked (no network)."""
    return {
        "TORCH_HOME": os.path.join(folder, "torch"),
        "HF_HOME": os.path.join(folder, "huggingface"),
        "HF_HUB_OFFLINE": "1",
    }


# The host's own folders: a model cache there, or above one, would hand the model the host (a socket in /run is the
# Docker engine, i.e. root on the host; a read-only mount does not stop connect()).
SYSTEM_FOLDERS = (
    "/proc", "/sys", "/dev", "/run", "/var/run", "/etc", "/boot", "/root", "/var/lib/docker", "/var/lib/containerd",
)  # fmt: skip
# Names that hold credentials (ssh keys, Docker and cloud logins, the runner's own registration).
CREDENTIALS = frozenset(
    {".ssh", ".docker", ".aws", ".azure", ".kube", ".gnupg", ".config", ".netrc", ".git-credentials", ".pypirc"}
    | {".credentials", ".credentials_rsaparams", ".runner", ".env"}
)
WALK_LIMIT = 100_000  # entries looked at in a model cache before it is refused as too large to check
OUTSIDE_INPUT = "model-cache-outside-workspace"  # the Action's opt-in for an absolute model cache


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_cache_folder(
    name: str,
    path: Path,
    runner_folders: tuple[str, ...] = (),
    homes: tuple[str, ...] = (),
    credentials: bool = True,
) -> None:
    """A model cache must hold weights, nothing of the host: never `/`, a system folder (or one above it), the
    runner's own folders (or one above them), a home folder (or one above it), and never a folder holding a socket,
    device, FIFO or (unless `credentials` is False: natively the model can read them anyway) credentials."""
    check_cache_place(name, path, runner_folders, homes)
    _check_cache_contents(name, path, credentials)


def check_cache_place(name: str, path: Path, runner_folders: tuple[str, ...] = (), homes: tuple[str, ...] = ()) -> None:
    """Where a model cache may not be (see check_cache_folder)."""
    if path == Path("/"):
        raise LaunchError(f"{name} is /, the whole host; give the folder that holds the weights")
    for folder in SYSTEM_FOLDERS:
        for system in {Path(folder), Path(os.path.realpath(folder))}:
            if _overlaps(path, system):
                raise LaunchError(
                    f"{name} {path} overlaps the system folder {system}, which holds the host's sockets and devices; "
                    "give a folder that holds only the weights"
                )
    for folder in runner_folders:
        runner = Path(os.path.realpath(folder))
        if _overlaps(path, runner):
            raise LaunchError(
                f"{name} {path} overlaps the runner's own folder {runner} (its home, temporary, tool or action "
                "files); give a folder that holds only the weights"
            )
    for folder in homes:
        home = Path(os.path.realpath(folder))
        if path == home or path in home.parents:
            raise LaunchError(
                f"{name} {path} is or holds the home folder {home} (its keys and logins); give a folder inside it "
                "that holds only the weights"
            )


def _check_cache_contents(name: str, path: Path, credentials: bool = True) -> None:
    seen = 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                seen += 1
                if seen > WALK_LIMIT:
                    raise LaunchError(
                        f"{name} {path} holds more than {WALK_LIMIT} entries, too many to check; give the folder "
                        "that holds only the weights"
                    )
                if entry.name == "hubconf.py":
                    raise LaunchError(
                        f"{name} {path} holds {entry.path}: torch.hub code, not weights (torch.hub.load would run "
                        "it); remove it"
                    )
                if credentials and entry.name in CREDENTIALS:
                    raise LaunchError(f"{name} {path} holds {entry.path}, which may hold credentials; remove it")
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif not entry.is_symlink() and not entry.is_file(follow_symlinks=False):
                    raise LaunchError(
                        f"{name} {path} holds {entry.path}, which is a socket, device or FIFO, never weights; "
                        "remove it or give another folder"
                    )


def check_model_cache(
    workspace: Path, value: str, allow_outside: bool, runner_folders: tuple[str, ...] = (), homes: tuple[str, ...] = ()
) -> Path:
    no_option("model-cache", value)
    path = Path(os.path.realpath(workspace / value))
    mountable("model-cache", str(path))
    if not path.is_dir():
        raise LaunchError(f"model-cache {value!r} is not a folder (fill it in an earlier step, see the README)")
    inside = path == workspace or workspace in path.parents
    if not inside and not allow_outside:
        raise LaunchError(
            f"model-cache {value!r} is outside the workspace {workspace}; put it inside it, or, on a self-hosted "
            f"runner, give an absolute path with {OUTSIDE_INPUT}: true"
        )
    check_cache_place("model-cache", path, *(((), ()) if inside else (runner_folders, homes)))
    if not inside and path in workspace.parents:
        raise LaunchError(f"model-cache {value!r} holds the workspace {workspace}; give the folder of the weights")
    check_cache_folder("model-cache", path, *(((), ()) if inside else (runner_folders, homes)))
    return path


def check_gpus(value: str) -> str:
    if value in ("none", "all") or (re.fullmatch(r"[0-9]{1,4}", value) and int(value) > 0):
        return value
    raise LaunchError(f"gpus must be none, all or a positive count (digits 0-9), got {value!r}")


def refuse_protected(workspace: Path, name: str, folder: Path, specs: list[Path]) -> None:
    """A writable folder must be a dedicated output folder: not in or holding .git/.github or a spec."""
    fix = "give a dedicated output folder, e.g. reprocheck/"
    parts = folder.relative_to(workspace).parts
    hit = next((p for p in parts if p in PROTECTED), None)
    if hit:
        raise LaunchError(f"{name} would make {folder} writable, which is inside {hit}; {fix}")
    for spec in specs:
        if folder in spec.parents or (spec.is_dir() and (folder == spec or spec in folder.parents)):
            raise LaunchError(
                f"{name} would make {folder} writable, which holds the spec {spec.name} (and what it loads); {fix}"
            )
    if folder.is_dir():
        for top, dirs, _ in os.walk(folder):
            found = next((d for d in dirs if d in PROTECTED), None)
            if found:
                raise LaunchError(f"{name} would make {folder} writable, which holds {Path(top) / found}; {fix}")
