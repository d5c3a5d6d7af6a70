"""Spec files (YAML, version 1) -> validated, located checks. No torch here.

models.py    what each key may hold (pydantic models, limits)
inputs.py    the input keys (image, tensor, random, kwargs)
rules.py     `compare:` (task-aware comparison rules)
schema.py    the JSON Schema, generated from the same models
yamlread.py  safe, bounded YAML reading with line numbers
load.py      files -> LoadedCheck (defaults merged, errors located), overrides, selection
errors.py    SpecError / SpecErrors
"""

from .errors import SpecError, SpecErrors
from .inputs import INPUT_SOURCES, InputSpec, RandomInput
from .load import LoadedCheck, apply_overrides, load_spec, select, spec_files
from .models import (
    CHECK_KEYS,
    DEFAULT_SEED,
    MODEL_SOURCES,
    SPEC_VERSION,
    BaselineSpec,
    Check,
    CompileSpec,
    Defaults,
    InvarianceSpec,
    InvarianceTolerance,
    ModelSpec,
    RecipeSpec,
    ToleranceRule,
    ToleranceSpec,
)
from .rules import TASKS, CompareRule, CompareSpec
from .schema import json_schema

__all__ = [
    "CHECK_KEYS",
    "DEFAULT_SEED",
    "INPUT_SOURCES",
    "MODEL_SOURCES",
    "SPEC_VERSION",
    "TASKS",
    "BaselineSpec",
    "Check",
    "CompareRule",
    "CompareSpec",
    "CompileSpec",
    "Defaults",
    "InputSpec",
    "InvarianceSpec",
    "InvarianceTolerance",
    "LoadedCheck",
    "ModelSpec",
    "RandomInput",
    "RecipeSpec",
    "SpecError",
    "SpecErrors",
    "ToleranceRule",
    "ToleranceSpec",
    "apply_overrides",
    "json_schema",
    "load_spec",
    "select",
    "spec_files",
]
