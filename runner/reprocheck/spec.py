"""Spec files (YAML, version 1) -> validated, located checks.

No torch import here: `validate` and `schema` must stay fast. Checks that need
torchvision (model names, weight names) live in `semantic_errors`, called after
the structure is known to be right.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

DEFAULT_SEED = 3407
SPEC_VERSION = 1


class SpecError(Exception):
    """One located problem in a spec file: `file:line: key: what is wrong (fix)`."""

    def __init__(self, file: str | Path, line: int | None, key: str, message: str) -> None:
        self.file, self.line, self.key, self.message = str(file), line, key, message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class SpecErrors(Exception):
    """Every problem found in one or more spec files, in file order."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


# --- the models -------------------------------------------------------------------------------

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
MAX_RUNS = 100
MAX_THREADS = 4096
MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # YAML nesting
MAX_NODES = 200_000  # YAML nodes after alias expansion


class _Strict(BaseModel):
    # strict: YAML already types its scalars; "2" for runs or `yes` for a number is a mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _existing_file(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    base = Path((info.context or {}).get("base_dir", "."))
    path = (base / value).resolve()
    if not path.is_file():
        raise ValueError(f"file not found: {path} (paths are relative to the spec file's folder)")
    return str(path)


MODEL_SOURCES = ("torchvision", "factory", "torchscript", "exported")
INPUT_SOURCES = ("image", "tensor", "random")


def _one_of(sources: tuple[str, ...]) -> list[dict[str, Any]]:
    # JSON Schema form of "exactly one source is given (and not null)".
    return [{"required": [k], "properties": {k: {"not": {"type": "null"}}}} for k in sources]


def _absent_unless(key: str, others: tuple[str, ...], empty: dict[str, Any]) -> dict[str, Any]:
    # JSON Schema form of "`others` only go with a non-null `key`".
    return {
        "if": {"not": {"required": [key], "properties": {key: {"type": "string"}}}},
        "then": {"properties": {o: empty for o in others}},
    }


class ModelSpec(_Strict):
    """Where the model comes from: exactly one source."""

    model_config = ConfigDict(
        json_schema_extra=lambda s: s.update(
            oneOf=_one_of(MODEL_SOURCES),
            allOf=[
                {
                    "if": {"required": [k], "properties": {k: {"type": "string"}}},
                    "then": {"properties": {"kwargs": {"maxProperties": 0}}},
                }
                for k in ("torchscript", "exported")
            ],
        )
    )

    torchvision: str | None = Field(None, description="Any torchvision.models.get_model name, e.g. resnet50.")
    factory: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description='"module:callable"; the spec folder is first on sys.path. Returns an nn.Module.',
    )
    torchscript: str | None = Field(None, description="A TorchScript file (torch.jit.load).")
    exported: str | None = Field(None, description="A torch.export file (torch.export.load).")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for torchvision/factory.")

    _check_files = field_validator("torchscript", "exported")(_existing_file)

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        given = [k for k in MODEL_SOURCES if getattr(self, k) is not None]
        if len(given) != 1:
            what = "no model source" if not given else "several model sources (" + ", ".join(given) + ")"
            raise ValueError(f"{what}; give exactly one of {', '.join(MODEL_SOURCES)}")
        if self.kwargs and given[0] in ("torchscript", "exported"):
            raise ValueError(f"kwargs apply to torchvision and factory models only; remove them for {given[0]}")
        return self

    @property
    def source(self) -> str:
        return next(k for k in MODEL_SOURCES if getattr(self, k) is not None)


