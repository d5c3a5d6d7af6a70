"""GitHub Actions I/O: workflow commands, step outputs, the step summary. Standard library only.

`reprocheck run --github` (what action.yml runs inside the container) uses these to:
  * append the Markdown report to $GITHUB_STEP_SUMMARY, capped under GitHub's 1 MiB;
  * write the step outputs (result, failed-checks, max-abs-diff, report, written-baselines) to $GITHUB_OUTPUT,
    multiline-safe with a random delimiter;
  * print one `::error file=SPEC,line=N,title=...::` per failing check (at most 10, then one summary).
Escaping follows the runner's workflow-command rules: data escapes % CR LF; properties also : and ,.
Everything else printed under --github is neutralised, so text from a model (an exception message,
an output key) can never be read as a workflow command: a line starting with `::` (after spaces)
gets a backslash before it, and `##[` (the legacy form) becomes `#\\#[` wherever it stands. Our own
commands go out through `emit`, which alone bypasses that.
"""

from __future__ import annotations

import atexit
import io
import os
import re
import secrets
import sys
from pathlib import Path
from typing import TextIO

MAX_ANNOTATIONS = 10  # GitHub shows at most 10 error annotations per step
SUMMARY_LIMIT = 1024 * 1024  # bytes GitHub accepts per step summary


_COMMAND_START = re.compile(r"^(\s*)::")


def neutralise(text: str) -> str:
    """Text that the runner will show but never act on."""
    lines = text.replace("##[", "#\\#[").split("\n")
    return "\n".join(_COMMAND_START.sub(r"\1\\::", line) for line in lines)


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A").replace("##[", "#\\#[")


class NeutralisedStream(io.TextIOBase):
    """Wraps stdout/stderr under --github: whole lines are neutralised on their way out."""

    def __init__(self, raw: TextIO) -> None:
        self.raw, self.pending = raw, ""
        atexit.register(self.close_pending)

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).replace("\r", "\n").split("\n")
        for line in lines:
            self.raw.write(neutralise(line) + "\n")
        return len(text)

    def flush(self) -> None:
        self.raw.flush()  # a partial line waits for its end: split writes must not smuggle `::` through

    def close_pending(self) -> None:
        if self.pending:
            self.raw.write(neutralise(self.pending) + "\n")
            self.pending = ""
        self.raw.flush()

    def emit(self, line: str) -> None:
        self.close_pending()
        self.raw.write(line + "\n")
        self.raw.flush()

    def isatty(self) -> bool:
        return False


def guard_streams() -> None:
    """Under --github: from here on, only `emit` can print a workflow command."""
    if not isinstance(sys.stdout, NeutralisedStream):
        sys.stdout = NeutralisedStream(sys.stdout)
    if not isinstance(sys.stderr, NeutralisedStream):
        sys.stderr = NeutralisedStream(sys.stderr)


def emit(line: str) -> None:
    """Print one of our own workflow commands (built by `command`)."""
    if isinstance(sys.stdout, NeutralisedStream):
        sys.stdout.emit(line)
    else:
        print(line, flush=True)


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str | int | None) -> str:
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items() if v is not None)
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def error_annotations(failures: list[tuple[str, int, str, str]], level: str = "error") -> list[str]:
    """(file, line, title, message) per failing check -> workflow commands, capped with a summary line."""
    lines = [
        command(level, msg, file=file, line=line, title=title) for file, line, title, msg in failures[:MAX_ANNOTATIONS]
    ]
    if len(failures) > MAX_ANNOTATIONS:
        rest = failures[MAX_ANNOTATIONS:]
        names = ", ".join(t for _, _, t, _ in rest)
        what = "warnings" if level == "warning" else "failing checks"
        lines.append(command(level, f"{len(rest)} more {what}: {names}", title="reprocheck"))
    return lines


def output_lines(name: str, value: str) -> str:
    """One output for $GITHUB_OUTPUT; multiline values use a random delimiter that the value cannot contain."""
    if "\n" not in value and "\r" not in value:
        return f"{name}={value}\n"
    while True:
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        if delimiter not in value:
            return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


# Every step output, as a run that could not judge anything leaves them.
# (max-abs-diff "none": nothing was measured, as report/annotate.py writes it.)
ERROR_OUTPUTS = {"result": "error", "failed-checks": "", "max-abs-diff": "none", "report": "", "written-baselines": ""}


def write_outputs(values: dict[str, str], path: str | None = None) -> None:
    path = path or os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for name, value in values.items():
            f.write(output_lines(name, value))


def cap_summary(markdown: str, limit: int = SUMMARY_LIMIT) -> str:
    data = markdown.encode()
    if len(data) <= limit:
        return markdown
    note = "\n\n_Summary cut to stay under GitHub's 1 MiB limit; see the JSON report._\n"
    keep = data[: limit - len(note.encode()) - 4].decode(errors="ignore")
    return keep[: keep.rfind("\n") + 1] + note


def append_summary(markdown: str, path: str | None = None) -> None:
    path = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    existing = Path(path).stat().st_size if Path(path).exists() else 0
    with open(path, "a", encoding="utf-8") as f:
        f.write(cap_summary(markdown, max(0, SUMMARY_LIMIT - existing)))


def workspace_relative(path: str | Path) -> str:
    """Annotations need paths relative to the repository checkout."""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    p = Path(path).resolve()
    if workspace:
        try:
            return str(p.relative_to(Path(workspace).resolve()))
        except ValueError:
            pass
    return str(path)


def begin_group(title: str) -> None:
    """Fold what follows in the log, until end_group()."""
    emit(command("group", title))


def end_group() -> None:
    emit("::endgroup::")
