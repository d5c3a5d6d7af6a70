"""The JSON report (`--report`) and the JSON diagnosis. Their shape is declared once, in schema.py: every
report is validated against those models before it is written, and `reprocheck schema --report` exports them."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any

from ... import __version__, flake
from ...results import Kind, OutputResult
from ..checks.outcome import CheckResult, Status, exit_code
from . import schema
from .tasks import fragile_sentence
from .text import blind_lines

if TYPE_CHECKING:
    from ...diagnosis import Diagnosis
    from ...drift import BaselineResult
    from ...results import Comparison


def finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def output_dict(o: OutputResult) -> dict[str, Any]:
    passing: dict[str, float | None] | None = None
    if o.kind is Kind.MATCH:
        passing = {
            "atol": 0.0 if o.needed_atol is None else o.needed_atol,
            "rtol": 0.0 if o.needed_rtol is None else o.needed_rtol,
        }
    elif o.kind is Kind.VALUES and not o.exact and (o.needed_atol is not None or o.needed_rtol is not None):
        passing = {"atol": o.needed_atol, "rtol": o.needed_rtol}
    return {
        "path": o.path,
        "status": o.kind.value,
        "shape": list(o.shape),
        "dtype": o.dtype,
        "total": o.total,
        "mismatched": o.mismatched,
        "mismatch_percent": round(o.mismatch_percent, 4),
        "max_abs_diff": o.max_abs_diff,
        "max_rel_diff": o.max_rel_diff,
        "mean_abs_diff": o.mean_abs_diff,
        "first_index": list(o.first_index) if o.first_index is not None else None,
        "expected_value": o.expected_value,
        "obtained_value": o.obtained_value,
        "nan_count": o.nan_count,
        "exact": o.exact,
        "tolerance": {"atol": o.tolerance.atol, "rtol": o.tolerance.rtol, "pattern": o.tolerance.pattern},
        "passing_tolerance": passing,
        "runs": [o.expected_run, o.obtained_run],
        "detail": o.detail,
        "runs_differing": o.runs_differing,
        "distinct_results": o.distinct_results,
        "task": dataclasses.asdict(o.task) if o.task is not None else None,
    }


def check_dict(r: CheckResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "file": str(r.file),
        "line": r.line,
        "status": r.status.value,
        "seed": r.seed,
        "device": r.device,
        "runs_requested": r.runs_requested,
        "config_hash": r.config_hash,
        "duration_s": round(r.duration, 3),
        "recipe": r.recipe,
        "runs": [
            {
                "index": x.index,
                "status": x.status.value,
                "duration_s": round(x.duration, 3),
                "cause": x.cause,
                "stage": x.stage,
                "details": list(x.details),
                "hint": x.hint,
                "timings": x.timings,
                "warnings": list(x.warnings),
            }
            for x in r.runs
        ],
        "outputs": [output_dict(o) for o in (r.comparison.outputs if r.comparison is not None else ())],
        "fingerprint": r.fingerprint,
        "notes": list(r.notes),
        "ignored": list(r.ignored),
        "blind": list(blind_lines(r)),
        "flake": _flake_dict(r),
        "invariance": [
            {
                "kind": v.kind.value,
                "variant": v.variant,
                "reference": v.reference,
                "status": v.status.value,
                "cause": v.cause,
                "left_out": list(v.left_out),
                "ignored": list(v.ignored),
                "reference_distances": [
                    {"path": d.path, "expected": d.expected, "obtained": d.obtained} for d in v.distances
                ],
                "outputs": [output_dict(o) for o in (v.comparison.outputs if v.comparison is not None else ())],
            }
            for v in r.invariance
        ],
        "baseline": baseline_dict(r.baseline) if r.baseline is not None else None,
        "fragile": [{**dataclasses.asdict(f), "message": fragile_sentence(f)} for f in r.fragile],
        "fragile_policy": r.fragile_policy,
        "error": f"{r.file}:{r.error_line}: {r.error}" if r.error else "",
    }


def _flake_dict(r: CheckResult) -> dict[str, Any] | None:
    c = r.comparison
    if c is None or c.runs_compared < 3:
        return None
    f = c.flake
    return {
        "runs_compared": f.compared,
        "runs_differing": f.differing,
        "rate": f.rate,
        "interval": [f.low, f.high],
        "confidence": flake.CONFIDENCE,
        "method": flake.METHOD,
        "distinct_results": c.distinct_results,
        "statement": f.statement(),
    }


def baseline_dict(b: BaselineResult) -> dict[str, Any]:
    return {
        "status": b.status.value,
        "golden": str(b.golden),
        "obtained": str(b.obtained) if b.obtained else None,
        "golden_created": b.golden_created,
        "config_changed": b.config_changed,
        "message": b.message,
        "fingerprint_diff": [{"field": d.field, "baseline": d.expected, "now": d.obtained} for d in b.fingerprint_diff],
        "outputs": [output_dict(o) for o in (b.comparison.outputs if b.comparison is not None else ())],
    }


def render_json(results: list[CheckResult]) -> str:
    data = {
        "tool": "reprocheck",
        "version": __version__,
        "schema_version": 1,
        "exit_code": int(exit_code(results)),
        "summary": {"checks": len(results), **{s.value: sum(1 for r in results if r.status is s) for s in Status}},
        "checks": [check_dict(r) for r in results],
    }
    data = finite(data)
    schema.Report.model_validate(data)  # the declared shape is the written shape
    return json.dumps(data, indent=2) + "\n"


def _comparison_dict(c: Comparison | None) -> dict[str, Any] | None:
    return None if c is None else {"passed": bool(c), "outputs": [output_dict(o) for o in c.outputs]}


def diagnosis_dict(d: Diagnosis) -> dict[str, Any]:
    v, s = d.divergence, d.seed
    return {
        "name": d.name,
        "file": str(d.file),
        "line": d.line,
        "reproducible": d.reproducible,
        "error": d.error,
        "comparison": _comparison_dict(d.comparison),
        "first_divergence": None
        if v is None
        else {
            "call": v.call,
            "module": v.module,
            "type": v.type,
            "detail": v.detail,
            "output": output_dict(v.result) if v.result is not None else None,
        },
        "seed_sensitivity": None
        if s is None
        else {
            "sensitive": s.sensitive,
            "other_seed": s.other_seed,
            "causes": list(s.causes),
            "training_modules": [{"module": p, "type": t} for p, t in s.training_modules],
            "random_parameters": list(s.random_parameters),
            "parameters_total": s.parameters_total,
            "comparison": _comparison_dict(s.comparison),
        },
        "ablations": [
            {
                "knob": a.knob,
                "description": a.description,
                "effect": a.effect.value,
                "breaks": a.effect is a.effect.BREAKS,
                "error": a.error,
                "comparison": _comparison_dict(a.comparison),
            }
            for a in d.ablations
        ],
        "nondeterministic_ops": list(d.nondeterministic_ops),
    }


def render_diagnosis_json(diagnoses: list[Diagnosis]) -> str:
    data = {
        "tool": "reprocheck",
        "version": __version__,
        "schema_version": 1,
        "kind": "diagnose",
        "checks": [diagnosis_dict(d) for d in diagnoses],
    }
    return json.dumps(finite(data), indent=2) + "\n"
