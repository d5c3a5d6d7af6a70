"""The base of every message: a frozen, closed model with one way in and one way out, and the answer envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..files import atomic_write_text

M = TypeVar("M", bound="Message")


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
        return cls.from_json(path.read_bytes())


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
