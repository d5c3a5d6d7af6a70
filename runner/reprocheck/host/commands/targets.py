"""Outputs land where asked, only there: before anything runs, each output file's folder is created, its
target checked (a symlink, FIFO, device or folder is refused, never replaced) and its folder proven writable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ...files import OutputTargetError, refuse_special_target
from ..exitcodes import UsageError
from .options import Options


def _probe_writable(folder: Path, what: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".reprocheck-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{what}: cannot write in {folder} ({exc.strerror or exc}); choose another place") from None


def _make_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"{what}: {folder} (or a folder above it) is a file, not a folder") from None
    except OSError as exc:
        raise UsageError(f"{what}: cannot create folder {folder} ({exc.strerror or exc})") from None


def prepare_output_file(path: Path | None, flag: str) -> None:
    """Before anything runs: create the missing parent folders of an output file, refuse a target that is a
    symlink, FIFO, device or folder, and make sure the folder is writable."""
    if path is None:
        return
    try:
        refuse_special_target(path)
    except OutputTargetError as exc:
        raise UsageError(f"{flag} {exc}") from None
    parent = path.parent if str(path.parent) else Path(".")
    _make_folder(parent, f"{flag} {path}")
    _probe_writable(parent, f"{flag} {path}")


def prepare_output_folder(path: Path | None, flag: str) -> None:
    if path is None:
        return
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise UsageError(f"{flag} {path}: is not a folder (a symlink or a file is never written through)")
    _make_folder(path, f"{flag} {path}")
    _probe_writable(path, f"{flag} {path}")


def check_output_flags(args: Options) -> None:
    """Refuse bad output flags before anything runs."""
    prepare_output_file(args.report, "--report")
    prepare_output_file(args.summary, "--summary")
    prepare_output_file(args.junit, "--junit")
    prepare_output_file(args.html, "--html")
    files = (("--report", args.report), ("--summary", args.summary), ("--junit", args.junit), ("--html", args.html))
    given = [(f, p) for f, p in files if p]
    for i, (flag, path) in enumerate(given):
        twin = next((f for f, p in given[:i] if os.path.realpath(p) == os.path.realpath(path)), None)
        if twin:
            raise UsageError(f"{flag} {path} is also {twin}'s file: give each report its own file")
    prepare_output_folder(args.keep, "--keep")
    prepare_output_folder(args.pictures, "--pictures")
    if args.update_baseline and not args.baseline:
        raise UsageError("--update-baseline needs --baseline DIR (where to write the goldens)")
    if args.missing_baseline == "write" and not args.baseline:
        raise UsageError("--missing-baseline write needs --baseline DIR (where to write the goldens)")
    if args.missing_baseline == "write" and args.update_baseline:
        raise UsageError(
            "--missing-baseline write and --update-baseline: the second rewrites every golden; give one of them"
        )
    if args.baseline_root is not None and not args.baseline:
        raise UsageError("--baseline-root needs --baseline DIR")
    if args.baseline is not None:
        prepare_output_folder(args.baseline, "--baseline")
