"""A progress line for long stretches: while one thing (a run, a variant, the float64 reference, the verdict) takes
more than a few seconds, say what is running and for how long. On a terminal one line updates in place; in logs
(CI, the Action's folded group) a line every INTERVAL seconds. The checks name each stretch on the session's
`Progress`; a `Ticker` (started by the command, never with -q) does the talking."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ...spec import LoadedCheck
    from ..workers.run_result import RunResult

QUIET_FOR = 5.0  # seconds before a stretch is worth a word
INTERVAL = 10.0  # seconds between lines in a log


class Progress:
    """What the checks say as they go: a check started, a run ended, and what is running now (a run, a variant,
    the float64 reference, the verdict) for a Ticker to tell. This one prints nothing itself; the command line's
    own (commands/common.py) prints the lines. Thread-safe: the Ticker reads it from its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[str, float] | None = None  # what is running now, since when (None: nothing to tell)

    def phase(self, text: str | None) -> None:
        """What is running from now on (None: nothing worth a progress line)."""
        with self._lock:
            self._current = (text, time.monotonic()) if text else None

    def current(self) -> tuple[str, float] | None:
        with self._lock:
            return self._current

    def check_started(self, index: int, total: int, lc: LoadedCheck) -> None:
        self.phase(f"{lc.name}: run 1/{lc.check.runs}")

    def run_ended(self, lc: LoadedCheck, run: RunResult) -> None:
        nxt = run.index + 1
        self.phase(f"{lc.name}: run {nxt}/{lc.check.runs}" if run.ok and nxt <= lc.check.runs else None)


class Ticker:
    """Tells what `progress` says is running, once it has run QUIET_FOR seconds (a context manager)."""

    def __init__(self, stream: TextIO, progress: Progress) -> None:
        self.stream, self.progress = stream, progress
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._shown = ""  # the updating line now on a terminal

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.clear()
        self.progress.phase(None)

    def clear(self) -> None:
        """Take the updating line away (before other output, on a terminal)."""
        if self.tty and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = ""

    def _loop(self) -> None:
        last: dict[str, float] = {}
        while not self._stop.wait(1.0):
            current = self.progress.current()
            if current is None:
                self.clear()
                continue
            text, since = current
            elapsed = time.monotonic() - since
            if elapsed < QUIET_FOR:
                continue
            line = f"      ... {text}: {elapsed:.0f}s"
            if self.tty:
                self.stream.write("\r\033[K" + line)
                self._shown = line
            elif time.monotonic() - last.get(text + str(since), 0.0) >= INTERVAL:
                last[text + str(since)] = time.monotonic()
                self.stream.write(line + "\n")
            else:
                continue
            self.stream.flush()
