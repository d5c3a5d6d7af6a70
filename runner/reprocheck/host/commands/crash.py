"""How reprocheck ends when it did not finish: SIGTERM unwinds like Ctrl-C, a closed stdout stops quietly, and a
bug of its own (exit 4) leaves a crash log and one line that says where, never a bare traceback."""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import tempfile
import traceback
from pathlib import Path

from ... import __version__
from ..exitcodes import ExitCode


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so clean-up (workers, temp folders) runs."""


def on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def _crash_log(exc: BaseException, argv: list[str]) -> Path | None:
    """Write the traceback where the user can find it; None when even that fails."""
    folder = Path(os.environ.get("REPROCHECK_CRASH_DIR") or tempfile.gettempdir())
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = (
        f"reprocheck {__version__} crashed at {stamp}\ncommand: reprocheck {' '.join(argv)}\n"
        f"python: {sys.version.split()[0]} on {sys.platform}\n\n"
        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"reprocheck-crash-{stamp}-", suffix=".log", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return Path(name)
    except OSError:
        return None


def internal_error(exc: BaseException, argv: list[str], github: bool) -> int:
    log = _crash_log(exc, argv)
    what = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    where = f"traceback in {log}" if log else "no crash log could be written"
    message = f"internal error ({what}); this is a bug in reprocheck, not in your model: {where}"
    if github:
        from .. import github as gh

        gh.emit(gh.command("error", message, title="reprocheck: internal error"))
        with contextlib.suppress(OSError):
            gh.write_outputs(gh.ERROR_OUTPUTS)
    print(f"reprocheck: {message}", file=sys.stderr)
    return int(ExitCode.INTERNAL)


def closed_stdout() -> int:
    """The reader went away (`reprocheck env | head`): stop quietly, as CLIs do, and keep Python's flush at
    exit from raising again on the dead pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return int(ExitCode.CLOSED_PIPE)
