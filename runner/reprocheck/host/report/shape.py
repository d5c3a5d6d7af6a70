"""Every JSON file reprocheck writes, declared once: the run report (`--report`), the diagnosis (`diagnose
--report`), the calibration (`calibrate --report`) and the upgrade report (`upgrade --report`). Each is built as
these models (json_report.py, upgrade.py, ../analyses/calibrate.py), so what is declared is what is written;
`reprocheck schema --report` prints the run report's JSON Schema, and `upgrade` reads each side's report back with
`Report`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Non-finite numbers are written as strings: JSON has no Infinity or NaN.
# int first: a count stays a whole number (smart-mode unions keep the input's own type).
Num = int | float | Literal["inf", "-inf", "nan"]


class _Model(BaseModel):
    # Fields named like keywords (`pass`, `from`) are built by their Python name and written by their alias.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ToleranceUsed(_Model):
    atol: float
    rtol: float
    pattern: str | None = Field(description="the per-output glob that supplied it; null: the check's own")


class PassingTolerance(_Model):
    atol: Num | None
    rtol: Num | None


class Detection(_Model):
    index: int = Field(description="its position in that run's output")
    label: int | None
    score: Num | None
    box: list[Num] = Field(description="x1, y1, x2, y2")
    best_iou: Num | None = Field(None, description="missing/extra: the closest unmatched detection of the other run")
    to: int | None = Field(None, description="label changes: the other run's label")
    obtained_index: int | None = None
    obtained_score: Num | None = None
    iou: Num | None = Field(None, description="label changes: the matched boxes' IoU")


class DetectionStats(_Model):
    expected: int = Field(description="detections in the expected run (run 1, or the baseline)")
    obtained: int
    matched: int = Field(description="one-to-one pairs with IoU >= iou (label changes included)")
    iou: float
    score_atol: float
    missing_count: int
    extra_count: int
    label_change_count: int
    missing: list[Detection] = Field(description="expected only; the first 20")
    extra: list[Detection] = Field(description="obtained only; the first 20")
    label_changes: list[Detection] = Field(description="matched boxes with another label; the first 20")
    max_score_diff: Num | None = Field(
        description="the largest score difference between matched detections; null: none"
    )
    max_box_shift: Num | None = Field(None, description="pixels, over matched pairs")
    min_iou: Num | None = None
    score_change_count: int | None = None
    score_changes: list[Detection] | None = Field(None, description="matched pairs with scores beyond score_atol")
    masks: dict[str, Num] | None = Field(None, description="min_iou, threshold, changed")
    keypoints: dict[str, Num] | None = Field(
        None, description="max_shift (pixels), atol, changed, visibility_changed (keypoints with x, y, v)"
    )
    keypoint_scores: dict[str, Num] | None = Field(None, description="max_diff, changed")
    changed_pair_count: int = Field(description="matched pairs that changed (label, score, mask, keypoints), each once")
    score_scale: Num | None = Field(description="the largest |score| of either run; null: no scores")
    iou_needed: Num | None = Field(
        description="the iou (0.5 or more) at which the missing and extra detections would all match with their "
        "labels; null: at none"
    )


class ClassChange(_Model):
    sample: list[int] = Field(description="the sample's index over the non-class dimensions")
    rank: int | None = Field(description="the first rank (1 = top-1) whose class differs; null: the classes agree")
    from_: int = Field(alias="from")
    to: int
    expected_top: list[int]
    obtained_top: list[int]
    margin: Num | None = Field(description="the expected run's score gap between that rank and the next")
    why: Literal["nan", "score"] | None = Field(
        None, description="same classes, but NaN in one run only, or a score beyond score_atol"
    )
    score_diff: Num | None = Field(None, description="the sample's largest score difference")


class ClassificationStats(_Model):
    samples: int
    classes: int
    top_k: int
    changed_count: int = Field(description="samples that changed (their classes, NaN in one run only, or scores)")
    class_change_count: int = Field(description="of them, samples whose top-k classes changed")
    nan_change_count: int = Field(description="samples with NaN in one run only")
    changed: list[ClassChange] = Field(description="the first 20")
    max_score_diff: Num | None = Field(description="the largest score difference of any sample; null: no sample")
    score_atol: float | None = Field(None, description="the bound on every score; null: only the classes count")


class ClassIou(_Model):
    class_: int = Field(alias="class")
    iou: float
    expected_pixels: int
    obtained_pixels: int


class Region(_Model):
    sample: int
    rows: list[int] = Field(description="first and last row with a changed pixel")
    cols: list[int]
    pixels: int


class SegmentationStats(_Model):
    pixels: int
    changed_pixels: int
    agreement: float
    min_agreement: float
    class_iou: list[ClassIou] = Field(description="classes involved in changes, lowest IoU first")
    regions: list[Region] = Field(description="per sample with changes, the bounding box of the changed pixels")
    max_score_diff: Num | None = Field(
        None, description="the largest class-score difference; null for an integer label map (no scores)"
    )


class Task(_Model):
    """How a `compare:` rule judged this output."""

    task: Literal["detection", "classification", "segmentation"]
    pattern: str = Field(description="the compare glob that selected it")
    stats: DetectionStats | ClassificationStats | SegmentationStats


class Fragile(_Model):
    """Run 1's output matches, but sits on a decision boundary."""

    path: str
    task: Literal["detection", "classification", "segmentation"]
    reason: Literal["score-threshold", "nms", "top-k", "pixels"]
    count: int = Field(description="detections, box pairs, samples or pixels on the edge")
    margin: float
    threshold: float | None = Field(description="the score or NMS threshold, where one applies")
    items: list[dict[str, Any]] = Field(description="the closest cases, at most 10")
    message: str


