"""The spec's input models (what a model is called with: an image, a tensor file, a random tensor or keyword
inputs), and the JSON Schema helpers for "exactly one source" that the model and input keys share."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .types import MAX_DIM, MAX_ELEMENTS, Number, Strict, existing_file

INPUT_SOURCES = ("image", "tensor", "random", "kwargs")
Dtype = Literal["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def one_of(sources: tuple[str, ...]) -> list[dict[str, Any]]:
    # JSON Schema form of "exactly one source is given (and not null)".
    return [{"required": [k], "properties": {k: {"not": {"type": "null"}}}} for k in sources]


def absent_unless(key: str, others: tuple[str, ...], empty: dict[str, Any]) -> dict[str, Any]:
    # JSON Schema form of "`others` only go with a non-null `key`".
    return {
        "if": {"not": {"required": [key], "properties": {key: {"type": "string"}}}},
        "then": {"properties": {o: empty for o in others}},
    }


class RandomInput(Strict):
    """A seeded random tensor (its own generator, seeded from the check's seed)."""

    shape: list[Annotated[int, Field(ge=1, le=MAX_DIM)]] = Field(
        min_length=1, max_length=16, description="e.g. [1, 3, 224, 224]"
    )
    dtype: Dtype = "float32"
    distribution: Literal["uniform", "normal"] = "uniform"
    low: Number = Field(0.0, description="uniform/integer lower bound (inclusive)")
    high: Number = Field(1.0, description="uniform/integer upper bound (exclusive)")

    @field_validator("shape", mode="before")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        if isinstance(v, list) and any(isinstance(d, int) and not isinstance(d, bool) and d < 1 for d in v):
            raise ValueError(f"every dimension must be >= 1, got {v}")
        return v

    @field_validator("shape")
    @classmethod
    def _size(cls, v: list[int]) -> list[int]:
        if math.prod(v) > MAX_ELEMENTS:
            raise ValueError(f"{v} has {math.prod(v):,} elements, more than {MAX_ELEMENTS:,} (use a smaller input)")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> RandomInput:
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")
        return self


class Normalize(Strict):
    mean: list[Number] = Field(min_length=1, max_length=64)
    std: list[Number] = Field(min_length=1, max_length=64)


class InputSpec(Strict):
    """What the model is called with: exactly one source."""

    model_config = ConfigDict(
        json_schema_extra=lambda s: s.update(
            oneOf=one_of(INPUT_SOURCES), allOf=[absent_unless("image", ("resize", "normalize"), {"type": "null"})]
        )
    )

    image: str | None = Field(None, description="An image file, decoded to RGB and preprocessed.")
    tensor: str | None = Field(
        None,
        description=".pt (torch.load weights_only) or .npy/.npz (allow_pickle=False).",
        json_schema_extra={"pattern": r"\.(pt|pth|npy|npz)$"},
    )
    random: RandomInput | None = None
    kwargs: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], InputSpec] | None = Field(
        None,
        max_length=64,
        description="keyword arguments, each its own input source (image, tensor or random), e.g. input_ids",
    )
    format: Literal["auto", "tensor", "batch", "list"] = Field(
        "auto",
        description="auto: detection models get a list of CHW tensors, images get a batch of one, "
        "tensors are passed as they are; tensor/batch/list force one of these.",
    )
    resize: list[Annotated[int, Field(ge=1, le=16384)]] | None = Field(
        None, min_length=2, max_length=2, description="[height, width] (image only)"
    )
    normalize: Normalize | None = Field(None, description="mean/std per channel (image only)")

    _check_files = field_validator("image", "tensor")(existing_file)

    @field_validator("tensor")
    @classmethod
    def _tensor_suffix(cls, v: str | None) -> str | None:
        if v is not None and Path(v).suffix not in (".pt", ".pth", ".npy", ".npz"):
            raise ValueError(f"unsupported tensor file {Path(v).name} (use .pt, .pth, .npy or .npz)")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> InputSpec:
        given = [k for k in INPUT_SOURCES if getattr(self, k) is not None]
        if len(given) != 1:
            what = "no input source" if not given else "several input sources (" + ", ".join(given) + ")"
            raise ValueError(f"{what}; give exactly one of {', '.join(INPUT_SOURCES)}")
        if given[0] != "image" and (self.resize or self.normalize):
            raise ValueError("resize and normalize apply to image inputs only; remove them")
        for name, sub in (self.kwargs or {}).items():
            if sub.kwargs is not None:
                raise ValueError(f"kwargs.{name} holds kwargs: one level of keyword arguments only")
        return self

    @property
    def source(self) -> str:
        return next(k for k in INPUT_SOURCES if getattr(self, k) is not None)
