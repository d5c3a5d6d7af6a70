"""The helper calls: each op's request and answer (the verdict, the float64 distances, the upgrade canary's
grades, diagnose's comparison and traces, the fingerprint, the pictures of --pictures), and the table of them
(`OPS`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ..diagnosis import Divergence
from ..golden_result import BaselineResult
from ..pictures import LIMIT, Picture
from ..results import Comparison, Fragile, OutputResult
from ..spec import Check, CompareSpec, ToleranceSpec
from .base import Message, ProtocolError
from .runs import NameProblems, NameRequests


class GoldenJob(Message):
    """What the torch side needs to check or write one check's golden (made by goldens.golden_job)."""

    golden: str  # the golden compared: the most specific that exists, else `target`
    target: str = ""  # this machine's own golden (its most specific key): written by update or write_missing
    key: str = ""  # this machine's most specific key ("" keyless)
    golden_key: str | None = None  # the key of the golden that exists; None: none exists
    write_missing: bool = False  # --missing-baseline write
    check: str
    config_hash: str
    seed: int
    tolerance: ToleranceSpec  # the check's `baseline:` tolerance, else its `tolerance:`
    regenerate: str  # the command that writes the golden
    update: bool
    compare: CompareSpec | None = None  # the check's `compare:`: task-aware drift


class RunRef(Message):
    index: int
    outputs: str


class VerdictRequest(Message):
    op: ClassVar[str] = "verdict"
    runs: list[RunRef]  # run 1 first: the expected one
    tolerance: ToleranceSpec
    compare: CompareSpec = CompareSpec()
    fragile: Literal["off", "warn", "fail"] = "off"
    facts: dict[str, float] = {}
    golden: GoldenJob | None = None
    fingerprint: dict[str, Any] | None = None
    all_ok: bool = True  # every run asked for worked (else no golden is written)
    discard: bool = False  # delete each later run's outputs once in memory
    batch: tuple[int, int] | None = None  # a batch variant: run 1's samples and the variant's


class RuleProblem(Message):
    """A `compare:` rule that fits no output: the spec is wrong for this model."""

    pattern: str
    message: str
    unfit: bool = False


class VerdictAnswer(Message):
    comparison: Comparison | None = None
    golden: BaselineResult | None = None
    left_out: list[str] = []  # a batch variant's outputs that are not per-sample
    root_ignored: bool = False  # `ignore:` took the whole output (the root): nothing is left to compare
    fragile: list[Fragile] = []
    notes: list[str] = []
    error: RuleProblem | None = None
    timeout: str = ""  # set by the host: the comparison ran past the check's timeout


class DistancesRequest(Message):
    op: ClassVar[str] = "distances"
    reference: str  # the float64 reference's outputs
    expected: str
    obtained: str
    batch: tuple[int, int] | None = None


class Distance(Message):
    """How far run 1 (expected) and a variant (obtained) each are from the float64 reference, for one output."""

    path: str
    expected: float
    obtained: float


class Distances(Message):
    items: list[Distance] = []


# -- the upgrade canary: two stacks' goldens graded


class GradeJob(Message):
    name: str
    from_: str = Field(alias="from")  # the old stack's golden
    to: str
    reference: str | None = None  # the old stack's float64 golden
    compare: CompareSpec = CompareSpec()
    tolerance: ToleranceSpec = ToleranceSpec()
    k: float
    ulps: float
    cast: bool = False  # a dtype or autocast variant: its floating tensors cast to the old side's dtypes first
    tolerance_name: str = "the check's tolerance"  # how a report names `tolerance`


class GradeRequest(Message):
    op: ClassVar[str] = "grade"
    checks: list[GradeJob]


class GradedOutput(Message):
    grade: Literal["identical", "noise", "task", "changed"]
    result: OutputResult
    noise: list[dict[str, Any]] = []  # per member tensor: the noise test's figures
    rule: str = ""  # what judged a "task" grade


class GradedCheck(Message):
    name: str
    outputs: list[GradedOutput] = []
    error: str = ""


class Grades(Message):
    checks: list[GradedCheck] = []


# -- diagnose, env