class Output(_Model):
    """One output leaf (or container) compared between two runs; the worst over all runs."""

    path: str = Field(description="the leaf's output path, e.g. 0.boxes")
    status: Literal["match", "values", "structure"]
    shape: list[int] = Field(description="the expected run's shape; a detection output: [its detection count]")
    dtype: str
    unit: Literal["values", "detections", "samples", "pixels"] = Field(
        description="what total and mismatched count: values (compared elementwise), or what the output's compare "
        "rule judges: detections, samples or pixels"
    )
    total: int = Field(
        description="values; detections: every detection of either run, a matched pair once (expected + extra); "
        "samples; pixels"
    )
    mismatched: int = Field(
        description="of total, never more: values beyond tolerance; detections missing, extra, or in a matched pair "
        "that changed (label, score, mask, keypoints; a pair once); samples or pixels whose class changed"
    )
    mismatch_percent: float
    max_abs_diff: Num | None = Field(description="elementwise outputs; null for a task output (see max_matched_diff)")
    max_rel_diff: Num | None = Field(description="elementwise outputs; null for a task output")
    mean_abs_diff: Num | None = Field(description="elementwise outputs; null for a task output")
    max_matched_diff: Num | None = Field(
        description="task outputs: the largest value difference between matched items: a box coordinate (pixels) or "
        "a score of matched detections, a class score of any sample or pixel; null: nothing matched (every "
        "detection missing or extra), no scores (a label map), a structure change, or an elementwise output"
    )
    first_index: list[int] | None
    expected_value: Num | None
    obtained_value: Num | None
    nan_count: int = Field(description="NaNs at the same positions in both runs (counted as equal)")
    exact: bool = Field(description="integer/bool output, compared exactly")
    tolerance: ToleranceUsed
    passing_tolerance: PassingTolerance | None = Field(description="what would have passed; null: no tolerance would")
    runs: list[int] = Field(description="[expected run, obtained run]; 0 is the stored golden")
    detail: str
    runs_differing: int = Field(description="later runs in which this output differs from run 1")
    distinct_results: int = Field(description="distinct contents over all runs by hash; 0: not counted (two runs)")
    task: Task | None = Field(description="null: compared elementwise; else how its compare rule judged it")


