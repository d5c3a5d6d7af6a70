"""`compare:`: outputs compared the way users judge them (detections, classes, masks) instead of elementwise,
and what to do with outputs that match but sit on a decision boundary (`fragile`). No torch here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, GetJsonSchemaHandler, model_validator

from .types import NonNegative, Number, Strict

TASKS = ("detection", "classification", "segmentation")

# The keys each task takes besides `as`; a key of another task is refused, naming the task it belongs to.
TASK_KEYS: dict[str, tuple[str, ...]] = {
    "detection": (
        "iou",
        "score_atol",
        "mask_iou",
        "keypoint_atol",
        "score_thresh",
        "nms_thresh",
        "score_margin",
        "nms_margin",
    ),
    "classification": ("top_k", "dim", "margin", "score_atol"),
    "segmentation": ("min_agreement", "dim", "margin"),
}

Fraction = Annotated[Number, Field(gt=0, le=1)]


def _keys_per_task(schema: dict[str, Any]) -> None:
    # JSON Schema form of "a key of another task is not allowed".
    rules = []
    for task in TASKS:
        others = {k for t, keys in TASK_KEYS.items() if t != task for k in keys} - set(TASK_KEYS[task])
        rules.append(
            {
                "if": {"properties": {"as": {"const": task}}},
                "then": {"properties": {k: False for k in sorted(others)}},
            }
        )
    schema["allOf"] = rules


class CompareRule(Strict):
    """How the outputs a glob selects are compared. Unset keys take their defaults (given per key)."""

    # `as` is a Python keyword: the field is `as_`, read and written (job files, dumps) as `as`.
    model_config = ConfigDict(serialize_by_alias=True, json_schema_extra=_keys_per_task)

    as_: Literal["detection", "classification", "segmentation"] = Field(
        alias="as",
        description="detection: a dict with boxes [N, 4] (scores, labels, masks, keypoints optional), matched "
        "one to one; classification: per sample, the same top-k classes in the same order; segmentation: per-pixel "
        "argmax over the class dim",
    )
    # detection
    iou: Fraction | None = Field(None, description="detection: a match needs IoU >= this (default 0.99)")
    score_atol: NonNegative | None = Field(
        None,
        description="detection: matched scores within this (default 1e-4); classification: every score within this "
        "too (default: only the classes are compared)",
    )
    mask_iou: Fraction | None = Field(None, description="detection: matched masks' IoU >= this (default: iou)")
    keypoint_atol: NonNegative | None = Field(
        None, description="detection: matched keypoints within this many pixels (default 1.0)"
    )
    score_thresh: Number | None = Field(
        None, description="detection: the score threshold, for fragility (default: the model's score_thresh)"
    )
    nms_thresh: Fraction | None = Field(
        None, description="detection: the NMS IoU threshold, for fragility (default: the model's nms_thresh)"
    )
    score_margin: NonNegative | None = Field(
        None, description="detection: a score this close to score_thresh is fragile (default: sqrt(eps) of the dtype)"
    )
    nms_margin: NonNegative | None = Field(
        None, description="detection: a same-label pair this close below nms_thresh is fragile (default: sqrt(eps))"
    )
    # classification
    top_k: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="classification: the top-k classes must match, in order (default 1)"
    )
    # classification, segmentation
    dim: Annotated[int, Field(ge=-16, le=15)] | None = Field(
        None, description="the class dimension (default: -1 for classification, -3 for segmentation)"
    )
    margin: NonNegative | None = Field(
        None,
        description="a top-1/top-2 gap below margin * max(1, |top-1|) is fragile (default: sqrt(eps) of the dtype)",
    )
    # segmentation
    min_agreement: Annotated[Number, Field(ge=0, le=1)] | None = Field(
        None, description="segmentation: the fraction of pixels whose class must match (default 1.0)"
    )

    @model_validator(mode="after")
    def _keys_of_its_task(self) -> CompareRule:
        task = self.as_
        for other, keys in TASK_KEYS.items():
            for key in keys:
                if other != task and key not in TASK_KEYS[task] and getattr(self, key) is not None:
                    raise ValueError(f"`{key}` applies to `as: {other}`, not `as: {task}`; remove it")
        return self


Pattern = Annotated[str, Field(min_length=1, max_length=1000)]


class _OffSchema:
    """In the JSON Schema, `off` may also be what YAML 1.1 reads for an unquoted off: false."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {"anyOf": [handler(core), {"const": False}]}


def _yaml_off(value: Any) -> Any:
    # YAML 1.1 (PyYAML) reads an unquoted `off` as false: the user wrote off.
    return "off" if value is False else value


Policy = Annotated[Literal["warn", "fail", "off"], BeforeValidator(_yaml_off), _OffSchema]


class CompareSpec(Strict):
    """Task-aware comparison: outputs a glob selects are compared as detections, classes or masks; the others stay
    elementwise (`tolerance:`)."""

    outputs: dict[Pattern, CompareRule] = Field(
        default_factory=dict,
        max_length=256,
        description="glob over output paths (containers too: `0`, `*` for a list of per-image dicts) -> rule; the "
        "first match wins (in a multi-check file, an entry's patterns are tried before the defaults')",
    )
    fragile: Policy = Field(
        "warn",
        description="outputs that match but sit on a decision boundary (a score at the threshold, a near-tie in "
        "NMS or top-k): warn, fail the check, or off",
    )
