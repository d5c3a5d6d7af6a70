"""The spec's models (version 1): what each key may hold. The validator and the exported JSON Schema
are both generated from these; no torch here."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from .inputs import InputSpec, one_of
from .rules import CompareSpec
from .types import (
    MAX_ELEMENTS,
    MAX_RUNS,
    MAX_THREADS,
    MAX_TIMEOUT,
    NonNegative,
    Number,
    Strict,
    existing_file,
    existing_folder,
)

DEFAULT_SEED = 3407
SPEC_VERSION = 1
MODEL_SOURCES = ("torchvision", "timm", "huggingface", "factory", "torchscript", "exported")
WITH_KWARGS = ("torchvision", "timm", "huggingface", "factory")  # the sources that take `kwargs`
# Never passed to transformers: remote code would run unreviewed, and the hub is never asked.
HF_REFUSED = {
    "trust_remote_code": "it runs code from the model folder or the hub that no spec review sees",
    "local_files_only": "reprocheck always loads local files only (fill the folder or --model-cache instead)",
}


class HuggingFaceModel(Strict):
    """A transformers model: a class built from a config (random init, seeded) or from a local folder."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    class_: str = Field(
        alias="class",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="a transformers class, e.g. GPT2LMHeadModel, or an Auto class such as AutoModelForCausalLM",
    )
    config: dict[str, Any] | None = Field(
        None,
        description="the config: `model_type` plus its fields (nested configs as mappings); built with from_config",
    )
    path: str | None = Field(
        None, description="a local folder for from_pretrained (local files only; relative to the spec's folder)"
    )

    _check_folder = field_validator("path")(existing_folder)

    @model_validator(mode="after")
    def _config_or_path(self) -> HuggingFaceModel:
        if (self.config is None) == (self.path is None):
            raise ValueError("give exactly one of config (a mapping with model_type) or path (a local folder)")
        if self.config is not None and not isinstance(self.config.get("model_type"), str):
            raise ValueError("config needs model_type (e.g. model_type: gpt2)")
        return self


class ModelSpec(Strict):
    """Where the model comes from: exactly one source."""

    model_config = ConfigDict(
        json_schema_extra=lambda s: s.update(
            oneOf=one_of(MODEL_SOURCES),
            allOf=[
                {
                    "if": {"required": [k], "properties": {k: {"not": {"type": "null"}}}},
                    "then": {"properties": {"kwargs": {"maxProperties": 0}}},
                }
                for k in ("torchscript", "exported")
            ],
        )
    )

    torchvision: str | None = Field(None, description="Any torchvision.models.get_model name, e.g. resnet50.")
    timm: str | None = Field(
        None, pattern=r"^[\w.\-/]+$", description="A timm.create_model name, e.g. convnext_atto (with kwargs)."
    )
    huggingface: HuggingFaceModel | None = Field(None, description="A transformers model, from a config or a folder.")
    factory: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description='"module:callable"; the spec folder is first on sys.path. Returns an nn.Module.',
    )
    torchscript: str | None = Field(None, description="A TorchScript file (torch.jit.load).")
    exported: str | None = Field(None, description="A torch.export file (torch.export.load).")
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for torchvision, timm, the factory, or Hugging Face's from_config / "
        "from_pretrained (e.g. attn_implementation: eager); never trust_remote_code.",
    )

    _check_files = field_validator("torchscript", "exported")(existing_file)

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        given = [k for k in MODEL_SOURCES if getattr(self, k) is not None]
        if len(given) != 1:
            what = "no model source" if not given else "several model sources (" + ", ".join(given) + ")"
            raise ValueError(f"{what}; give exactly one of {', '.join(MODEL_SOURCES)}")
        if self.kwargs and given[0] not in WITH_KWARGS:
            allowed = ", ".join(WITH_KWARGS[:-1]) + f" and {WITH_KWARGS[-1]}"
            raise ValueError(f"kwargs apply to {allowed} models only; remove them for {given[0]}")
        if self.huggingface is not None:
            for where, keys in (("kwargs", self.kwargs), ("huggingface.config", self.huggingface.config or {})):
                refused = next((k for k in keys if k in HF_REFUSED), None)
                if refused:
                    raise ValueError(f"{where}.{refused} is refused: {HF_REFUSED[refused]}")
        return self

    @property
    def source(self) -> str:
        return next(k for k in MODEL_SOURCES if getattr(self, k) is not None)


class RecipeSpec(Strict):
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


class ToleranceRule(Strict):
    atol: NonNegative | None = None
    rtol: NonNegative | None = None