class CompareRequest(Message):
    op: ClassVar[str] = "compare"
    check: Check
    runs: list[str]  # outputs files, the expected first


class CompareAnswer(Message):
    comparison: Comparison | None = None
    rule_error: RuleProblem | None = None


class TracesRequest(Message):
    op: ClassVar[str] = "traces"
    runs: list[str]  # traced run folders
    tolerance: ToleranceSpec
    diverge: bool = False  # find the first module and op whose output differs between the first two
    captured: bool = False  # the runs are a targeted re-run's: compare what they kept


class TracesAnswer(Message):
    divergence: Divergence | None = None
    training: list[dict[str, str]] = []  # per trace: module path -> type, for those in training mode
    params: list[dict[str, str]] = []  # per trace: parameter name -> digest
    module_result: OutputResult | None = None  # captured: the module call's output compared
    op_result: OutputResult | None = None  # captured: the op's outputs compared
    capture_note: str = ""  # captured: what could not be compared, and why


class FingerprintRequest(Message):
    op: ClassVar[str] = "fingerprint"
    cuda: bool | None = None


class FingerprintAnswer(Message):
    fingerprint: dict[str, Any]
    cuda: list[str] = []  # with cuda: the CUDA preflight's facts and verdict, one line each
    cuda_usable: bool = True


class ScaffoldRequest(Message):
    """`reprocheck init`: a model named by its source, for the input that fits it."""

    op: ClassVar[str] = "scaffold"
    source: Literal["torchvision", "timm", "huggingface", "factory"]
    name: str  # the model, the transformers class or "module:callable"
    config: dict[str, Any] | None = None  # huggingface: the config (model_type and fields)
    path: str | None = None  # huggingface: a local model folder
    base_dir: str = "."  # factory: the folder its module is imported from


class ScaffoldAnswer(Message):
    problem: str | None = None  # why no spec can be written (an unknown name, a model that does not build)
    input: dict[str, Any] = {}  # the spec's `input:` mapping
    kwargs: dict[str, Any] = {}  # the spec's `model.kwargs`
    notes: list[str] = []  # comment lines for the spec


# -- --pictures


class DrawRequest(Message):
    """Draw what differs between two saved output sets (worker/pictures.py) into `folder`, from the files alone."""

    op: ClassVar[str] = "draw"
    folder: str  # an existing folder the host checked (never a symlink)
    prefix: str  # the pictures' file names start with it (pictures.safe_name: the check's place and name)
    expected: str  # run 1's outputs.pt, or a golden (.safetensors)
    obtained: str  # the other side's
    names: tuple[str, str] = ("run 1", "run 2")  # how the pictures name the two sides
    reference: str | None = None  # a float64 reference's outputs: each side's error against it is drawn
    check: Check | None = None  # its compare: rules, and its input (rebuilt, to draw boxes and masks on)
    input_seed: int | None = None  # the seed the input was built with (default the check's)
    paths: list[str] = []  # the outputs to draw (those the comparison found differing); empty: every one that differs
    limit: int = LIMIT


class DrawAnswer(Message):
    pictures: list[Picture] = []
    notes: list[str] = []  # what was not drawn, and why


# op -> (request, answer): the helper calls, served by `python -m reprocheck.worker --OP` and `--serve`.
OPS: dict[str, tuple[type[Message], type[Message]]] = {
    "names": (NameRequests, NameProblems),
    "verdict": (VerdictRequest, VerdictAnswer),
    "distances": (DistancesRequest, Distances),
    "grade": (GradeRequest, Grades),
    "fingerprint": (FingerprintRequest, FingerprintAnswer),
    "compare": (CompareRequest, CompareAnswer),
    "traces": (TracesRequest, TracesAnswer),
    "scaffold": (ScaffoldRequest, ScaffoldAnswer),
    "draw": (DrawRequest, DrawAnswer),
}
Op = Literal["names", "verdict", "distances", "grade", "fingerprint", "compare", "traces", "scaffold", "draw"]


def op_of(request: Message) -> str:
    op = getattr(type(request), "op", None)
    if not isinstance(op, str) or OPS.get(op, (None,))[0] is not type(request):
        raise ProtocolError(f"{type(request).__name__} is not a helper request")
    return op
