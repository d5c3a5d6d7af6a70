"""The zygote's and the served helper's streams, one JSON line each: commands on stdin (`VariantOp | Call`),
events on stdout (`Event`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from .base import Message, ProtocolError
from .calls import OPS, Op, op_of
from .runs import NameProblem, VariantChanges


class Call(Message):
    """A helper call on a stream: its request, and the file to answer in."""

    op: Op
    request: dict[str, Any]
    answer: str

    @classmethod
    def of(cls, request: Message, answer: Path) -> Call:
        return cls(op=op_of(request), request=request.model_dump(mode="json", by_alias=True), answer=str(answer))

    def parsed(self) -> Message:
        kind = OPS[self.op][0]
        try:
            return kind.model_validate(self.request)
        except ValidationError as exc:
            raise ProtocolError(f"a {kind.__name__} that does not fit its model: {exc}") from None


class VariantOp(Message):
    """Fork one variant run of the check, its job changed, into `dir`."""

    op: Literal["variant"] = "variant"
    dir: str
    changes: VariantChanges


class ReadyEvent(Message):
    event: Literal["ready"] = "ready"
    problems: list[NameProblem] = []  # the answers to the job's `names`


class RunEvent(Message):
    event: Literal["run"] = "run"
    dir: str
    returncode: int
    timed_out: bool
    duration: float


class AnsweredEvent(Message):
    event: Literal["answered"] = "answered"
    op: str


Event = Annotated[ReadyEvent | RunEvent | AnsweredEvent, Field(discriminator="event")]
EVENT: TypeAdapter[ReadyEvent | RunEvent | AnsweredEvent] = TypeAdapter(Event)
COMMAND: TypeAdapter[VariantOp | Call] = TypeAdapter(Annotated[VariantOp | Call, Field(discriminator="op")])


def read_event(line: str | bytes) -> ReadyEvent | RunEvent | AnsweredEvent:
    try:
        return EVENT.validate_json(line)
    except ValidationError as exc:
        raise ProtocolError(f"an event that does not fit its model: {exc}") from None


def read_command(line: str | bytes) -> VariantOp | Call:
    try:
        return COMMAND.validate_json(line)
    except ValidationError as exc:
        raise ProtocolError(f"a command that does not fit its model: {exc}") from None
