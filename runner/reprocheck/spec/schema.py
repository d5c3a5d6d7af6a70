"""The JSON Schema of a spec file, built from the same models as the validator (for editors)."""

from __future__ import annotations

from typing import Any

from .models import SPEC_VERSION, Check, Defaults


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file, generated from the same models the validator uses."""
    check = Check.model_json_schema(ref_template="#/$defs/{model}")
    defaults = Defaults.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**check.pop("$defs", {}), **defaults.pop("$defs", {})}
    version = {"const": SPEC_VERSION, "description": "The spec format version; always 1."}
    single = {k: v for k, v in check["properties"].items() if k != "name"}
    # Inside `checks:` an entry inherits the defaults, so only `name` is required of it...
    entry = {**check, "required": ["name"], "title": "Check entry"}
    # ...except the model and input, when the defaults do not give them.
    inherit = [
        {"if": {"not": {"required": [k]}}, "then": {"properties": {"checks": {"items": {"required": [k]}}}}}
        for k in ("model", "input")
    ]
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://github.com/reprocheck/reprocheck/spec-v1.schema.json",
        "title": "reprocheck spec (version 1)",
        "description": "One check (its keys at the top, named after the file), or defaults plus `checks:`.",
        "type": "object",
        "required": ["version"],
        "$defs": {**defs, "CheckEntry": entry},
        "if": {"required": ["checks"]},
        "then": {
            "properties": {
                "version": version,
                **defaults["properties"],
                "checks": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/CheckEntry"},
                    "description": "Several checks; each entry overrides the defaults above.",
                },
            },
            "additionalProperties": False,
            "allOf": inherit,
        },
        "else": {
            "properties": {"version": version, **single},
            "required": ["version", *[k for k in check.get("required", []) if k != "name"]],
            "additionalProperties": False,
        },
    }