class ToleranceSpec(Strict):
    """|obtained - expected| <= atol + rtol * |expected|; default bitwise."""

    atol: NonNegative = 0.0
    rtol: NonNegative = 0.0
    outputs: dict[str, ToleranceRule] = Field(
        default_factory=dict,
        description="Per-output overrides; keys are glob patterns over output paths; the first match wins "
        "(in a multi-check file, an entry's patterns are tried before the defaults').",
    )


class BaselineSpec(ToleranceSpec):
    """The tolerance against the stored golden outputs, and which machines share one golden (`key`)."""

    key: Literal["none", "device", "gpu"] = Field(
        "none",
        description="none: one golden per check; device: one per device type (cpu, cuda); gpu: one per GPU "
        "generation (cuda-sm90: CUDA and the compute capability; cpu on the CPU). Comparing picks the most "
        "specific golden that exists: this machine's key, then its device, then the keyless one.",
    )

    def tolerance_or(self, check: ToleranceSpec) -> ToleranceSpec:
        """This tolerance where one is given here, else the check's (`baseline: {key: gpu}` keeps the check's)."""
        if not {"atol", "rtol", "outputs"} & self.model_fields_set:
            return check
        return ToleranceSpec(atol=self.atol, rtol=self.rtol, outputs=self.outputs)


KIND_TOLERANCES = ("batch", "threads", "device", "compile", "dtype", "autocast")


class InvarianceTolerance(ToleranceSpec):
    """The invariance comparisons' tolerance, with an own one per kind of variant where given
    (`{atol: 1.0e-6, dtype: {atol: 1.0e-2}}`)."""

    batch: ToleranceSpec | None = None
    threads: ToleranceSpec | None = None
    device: ToleranceSpec | None = None
    compile: ToleranceSpec | None = None
    dtype: ToleranceSpec | None = None
    autocast: ToleranceSpec | None = None

    def for_kind(self, kind: str, check: ToleranceSpec) -> ToleranceSpec:
        """The kind's own tolerance, else this one's top level where it is given, else the check's."""
        own = getattr(self, kind, None) if kind in KIND_TOLERANCES else None
        if own is not None:
            return own
        if not {"atol", "rtol", "outputs"} & self.model_fields_set:
            return check
        return ToleranceSpec(atol=self.atol, rtol=self.rtol, outputs=self.outputs)


class CompileSpec(Strict):
    """torch.compile's arguments for the compile variant (`compile: true` is all defaults)."""

    backend: str = Field(
        "inductor",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="a torch.compile backend: inductor (C++/Triton kernels), aot_eager (no compiler needed), eager",
    )
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    dynamic: bool = False
    fullgraph: bool = Field(False, description="a graph break is an error instead of a count in the report")

    def label(self) -> str:
        more = [f"mode={self.mode}"] if self.mode != "default" else []
        more += ["dynamic"] * self.dynamic + ["fullgraph"] * self.fullgraph
        return self.backend + (f"({', '.join(more)})" if more else "")


Precision = Literal["float16", "bfloat16", "float64"]


class InvarianceSpec(Strict):
    """More comparisons, each against the check's own first run: batch sizes, CPU thread counts, a device; and the
    model as it is deployed (compiled, in another dtype, under autocast), graded against the float64 reference."""

    batch: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=list, max_length=16, description="batch sizes to run the check's samples at, e.g. [1, 8]"
    )
    threads: list[Annotated[int, Field(ge=1, le=MAX_THREADS)]] = Field(
        default_factory=list, max_length=16, description="intra-op thread counts to run at, e.g. [1, 4]"
    )
    device: str | None = Field(
        None, pattern=r"^(cpu|cuda(:\d+)?)$", description="another device to run on (cpu | cuda | cuda:N)"
    )
    compile: CompileSpec | None = Field(
        None, description="the model under torch.compile: true, or {backend, mode, dynamic, fullgraph}"
    )
    dtype: list[Precision] = Field(
        default_factory=list,
        max_length=3,
        description="the model and its floating inputs cast to each dtype: float16, bfloat16, float64",
    )
    autocast: list[Literal["float16", "bfloat16"]] = Field(
        default_factory=list, max_length=2, description="torch.autocast(device, dtype) around the forward"
    )
    require: Literal["identical", "noise", "task"] = Field(
        "noise",
        description="the grade compile, dtype and autocast variants must reach: identical (bitwise), noise (no "
        "farther from the float64 reference than the check's own run, or the same under a `compare:` rule), task "
        "(also within the tolerance for that kind)",
    )
    reference: Literal["auto", "float64", "none"] = Field(
        "auto",
        description="when a variant differs, one more run in float64 on the CPU says which side is closer; "
        "auto: for device variants only (compile, dtype and autocast variants always use it)",
    )
    tolerance: InvarianceTolerance | None = Field(
        None,
        description="for these comparisons; default: the check's tolerance; may be given per kind, e.g. "
        "{atol: 1.0e-6, dtype: {atol: 1.0e-2}}",
    )

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_true(cls, v: Any) -> Any:
        if v is True:
            return {}
        if v is False:
            return None
        return v

    @field_validator("dtype", "autocast")
    @classmethod
    def _once_each(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"each dtype once: {v}")
        return v

    @model_validator(mode="after")
    def _graded_needs_the_reference(self) -> InvarianceSpec:
        if self.reference == "none" and self.graded():
            raise ValueError(
                "reference: none, but compile, dtype and autocast variants are graded against the float64 reference; "
                "remove `reference: none` (or those variants)"
            )
        return self

    def graded(self) -> bool:
        """Whether it declares variants graded against the float64 reference (compile, dtype, autocast)."""
        return bool(self.compile or self.dtype or self.autocast)


