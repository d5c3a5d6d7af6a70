"""The building blocks of the spec's models: numbers as YAML writes them (finite only), the limits that
keep a hostile spec from exhausting the machine, strict models, file checks."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetJsonSchemaHandler, ValidationInfo

_YAML11_FLOAT = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")


def _yaml_float(value: Any) -> Any:
    # YAML 1.1 (PyYAML) reads `1e-4` as a string: only `1.0e-4` is a float. Users mean the number.
    if isinstance(value, str) and _YAML11_FLOAT.match(value.strip()):
        return float(value)
    return value


class _YamlFloatSchema:
    """In the JSON Schema, a number may also be written as YAML 1.1 reads `1e-4` (a string)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        number = handler(core)
        # Constraints given through Annotated reach here under their Python names; JSON Schema has its own.
        for ours, theirs in (
            ("ge", "minimum"),
            ("gt", "exclusiveMinimum"),
            ("le", "maximum"),
            ("lt", "exclusiveMaximum"),
        ):
            if ours in number:
                number[theirs] = number.pop(ours)
        # Finite only (an infinity fails these; JSON itself has no NaN).
        number.setdefault("minimum", -sys.float_info.max)
        number.setdefault("maximum", sys.float_info.max)
        unsigned = any(number.get(k, -1) >= 0 for k in ("minimum", "exclusiveMinimum"))
        pattern = _YAML11_UNSIGNED.pattern if unsigned else _YAML11_FLOAT.pattern
        return {"anyOf": [number, {"type": "string", "pattern": pattern}]}


_YAML11_UNSIGNED = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")
# Finite only: `atol: .inf` would pass anything, `timeout: .inf` would never end.
Number = Annotated[float, BeforeValidator(_yaml_float), Field(allow_inf_nan=False), _YamlFloatSchema]
NonNegative = Annotated[Number, Field(ge=0)]

# Upper bounds that keep a hostile or mistyped spec from exhausting the machine.
MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_ELEMENTS = 2**31  # elements of a random input
MAX_DIM = 2**31
MAX_RUNS = 1000  # flake statistics over many runs of a small model
MAX_THREADS = 4096
MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # YAML nesting
MAX_NODES = 200_000  # YAML nodes after alias expansion


class Strict(BaseModel):
    # strict: YAML already types its scalars; "2" for runs or `yes` for a number is a mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _existing(value: str | None, info: ValidationInfo, folder: bool) -> str | None:
    if value is None:
        return None
    base = Path((info.context or {}).get("base_dir", "."))
    path = (base / value).resolve()
    if not (path.is_dir() if folder else path.is_file()):
        what = "folder" if folder else "file"
        raise ValueError(f"{what} not found: {path} (paths are relative to the spec file's folder)")
    return str(path)


def existing_folder(value: str | None, info: ValidationInfo) -> str | None:
    return _existing(value, info, folder=True)


def existing_file(value: str | None, info: ValidationInfo) -> str | None:
    return _existing(value, info, folder=False)
