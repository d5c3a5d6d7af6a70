"""A progress line for long stretches: while one thing (a run, a variant, the float64 reference, the verdict) takes
more than a few seconds, say what is running and for how long. On a terminal one line updates in place; in logs
(CI, the Action's folded group) a line every INTERVAL seconds. The pipeline names each stretch with `phase()`;
`Ticker` (started by the command, never with -q) does the talking."""

from __future__ import annotations

import threading
import time
from typing import TextIO

QUIET_FOR = 5.0  # seconds before a stretch is worth a word
INTERVAL = 10.0  # seconds between lines in a log

_lock = threading.Lock()
_current: list[tuple[str, float]] = []  # what is running now, and since when (empty: nothing worth a word)


def phase(text: str | None) -> None:
    """What is running from now on (None: nothing worth a progress line)."""
    with _lock:
        _current[:] = [(text, time.monotonic())] if text else []


class Ticker:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
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
        phase(None)

    def clear(self) -> None:
        """Take the updating line away (before other output, on a terminal)."""
        if self.tty and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = ""

    def _loop(self) -> None:
        last: dict[str, float] = {}
        while not self._stop.wait(1.0):
            with _lock:
                current = list(_current)
            if not current:
                self.clear()
                continue
            text, since = current[0]
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
