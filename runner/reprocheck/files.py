"""Files reprocheck writes for the user: atomically (readers never see half a file), never through a link or over
a device, with the mode any file the user creates gets."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent  # this reprocheck's package folder, wherever it is installed


class OutputTargetError(OSError):
    """A path the user asked us to write cannot be written safely (symlink, device, not writable)."""


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666  # less the umask, like any file the user creates


def refuse_special_target(path: Path) -> None:
    """Raise when `path` exists and is not a regular file: a symlink, FIFO, device or folder is never replaced."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise OutputTargetError(f"{path}: a parent is a file, not a folder") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputTargetError(f"{path}: is a symbolic link; name the real file (links are never replaced)")
    if stat.S_ISDIR(st.st_mode):
        raise OutputTargetError(f"{path}: is a folder (give a file name)")
    if not stat.S_ISREG(st.st_mode):
        raise OutputTargetError(f"{path}: is a FIFO, socket or device, not a regular file (give a file name)")


def atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """Call write(tmp_path) then rename over `path`: readers never see half a file.
    The file gets mode 0666 less the umask; a non-regular file at `path` is refused, never replaced."""
    refuse_special_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        refuse_special_target(path)  # created meanwhile?
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


class NotRegular(OSError):
    """A file that is not a regular file within its size (a link, a FIFO, a device, a folder, too large)."""


def open_regular(path: Path, limit: int) -> Any:
    """`path` opened for reading, only if it is a regular file (never followed through a link, never a FIFO that
    would block or a device that never ends) of at most `limit` bytes. Raises NotRegular (an OSError)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise NotRegular(f"{path.name}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        os.close(fd)
        raise NotRegular(f"{path.name} is not a regular file within {limit} bytes")
    return os.fdopen(fd, "rb")
