"""The base of every message: a frozen, closed model with one way in and one way out, and the answer envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..files import NotRegular, atomic_write_text, open_regular

M = TypeVar("M", bound="Message")
MAX_MESSAGE_BYTES = 1 << 30  # the largest message file read (a comparison of many outputs stays far below)


class ProtocolError(RuntimeError):
    """A message that does not fit its model: the two sides of reprocheck disagree (a bug, never the user's)."""


class Message(BaseModel):
    # Infinity and NaN travel as such: a diff can be infinite, a value NaN.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants", populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls: type[M], text: str | bytes) -> M:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ProtocolError(f"a {cls.__name__} that does not fit its model: {exc}") from None

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def read(cls: type[M], path: Path) -> M:
        """A message file, read only if it is a regular file within MAX_MESSAGE_BYTES: a run folder is the model's
        to write, and a FIFO, a link to /dev/zero or a folder there must be a misfit, never a hang."""
        try:
            with open_regular(path, MAX_MESSAGE_BYTES) as f:
                data = f.read()
        except NotRegular as exc:
            raise ProtocolError(f"a {cls.__name__} file that cannot be read: {exc}") from None
        return cls.from_json(data)


class Answer(Message):
    """An answer file: the op's answer (as its model dumps it), or why there is none."""

    ok: bool
    answer: dict[str, Any] | None = None
    error: str = ""

    def value(self, kind: type[M]) -> M:
        if not self.ok or self.answer is None:
            raise ProtocolError(self.error or "the worker failed")
        try:
            return kind.model_validate(self.answer)
        except ValidationError as exc:
            raise ProtocolError(f"a {kind.__name__} that does not fit its model: {exc}") from None
