"""Messages about runs: the names a worker checks before anything runs, the job a run gets, a variant's
changes to it, and what the run reports (RUN_DIR/result.json)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ..spec import Check, CompileSpec
from .base import Message


class NameRequest(Message):
    source: Literal["torchvision", "timm", "huggingface"] = "torchvision"
    model: str | None = None
    class_: str | None = Field(None, alias="class")  # a transformers class
    model_type: str | None = None
    config: dict[str, Any] | None = None  # a transformers config's keys, checked against its class
    path: str | None = None  # a transformers model folder (its config.json names the class the forward is read from)
    keywords: list[str] = []  # the check's keyword inputs, checked against the forward's parameters
    weights: Any = None  # as written in the spec: a non-string is refused by the worker, with its reason
    weights_backbone: Any = None
    compare: dict[str, Any] | None = None  # a torchvision check's `compare: outputs:`, checked against its family


class NameProblem(Message):
    index: int  # into the requests
    key: str  # torchvision, timm, huggingface[.class...], weights, weights_backbone, compare or input.kwargs.NAME
    message: str
    pattern: str | None = None  # the compare rule, for key "compare"


class NameRequests(Message):
    op: ClassVar[str] = "names"
    requests: list[NameRequest]


class NameProblems(Message):
    problems: list[NameProblem] = []


# -- one run


def worker_check(check: Check) -> Check:
    """The check as a worker gets it: a worker does one run whatever the count, and a variant's count (1) would
    not validate as a spec's."""
    return check.model_copy(update={"runs": Check.model_fields["runs"].default})


# What a traced run leaves in its folder (worker/probe.py writes them; diagnose and upgrade find them).
TRACE_FILE = "trace.jsonl"
META_FILE = "trace-meta.json"
CAPTURE_FILE = "capture.pt"


class Capture(Message):
    """A targeted re-run keeps these tensors and nothing else: one module call's output and one op's outputs."""

    module: str | None = None  # dotted path ("" the model itself)
    module_call: int = 1  # 1: the module's first call in the forward
    op: int | None = None  # the op's place among all the forward's ops (0-based)


class TraceJob(Message):
    """What a traced run records (diagnose, upgrade): fingerprints of each module's output and, with `ops`, of each
    aten op's; or, with `capture`, the tensors a targeted re-run keeps."""

    ops: bool = True
    max_mb: int = 256  # the trace file's cap: past it, recording stops and the trace says so
    capture: Capture | None = None


class RunJob(Message):
    """What a worker runs: the check (through `worker_check`), from where, and how."""

    check: Check
    base_dir: str  # the spec's folder: relative paths resolve from it
    threads: int
    trace: TraceJob | None = None  # fingerprints of each module's and op's output (diagnose, upgrade)
    input_seed: int | None = None  # the input's own seed, where it differs from the check's (diagnose)
    names: list[NameRequest] = []  # the zygote answers these while it waits for "go"
    batch: int | None = None  # an invariance variant: the input at this batch size
    float64: bool = False  # the float64 reference: model and floating inputs in float64
    dtype: str | None = None  # a dtype variant: model and floating inputs in this dtype
    autocast: str | None = None  # an autocast variant: torch.autocast(device, this dtype) around the forward
    compile: CompileSpec | None = None  # a compile variant: the model under torch.compile
    fold: bool = False  # fork mode: compare each later run with run 1 as it ends, and delete its outputs


class VariantChanges(Message):
    """What a variant changes in its check's job: the check itself (device, runs), the batch, float64, a dtype,
    autocast, compile."""

    check: Check
    batch: int | None = None
    float64: bool = False
    dtype: str | None = None
    autocast: str | None = None
    compile: CompileSpec | None = None

    def applied(self, job: RunJob) -> RunJob:
        return job.model_copy(update={**dict(self), "names": [], "fold": False})


class RunReport(Message):
    """RUN_DIR/result.json: how one run went, written by the run itself."""

    ok: bool
    timings: dict[str, float] = {}
    # a run that worked
    device: str | None = None
    warnings: list[str] = []
    notes: list[str] = []  # said beside the verdict (weights that are not the published file)
    samples: int | None = None  # the input's batch size, where it has one
    facts: dict[str, float] = {}  # the model's decision thresholds
    ignored: list[str] = []
    ignore_unmatched: list[str] = []
    every_path: list[str] = []
    constants: dict[str, str] = {}
    fingerprint: dict[str, Any] | None = None
    compiled: dict[str, Any] | None = None  # a compile variant: its settings, time, graph breaks
    # a run that raised
    stage: str | None = None
    error: str = ""
    traceback: list[str] = []
    hint: str | None = None
    unavailable: bool = False  # its device is not on this machine
