"""The JSON report's shape, declared once. `json_report` validates every report against these models
before writing it, and `reprocheck schema --report` prints their JSON Schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Non-finite numbers are written as strings: JSON has no Infinity or NaN.
Num = float | Literal["inf", "-inf", "nan"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToleranceUsed(_Model):
    atol: float
    rtol: float
    pattern: str | None = Field(description="the per-output glob that supplied it; null: the check's own")


class PassingTolerance(_Model):
    atol: Num | None
    rtol: Num | None


class Output(_Model):
    """One output leaf (or container) compared between two runs; the worst over all runs."""

    path: str = Field(description="the leaf's output path, e.g. 0.boxes")
    status: Literal["match", "values", "structure"]
    shape: list[int]
    dtype: str
    total: int
    mismatched: int
    mismatch_percent: float
    max_abs_diff: Num
    max_rel_diff: Num
    mean_abs_diff: Num
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
    status: Literal["match", "drift", "missing", "updated", "not-updated"]
    golden: str
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


class Variant(_Model):
    """An invariance variant (the check run once with one thing changed) compared with the check's run 1."""

    kind: Literal["batch", "threads", "device"]
    variant: str = Field(description="the changed setting: a batch size, a thread count")
    reference: str = Field(description="the check's own setting")
    status: Literal["pass", "fail", "error", "skipped"]
    cause: str = Field(description="why the variant's run failed (error), or was skipped (its device is not here)")
    left_out: list[str] = Field(description="batch: outputs that are not per-sample, so not compared")
    reference_distances: list[ReferenceDistance] = Field(
        description="for differing outputs: each side's max abs distance from a float64 CPU run"
    )
    outputs: list[Output]


class Check(_Model):
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
    flake: Flake | None = Field(description="null with two runs")
    invariance: list[Variant]
    baseline: Baseline | None


class Summary(_Model):
    checks: int
    # `pass` is a keyword in Python: the field keeps the JSON name through an alias.
    passed: int = Field(alias="pass")
    fail: int
    error: int


class Report(_Model):
    """reprocheck's JSON report (`--report FILE`), schema_version 1."""

    model_config = ConfigDict(extra="forbid", title="reprocheck report (schema_version 1)")
    tool: Literal["reprocheck"]
    version: str
    schema_version: Literal[1]
    exit_code: int
    summary: Summary
    checks: list[Check]


def json_schema() -> dict[str, Any]:
    schema = Report.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