class Flake(_Model):
    """With three runs or more: how often a later run differs from run 1."""

    runs_compared: int = Field(description="later runs, each compared with run 1")
    runs_differing: int
    rate: float
    interval: list[float] = Field(description="[low, high]; with no differing run, [0, the one-sided upper bound]")
    confidence: float
    method: str
    distinct_results: int = Field(description="distinct output sets over all runs, by content hash")
    statement: str


class Run(_Model):
    index: int
    status: Literal["ok", "error", "crashed", "timeout"]
    duration_s: float
    cause: str
    stage: str | None
    details: list[str]
    hint: str | None
    timings: dict[str, float]
    warnings: list[str]


class FingerprintDiff(_Model):
    field: str
    baseline: Any
    now: Any


class Baseline(_Model):
    status: Literal["match", "drift", "missing", "updated", "written", "not-updated"]
    golden: str = Field(description="the golden compared (or written)")
    key: str = Field(description="this machine's baseline key: cpu, cuda, cuda-sm90; empty for key: none")
    golden_key: str | None = Field(description="the key of the golden compared, empty for the keyless one; null: none")
    fallback: bool = Field(description="compared with a less specific golden than this machine's key")
    written: str | None = Field(description="this machine's golden, written by --missing-baseline write")
    obtained: str | None
    golden_created: str | None
    config_changed: bool
    message: str
    fingerprint_diff: list[FingerprintDiff]
    outputs: list[Output]


class ReferenceDistance(_Model):
    path: str
    expected: Num = Field(description="run 1's distance from the float64 reference")
    obtained: Num = Field(description="the variant's")


class Graded(_Model):
    path: str
    grade: Literal["identical", "noise", "task", "changed"]
    detail: str
    noise: list[dict[str, Any]] = Field(description="per differing leaf: each side's distance from float64")
    rule: str = Field(description="task-equivalent: the compare rule that calls them the same")
    accepted: bool = Field(description="the grade reaches --require")
    comparison: Output


class Variant(_Model):
    """An invariance variant (the check run once with one thing changed) compared with the check's run 1."""

    kind: Literal["batch", "threads", "device", "compile", "dtype", "autocast"]
    variant: str = Field(description="the changed setting: a batch size, a thread count, a dtype, a compile backend")
    reference: str = Field(description="the check's own setting")
    status: Literal["pass", "fail", "error", "skipped"]
    cause: str = Field(description="why the variant's run failed (error), or was skipped (its device is not here)")
    left_out: list[str] = Field(description="batch: outputs that are not per-sample, so not compared")
    ignored: list[str] = Field(description="outputs the spec's `ignore:` left out of every comparison")
    reference_distances: list[ReferenceDistance] = Field(
        description="for differing outputs: each side's max abs distance from a float64 CPU run"
    )
    outputs: list[Output]
    require: str | None = Field(
        None, description="compile, dtype, autocast: the grade each output must reach (identical, noise, task)"
    )
    grades: list[Graded] = Field(
        default_factory=list, description="compile, dtype, autocast: each output graded against run 1"
    )
    compiled: dict[str, Any] | None = Field(
        None, description="compile: backend, mode, the inductor settings applied, seconds, graph breaks, graphs"
    )
    compiled_runs: list[Output] = Field(
        default_factory=list, description="compile: its own runs (each compiled afresh) compared with each other"
    )
    compiled_reproducible: bool | None = Field(None, description="compile: whether its own runs agree")
    first_change: FirstDivergence | None = Field(
        None,
        description="threads, device, when they differ: where a traced run at each setting first differs (module, "
        "op, or where the op sequences part); null: not traced (batch, a pass) or not found (first_change_note)",
    )
    first_change_note: str = Field("", description="why the op that differs is not named, when it was looked for")


class PictureFile(_Model):
    file: str = Field(description="its name inside the --pictures folder")
    output: str = Field(description="the output path it shows; '' for none in particular")
    caption: str


