"""The exit codes (the contract with CI scripts and the Action; when several apply, the highest wins),
and the error that means exit 2."""

from __future__ import annotations

import enum
from typing import Any


class ExitCode(enum.IntEnum):
    OK = 0  # every check reproducible within tolerance
    MISMATCH = 1  # outputs differ between runs, or drifted from the baseline; nothing else
    USAGE = 2  # the spec or the command line is invalid; nothing was run
    RUN_FAILED = 3  # a run failed: the model raised, crashed, was killed or timed out
    INTERNAL = 4  # reprocheck itself failed (a bug): one line and the path of a crash log
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM (128 + SIGTERM)
    CLOSED_PIPE = 141  # the reader of stdout went away, e.g. `| head` (128 + SIGPIPE)


class UsageError(Exception):
    """A bad command line or spec: one message per line, exit 2, no traceback."""

    def __init__(self, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []  # the SpecErrors behind it, for annotations