Dtype = Literal["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]


class RandomInput(_Strict):
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


class Normalize(_Strict):
    mean: list[Number] = Field(min_length=1, max_length=64)
    std: list[Number] = Field(min_length=1, max_length=64)


class InputSpec(_Strict):
    """What the model is called with: exactly one source."""

    model_config = ConfigDict(
        json_schema_extra=lambda s: s.update(
            oneOf=_one_of(INPUT_SOURCES), allOf=[_absent_unless("image", ("resize", "normalize"), {"type": "null"})]
        )
    )

    image: str | None = Field(None, description="An image file, decoded to RGB and preprocessed.")
    tensor: str | None = Field(
        None,
        description=".pt (torch.load weights_only) or .npy/.npz (allow_pickle=False).",
        json_schema_extra={"pattern": r"\.(pt|pth|npy|npz)$"},
    )
    random: RandomInput | None = None
    format: Literal["auto", "tensor", "batch", "list"] = Field(
        "auto",
        description="auto: detection models get a list of CHW tensors, images get a batch of one, "
        "tensors are passed as they are; tensor/batch/list force one of these.",
    )
    resize: list[Annotated[int, Field(ge=1, le=16384)]] | None = Field(
        None, min_length=2, max_length=2, description="[height, width] (image only)"
    )
    normalize: Normalize | None = Field(None, description="mean/std per channel (image only)")

    _check_files = field_validator("image", "tensor")(_existing_file)

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
        return self

    @property
    def source(self) -> str:
        return next(k for k in INPUT_SOURCES if getattr(self, k) is not None)


class RecipeSpec(_Strict):
    """Each part of the full recipe; all on by default. Turn one off to match production settings."""

    hash_seed: bool = Field(True, description="PYTHONHASHSEED=<seed> in the worker's environment before start.")
    cublas_workspace: bool = Field(True, description="CUBLAS_WORKSPACE_CONFIG=:4096:8 before start.")
    seed_rngs: bool = Field(True, description="Seed random, numpy and torch (all devices) before building.")
    deterministic_algorithms: bool | Literal["warn"] = Field(
        True, description="torch.use_deterministic_algorithms; 'warn' only warns about non-deterministic ops."
    )
    cudnn_deterministic: bool = True
    cudnn_benchmark: bool = False
    tf32: bool = Field(False, description="Allow TF32 in matmul and convolutions.")
    threads: Annotated[int, Field(ge=1, le=MAX_THREADS)] | None = Field(
        None, description="Intra-op threads; default: the CPUs available, the same in every run."
    )
    eval_mode: bool = Field(True, description="Call model.eval() before running.")
    inference_mode: bool = Field(True, description="Run under torch.inference_mode().")


class ToleranceRule(_Strict):
    atol: NonNegative | None = None
    rtol: NonNegative | None = None


class ToleranceSpec(_Strict):
    """|obtained - expected| <= atol + rtol * |expected|; default bitwise."""

    atol: NonNegative = 0.0
    rtol: NonNegative = 0.0
    outputs: dict[str, ToleranceRule] = Field(
        default_factory=dict,
        description="Per-output overrides; keys are glob patterns over output paths; the first match wins "
        "(in a multi-check file, an entry's patterns are tried before the defaults').",
    )


class Check(_Strict):
    """One reproducibility check."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][\w.\-]*$")
    seed: int = Field(DEFAULT_SEED, ge=0, lt=2**32)
    runs: int = Field(2, ge=2, le=MAX_RUNS)
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?|auto)$", description="cpu | cuda | cuda:N | auto")
    timeout: Number = Field(600.0, gt=0, le=MAX_TIMEOUT, description="Seconds allowed for each run (at most a week).")
    model: ModelSpec
    input: InputSpec
    recipe: RecipeSpec = RecipeSpec()
    tolerance: ToleranceSpec = ToleranceSpec()
    baseline: ToleranceSpec | None = Field(
        None, description="Tolerance against the stored golden outputs (--baseline); default: the check's tolerance."
    )

    def config_hash(self) -> str:
        """A stable hash of what the check computes, for baselines and reports. Files count by
        content, not path, so the same spec in another checkout hashes the same."""
        data = self.model_dump(mode="json", exclude={"name", "runs", "timeout", "tolerance", "baseline", "device"})
        for section, keys in (("model", ("torchscript", "exported")), ("input", ("image", "tensor"))):
            for key in keys:
                if data[section].get(key):
                    data[section][key] = "sha256:" + hashlib.sha256(Path(data[section][key]).read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


CHECK_KEYS = tuple(Check.model_fields)
# Keys that a multi-check entry merges into the defaults key by key; others replace.
MERGED_KEYS = ("recipe", "tolerance", "baseline")


def _defaults_model() -> type[BaseModel]:
    # The top of a multi-check file: every check key but `name`, with the same constraints, none
    # required (null is not a value: leave the key out). Generated, so it cannot drift from Check.
    fields: dict[str, Any] = {}
    for key, info in Check.model_fields.items():
        if key != "name":
            fields[key] = (info.annotation, FieldInfo.merge_field_infos(info, default=None, default_factory=None))
    return create_model("Defaults", __config__=_Strict.model_config, **fields)


Defaults = _defaults_model()


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


# --- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedCheck:
    """A validated check and where it was written."""

    check: Check
    file: Path
    line: int
    base_dir: Path
    key_prefix: tuple[Any, ...] = ()  # ("checks", i) inside a multi-check file
    # The file's parsed node tree, shared by its checks: line lookups never re-read the file.
    where: _Located | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def config_hash(self) -> str:
        # Once per check: it reads (and hashes) every model and input file.
        return self.check.config_hash()

    def key_line(self, *keys: str) -> int:
        """The line of one of this check's keys, falling back to the defaults, then the check."""
        where = self.where or _read(self.file)[1]
        for path in (self.key_prefix + keys, keys):
            if where.has(path):
                return where.line(path) or self.line
        return self.line

    @property
    def name(self) -> str:
        return self.check.name


class _Located:
    """Maps key paths to line numbers through the composed YAML node tree."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def node(self, path: tuple[Any, ...]) -> tuple[yaml.Node | None, int | None]:
        node, line = self.root, (self.root.start_mark.line + 1 if self.root is not None else None)
        for part in path:
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == str(part):
                        node, line = v, k.start_mark.line + 1
                        break
                else:
                    return None, line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return None, line
        return node, line

    def line(self, path: tuple[Any, ...]) -> int | None:
        return self.node(path)[1]

    def has(self, path: tuple[Any, ...]) -> bool:
        return self.node(path)[0] is not None


def _duplicate_keys(node: yaml.Node | None, path: str = "") -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            key = f"{path}.{k.value}" if path else str(k.value)
            if k.value in seen:
                found.append((k.start_mark.line + 1, key))
            seen.add(k.value)
            found += _duplicate_keys(v, key)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            found += _duplicate_keys(v, f"{path}.{i}")
    return found


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model class that owns the mapping at `loc`, to suggest its keys."""
    cls: Any = root
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return None
        cls = _inner_model(field.annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _message(err: Mapping[str, Any], owner: type[BaseModel] | None) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
        return f"unknown key ({hint})"
    if kind == "missing":
        return "missing (add this key)"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    got = err.get("input")
    shown = json.dumps(got, default=str) if not isinstance(got, dict) else "a mapping"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "device":
        return f"{shown} is not a device (use cpu, cuda, cuda:N or auto)"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "factory":
        return f'{shown} is not "module:callable" (e.g. "my_models:build")'
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return f"{shown} is not a valid check name (letters, digits, '.', '_', '-'; no spaces)"
    return f"{msg}, got {shown}"


def _key_text(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k in MERGED_KEYS and isinstance(out.get(k), dict) and isinstance(v, dict):
            merged = dict(out[k])
            for kk, vv in v.items():
                if kk == "outputs" and isinstance(merged.get(kk), dict) and isinstance(vv, dict):
                    # Globs match in order and the first wins: the entry's own patterns go first.
                    merged[kk] = {**vv, **{p: r for p, r in merged[kk].items() if p not in vv}}
                else:
                    merged[kk] = vv
            out[k] = merged
        else:
            out[k] = v
    return out


class _TooBig(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, before the (recursive) composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else None
                raise _TooBig(line, f"nested more than {MAX_DEPTH} levels deep (a spec needs a few)")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _check_expansion(root: yaml.Node | None) -> None:
    """Refuse alias bombs: count the nodes as if every alias were expanded, without expanding them."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack = [(root, False)] if root is not None else []
    while stack:  # post-order, without recursion
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        kids = _children(node)
        if not children_done:
            open_.add(id(node))
            stack.append((node, True))
            for kid in kids:
                if id(kid) in open_:
                    raise _TooBig(kid.start_mark.line + 1, "a YAML alias refers to a value that contains it")
                stack.append((kid, False))
            continue
        open_.discard(id(node))
        sizes[id(node)] = 1 + sum(sizes[id(k)] for k in kids)
        if sizes[id(node)] > MAX_NODES:
            raise _TooBig(
                node.start_mark.line + 1,
                f"expands to more than {MAX_NODES:,} values through YAML aliases (an alias bomb?); write it out",
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """One safe parse giving both the node tree (for line numbers) and the data, within limits."""
    _check_depth(text)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        _check_expansion(node)
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _read(path: Path) -> tuple[Any, _Located]:
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecErrors(
                [
                    SpecError(
                        path, None, "", f"larger than {MAX_SPEC_BYTES // 1024 // 1024} MiB; a spec is a small YAML file"
                    )
                ]
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecErrors([SpecError(path, None, "", "no such spec file (check the path)")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecErrors([SpecError(path, None, "", f"cannot read the spec: {exc}")]) from None
    try:
        node, data = _parse(text)
    except _TooBig as exc:
        raise SpecErrors([SpecError(path, exc.line, "", exc.message)]) from None
    except RecursionError:
        raise SpecErrors([SpecError(path, None, "", "nested too deeply to read")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecErrors([SpecError(path, line, "", f"YAML syntax error: {problem} (fix the YAML)")]) from None
    dups = _duplicate_keys(node)
    if dups:
        raise SpecErrors(
            [SpecError(path, line, key, "duplicate key (YAML keeps only the last; remove one)") for line, key in dups]
        )
    return data, _Located(node)


def load_spec(path: str | Path) -> list[LoadedCheck]:
    """Parse and validate one spec file. Raises SpecErrors listing every problem."""
    path = Path(path)
    data, where = _read(path)
    if not isinstance(data, dict):
        raise SpecErrors([SpecError(path, 1, "", "a spec is a YAML mapping with `version: 1` at the top")])
    context = {"base_dir": str(path.resolve().parent)}
    errors: list[SpecError] = []

    def located(err: Mapping[str, Any], prefix: tuple[Any, ...], root: type[BaseModel]) -> SpecError:
        loc = tuple(err["loc"])
        full = prefix + loc
        line = where.line(full)
        # Keys inherited from the defaults are reported where they were written.
        if prefix and not where.has(full) and where.has(loc):
            line, full = where.line(loc), loc
        return SpecError(
            path,
            line,
            _key_text(full),
            _message(err, _model_at(loc[:-1] if err["type"] == "extra_forbidden" else loc, root)),
        )

    version = data.get("version")
    if version != SPEC_VERSION:
        shown = "missing" if "version" not in data else f"{version!r} is not supported"
        raise SpecErrors(
            [SpecError(path, where.line(("version",)) or 1, "version", f"{shown} (write `version: 1` at the top)")]
        )

    top = {k: v for k, v in data.items() if k not in ("version", "checks")}
    checks_raw = data.get("checks")
    allowed_top = set(CHECK_KEYS) - {"name"} | {"version", "checks"}
    for key in data:
        if key not in allowed_top:
            close = difflib.get_close_matches(str(key), sorted(allowed_top), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(sorted(allowed_top))}"
            if key == "name" and checks_raw is None:
                hint = "a single-check file's check is named after the file; use `checks:` to name checks"
            errors.append(SpecError(path, where.line((key,)), str(key), f"unknown key ({hint})"))
    if errors:
        raise SpecErrors(errors)

    if checks_raw is None:
        entries: list[tuple[tuple[Any, ...], dict[str, Any]]] = [((), {**top, "name": _name_from_file(path)})]
    else:
        if not isinstance(checks_raw, list) or not checks_raw:
            raise SpecErrors([SpecError(path, where.line(("checks",)), "checks", "must be a non-empty list of checks")])
        # The defaults are checked on their own too (a bad default is wrong even where every entry overrides it),
        # and once: their errors are not repeated for every entry that inherits them.
        try:
            Defaults.model_validate(top, context=context)
        except ValidationError as exc:
            raise SpecErrors([located(e, (), Defaults) for e in exc.errors()]) from None
        entries = []
        for i, entry in enumerate(checks_raw):
            if not isinstance(entry, dict):
                errors.append(
                    SpecError(path, where.line(("checks", i)), f"checks.{i}", "each check is a mapping with a `name:`")
                )
                continue
            entries.append((("checks", i), _deep_merge(top, entry)))

    loaded: list[LoadedCheck] = []
    seen: dict[str, int] = {}
    for prefix, raw in entries:
        try:
            check = Check.model_validate(raw, context=context)
        except ValidationError as exc:
            errors += [located(e, prefix, Check) for e in exc.errors()]
            continue
        line = where.line(prefix + ("name",)) if prefix else 1
        if check.name in seen:
            errors.append(
                SpecError(
                    path,
                    line,
                    _key_text(prefix + ("name",)),
                    f"duplicate check name '{check.name}' (first on line {seen[check.name]}; names must be unique)",
                )
            )
            continue
        seen[check.name] = line or 1
        loaded.append(
            LoadedCheck(
                check=check, file=path, line=line or 1, base_dir=path.resolve().parent, key_prefix=prefix, where=where
            )
        )
    if errors:
        raise SpecErrors(errors)
    return loaded


def _name_from_file(path: Path) -> str:
    name = re.sub(r"[^\w.\-]", "_", path.stem)
    return name if name and name[0].isalnum() else f"check_{name}"


def name_requests(loaded: list[LoadedCheck]) -> list[dict[str, Any]]:
    """What must be checked against torchvision (model and weight names), as plain data for a worker:
    this process never imports torch."""
    return [
        {
            "model": c.check.model.torchvision,
            **{kw: c.check.model.kwargs.get(kw) for kw in ("weights", "weights_backbone")},
        }
        for c in loaded
        if c.check.model.torchvision
    ]


def name_errors(loaded: list[LoadedCheck], problems: list[dict[str, Any]]) -> list[SpecError]:
    """A worker's answer to `name_requests` (index, key, message) -> located spec errors."""
    checks = [c for c in loaded if c.check.model.torchvision]
    errors = []
    for p in problems:
        c = checks[p["index"]]
        key = p["key"]  # "torchvision", "weights" or "weights_backbone"
        keys = ("model", key) if key == "torchvision" else ("model", "kwargs", key)
        errors.append(SpecError(c.file, c.key_line(*keys), ".".join(keys), p["message"]))
    return errors


def apply_overrides(loaded: list[LoadedCheck], **overrides: Any) -> list[LoadedCheck]:
    """Command-line overrides (--runs, --device), validated like spec values."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return loaded
    out = []
    for c in loaded:
        data = c.check.model_dump()
        data.update(changes)
        try:
            check = Check.model_validate(data, context={"base_dir": str(c.base_dir)})
        except ValidationError as exc:
            e = exc.errors()[0]
            raise SpecErrors([SpecError("command line", None, f"--{e['loc'][0]}", _message(e, Check))]) from None
        out.append(dataclasses.replace(c, check=check))
    return out


def select(loaded: list[LoadedCheck], names: list[str]) -> list[LoadedCheck]:
    """Keep the checks named by --check; an unknown name is a usage error."""
    if not names:
        return loaded
    have = [c.name for c in loaded]
    missing = [n for n in names if n not in have]
    if missing:
        close = difflib.get_close_matches(missing[0], have, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"checks here: {', '.join(have)}"
        raise SpecErrors([SpecError("command line", None, "--check", f"no check named '{missing[0]}' ({hint})")])
    return [c for c in loaded if c.name in names]
