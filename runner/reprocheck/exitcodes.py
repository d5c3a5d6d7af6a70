"""The exit codes: the contract with CI scripts and the Action. When several apply, the highest wins."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # every check reproducible within tolerance
    MISMATCH = 1  # outputs differ between runs, or drifted from the baseline; nothing else
    USAGE = 2  # the spec or the command line is invalid; nothing was run
    RUN_FAILED = 3  # a run failed: the model raised, crashed, was killed or timed out
    INTERNAL = 4  # reprocheck itself failed (a bug): one line and the path of a crash log
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM (128 + SIGTERM)
