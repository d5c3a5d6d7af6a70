"""Spec errors: each one located (`file:line: key: what is wrong (fix)`), all of a file's reported at once."""

from __future__ import annotations

from pathlib import Path


class SpecError(Exception):
    """One located problem in a spec file: `file:line: key: what is wrong (fix)`."""

    def __init__(self, file: str | Path, line: int | None, key: str, message: str) -> None:
        self.file, self.line, self.key, self.message = str(file), line, key, message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class SpecErrors(Exception):
    """Every problem found in one or more spec files, in file order."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