class Check(Strict):
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
    baseline: BaselineSpec | None = Field(
        None,
        description="Tolerance against the stored golden outputs (--baseline), default the check's tolerance; "
        "and `key:`, goldens per device or GPU generation.",
    )
    invariance: InvarianceSpec | None = Field(None, description="More comparisons against the check's first run.")
    compare: CompareSpec = Field(
        CompareSpec(), description="Task-aware comparison (detections, classes, masks) and fragile outputs."
    )
    ignore: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list,
        max_length=256,
        description="glob patterns over output paths (containers too) left out of every comparison, e.g. "
        "cache.* ; listed in every report; a pattern matching no output is an error",
    )
    strict: bool = Field(
        False, description="a check whose compared outputs are all constant (it cannot see a change) fails"
    )

    @model_validator(mode="after")
    def _batch_within_the_input_limit(self) -> Check:
        rnd = self.input.random
        if rnd is None or self.invariance is None or not self.invariance.batch or not rnd.shape:
            return self
        per_sample = math.prod(rnd.shape[1:])
        largest = max(self.invariance.batch)
        if per_sample * largest > MAX_ELEMENTS:
            raise ValueError(
                f"invariance.batch {largest} makes the input {[largest, *rnd.shape[1:]]}: {per_sample * largest:,} "
                f"elements, more than {MAX_ELEMENTS:,}; use a smaller batch size"
            )
        return self

    @model_validator(mode="after")
    def _keyword_inputs_share_a_batch(self) -> Check:
        # Keyword tensors are cut or extended together along dim 0: sizes known from the spec must agree.
        if self.invariance is None or not self.invariance.batch or not self.input.kwargs:
            return self
        sizes = {k: v.random.shape[0] for k, v in self.input.kwargs.items() if v.random is not None and v.random.shape}
        if len(set(sizes.values())) > 1:
            shown = ", ".join(f"{k} {n}" for k, n in sizes.items())
            raise ValueError(
                f"invariance.batch: the keyword inputs do not share dim 0 ({shown}), so there is no batch to vary; "
                "give them one batch size or remove invariance.batch"
            )
        return self

    def baseline_tolerance(self) -> ToleranceSpec:
        """The tolerance against the golden: `baseline:`'s where it gives one, else the check's."""
        return self.tolerance if self.baseline is None else self.baseline.tolerance_or(self.tolerance)

    @property
    def baseline_key(self) -> str:
        return "none" if self.baseline is None else self.baseline.key

    def config_hash(self) -> str:
        """A stable hash of what the check computes, for baselines and reports. Files count by
        content, not path, so the same spec in another checkout hashes the same."""
        exclude = {
            "name",
            "runs",
            "timeout",
            "tolerance",
            "baseline",
            "device",
            "invariance",
            "compare",
            "ignore",
            "strict",
        }
        data = self.model_dump(mode="json", exclude=exclude)
        for section, keys in (("model", ("torchscript", "exported")), ("input", ("image", "tensor"))):
            for key in keys:
                if data[section].get(key):
                    data[section][key] = "sha256:" + hashlib.sha256(Path(data[section][key]).read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


CHECK_KEYS = tuple(Check.model_fields)
# Keys that a multi-check entry merges into the defaults key by key; others replace.
MERGED_KEYS = ("recipe", "tolerance", "baseline", "invariance", "compare")


def _defaults_model() -> type[BaseModel]:
    # The top of a multi-check file: every check key but `name`, with the same constraints, none
    # required (null is not a value: leave the key out). Generated, so it cannot drift from Check.
    fields: dict[str, Any] = {}
    for key, info in Check.model_fields.items():
        if key != "name":
            fields[key] = (info.annotation, FieldInfo.merge_field_infos(info, default=None, default_factory=None))
    return create_model("Defaults", __config__=Strict.model_config, **fields)


Defaults = _defaults_model()