class CheckReport(_Model):
    name: str
    file: str
    line: int
    status: Literal["pass", "fail", "error"]
    seed: int
    device: str
    runs_requested: int
    config_hash: str
    duration_s: float
    recipe: dict[str, Any] = Field(description="the recipe as applied")
    runs: list[Run]
    outputs: list[Output]
    fingerprint: dict[str, Any] | None = Field(description="the environment (torch, CUDA, cuDNN, GPU, CPU, flags)")
    notes: list[str]
    ignored: list[str] = Field(description="outputs `ignore:` left out of every comparison")
    blind: list[str] = Field(description="compared outputs constant in every run: the check cannot see a change")
    flake: Flake | None = Field(description="null with two runs")
    invariance: list[Variant]
    baseline: Baseline | None
    fragile: list[Fragile] = Field(description="outputs on a decision boundary (compare.fragile)")
    fragile_policy: Literal["warn", "fail", "off"]
    error: str = Field(description="why the runs could not be judged (a compare rule that fits no output); '' if none")
    pictures: list[PictureFile] = Field(description="--pictures: what differs, drawn; empty without the flag")


class Summary(_Model):
    checks: int
    # `pass` is a keyword in Python: the field keeps the JSON name through an alias.
    passed: int = Field(alias="pass")
    fail: int
    error: int


