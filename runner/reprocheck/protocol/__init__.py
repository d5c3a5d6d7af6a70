"""Every message between reprocheck's own process (host/) and the torch side (worker/), as declared models.

Both sides import this package and nothing else crosses the boundary: a message is written with `to_json` (or
`write`) and read with `from_json` (or `read`), validated when read, so a renamed field fails a type check or a
test, never a user. The helper calls are one table (`OPS`: the op, its request, its answer); the zygote's stream
is `VariantOp | Call` on its stdin and `Event` on its stdout. The value objects of results.py, golden_result.py and
diagnosis.py travel as they are (pydantic validates their dataclasses field by field).

base.py     Message (to_json/from_json, write/read), ProtocolError, Answer (an answer file)
runs.py     names checked before anything runs, RunJob, VariantChanges, RunReport (result.json)
calls.py    each helper op's request and answer, and OPS
streams.py  the zygote's and the served helper's lines: Call, VariantOp, events
"""

from .base import Answer, Message, ProtocolError
from .calls import (
    OPS,
    CompareAnswer,
    CompareRequest,
    Distance,
    Distances,
    DistancesRequest,
    DrawAnswer,
    DrawRequest,
    FingerprintAnswer,
    FingerprintRequest,
    GoldenJob,
    GradedCheck,
    GradedOutput,
    GradeJob,
    GradeRequest,
    Grades,
    Op,
    RuleProblem,
    RunRef,
    ScaffoldAnswer,
    ScaffoldRequest,
    TracesAnswer,
    TracesRequest,
    VerdictAnswer,
    VerdictRequest,
    op_of,
)
from .runs import (
    Capture,
    NameProblem,
    NameProblems,
    NameRequest,
    NameRequests,
    RunJob,
    RunReport,
    TraceJob,
    VariantChanges,
    worker_check,
)
from .streams import (
    COMMAND,
    EVENT,
    AnsweredEvent,
    Call,
    Event,
    ReadyEvent,
    RunEvent,
    VariantOp,
    read_command,
    read_event,
)

__all__ = [
    "COMMAND",
    "EVENT",
    "OPS",
    "Answer",
    "AnsweredEvent",
    "Call",
    "Capture",
    "CompareAnswer",
    "CompareRequest",
    "Distance",
    "Distances",
    "DistancesRequest",
    "DrawAnswer",
    "DrawRequest",
    "Event",
    "FingerprintAnswer",
    "FingerprintRequest",
    "GoldenJob",
    "GradeJob",
    "GradeRequest",
    "GradedCheck",
    "GradedOutput",
    "Grades",
    "Message",
    "NameProblem",
    "NameProblems",
    "NameRequest",
    "NameRequests",
    "Op",
    "ProtocolError",
    "ReadyEvent",
    "RuleProblem",
    "RunEvent",
    "RunJob",
    "RunRef",
    "RunReport",
    "ScaffoldAnswer",
    "ScaffoldRequest",
    "TraceJob",
    "TracesAnswer",
    "TracesRequest",
    "VariantChanges",
    "VariantOp",
    "VerdictAnswer",
    "VerdictRequest",
    "op_of",
    "read_command",
    "read_event",
    "worker_check",
]