class Report(_Model):
    """reprocheck's JSON report (`--report FILE`), schema_version 2 (2: outputs carry `unit` and `max_matched_diff`;
    a task output's counts are detections, samples or pixels, and its elementwise statistics null)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, title="reprocheck report (schema_version 2)")
    tool: Literal["reprocheck"]
    version: str
    schema_version: Literal[2]
    exit_code: int
    summary: Summary
    checks: list[CheckReport]


class Compared(_Model):
    passed: bool
    outputs: list[Output]


class FirstOp(_Model):
    op: str = Field(description="aten::name.overload; '' where the runs part at a module's end")
    module: str = Field(description="the module it ran in; '' is the model itself")
    module_call: int = Field(description="which call of that module (1: its first in the forward)")
    index: int = Field(description="its place among the ops of that call (1: the first)")
    position: int = Field(description="its place among all the forward's aten ops (0-based)")
    location: str | None = Field(description="the model's source line that ran it; null: not recorded")
    parted: bool = Field(description="the runs' op sequences part here (the finding is where, not a value)")
    other: str = Field(description="with parted: what the other run ran here")
    detail: str
    output: Output | None = Field(description="its worst differing output, from the targeted re-run")


class FirstDivergence(_Model):
    found: bool = Field(description="a module's output differs; false: only op, detail or stopped say more")
    call: int = Field(description="the module's position in the order modules finished (0-based)")
    module_call: int = Field(description="which call of the module (1: its first in the forward)")
    module: str = Field(description="dotted path; '' is the model itself")
    type: str
    detail: str
    output: Output | None = Field(description="the worst differing leaf of that module's output (targeted re-run)")
    op: FirstOp | None = Field(description="the first aten op whose output differs, or where the sequences part")
    stopped: str = Field(description="why tracing stopped before the forward's end (a cap); '' when it did not")


class TrainingModule(_Model):
    module: str
    type: str


class SeedSensitivity(_Model):
    sensitive: bool
    other_seed: int
    causes: list[str]
    training_modules: list[TrainingModule] = Field(description="in training mode during forward")
    random_parameters: list[str] = Field(description="change with the seed: randomly initialised, not loaded")
    parameters_total: int
    comparison: Compared | None


class Ablation(_Model):
    knob: str
    description: str
    effect: Literal["breaks", "no-effect", "fixes", "still-differs"]
    breaks: bool
    error: str | None
    comparison: Compared | None


class Diagnosed(_Model):
    name: str
    file: str
    line: int
    seed: int = Field(description="the seed the check ran with")
    reproducible: bool | None = Field(description="under the check's own recipe; null: its runs failed")
    error: str | None
    comparison: Compared | None
    first_divergence: FirstDivergence | None
    seed_sensitivity: SeedSensitivity | None
    ablations: list[Ablation]
    nondeterministic_ops: list[str]
    not_varied: list[str] = Field(description="recipe parts not varied, and why (cuDNN and TF32 on a CPU)")
    pictures: list[PictureFile] = Field(description="--pictures: the two traced runs' difference, drawn")


class DiagnosisReport(_Model):
    """`reprocheck diagnose --report FILE`, schema_version 2 (its outputs as the run report's; the first divergence
    is the first bitwise difference in the traces, with its op, and its numbers come from a targeted re-run)."""

    tool: Literal["reprocheck"]
    version: str
    schema_version: Literal[2]
    kind: Literal["diagnose"]
    checks: list[Diagnosed]


class UpgradedCheck(_Model):
    name: str
    file: str
    line: int
    seed: int = Field(description="the seed the check ran with, on both stacks")
    verdict: Literal["safe", "changed", "not-reproducible", "error"]
    message: str
    notes: list[str]
    outputs: list[Graded]
    first_change: FirstDivergence | None = Field(
        description="where a traced run on each stack first differs (the op that changed, or where the op "
        "sequences part); null: every output identical, or no traced run on both stacks (a note says why)"
    )
    pictures: list[PictureFile] = Field(description="--pictures: what changed between the stacks, drawn")


class StackDifference(_Model):
    field: str
    from_: Any = Field(alias="from")
    to: Any


class Noise(_Model):
    k: float
    ulps: float


class Fingerprints(_Model):
    from_: dict[str, Any] = Field(alias="from")
    to: dict[str, Any]


class UpgradeReport(_Model):
    """`reprocheck upgrade --report FILE`, schema_version 2 (its outputs as the run report's)."""

    tool: Literal["reprocheck"]
    version: str
    schema_version: Literal[2]
    kind: Literal["upgrade"]
    exit_code: int
    from_: str = Field(alias="from")
    to: str
    require: str
    noise: Noise
    verdict: Literal["safe", "not-safe"]
    fingerprints: Fingerprints
    fingerprint_diff: list[StackDifference]
    checks: list[UpgradedCheck]


class Tolerances(_Model):
    atol: float = Field(description="check-wide")
    outputs: dict[str, dict[str, float]] = Field(description="per output far above the rest: {path: {atol}}")


class Observed(_Model):
    block: Literal["tolerance", "invariance"]
    path: str
    max_abs_diff: Num = Field(description="the largest absolute difference observed")
    where: str = Field(description='"runs", or the variant it was observed in, e.g. "batch=1"')
    floor: float = Field(description="the dtype's resolution at the output's scale: no suggestion is below it")
    atol: float = Field(description="the suggestion")


class Calibrated(_Model):
    check: str
    file: str
    seed: int = Field(description="the seed the runs used")
    runs: int
    variants: list[str]
    safety: float = Field(description="the margin: times the largest difference observed")
    possible: bool = Field(description="false: no tolerance makes the check pass (see impossible)")
    impossible: list[str]
    tolerance: Tolerances | None
    invariance_tolerance: Tolerances | None
    observed: list[Observed]


class CalibrationReport(_Model):
    """`reprocheck calibrate --report FILE`, schema_version 1."""

    tool: Literal["reprocheck"]
    version: str
    schema_version: Literal[1]
    kind: Literal["calibrate"]
    checks: list[Calibrated]


def written(model: BaseModel) -> str:
    """A report as its file holds it: by alias, non-finite numbers as strings (JSON has no NaN), indented."""
    import json
    import math

    def finite(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [finite(v) for v in x]
        return x

    return json.dumps(finite(model.model_dump(by_alias=True, exclude_unset=True)), indent=2) + "\n"


def json_schema() -> dict[str, Any]:
    schema = Report.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
