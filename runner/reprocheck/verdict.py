"""The verdict, on the torch side (in the zygote, or a helper worker): the runs' outputs compared (run 1
expected), then the golden checked or written; plain data back to reprocheck's own process."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def verdict(request: dict[str, Any]) -> dict[str, Any]:
    """Compare the runs' outputs (run 1 expected), then check or write the golden. Plain data back."""
    from . import baseline, compare, outputs
    from .spec import ToleranceSpec

    runs = [(r["index"], outputs.load(Path(r["outputs"]))) for r in request["runs"]]
    tolerance = ToleranceSpec.model_validate(request["tolerance"])
    comparison = None
    if len(runs) >= 2:
        comparison = compare.compare_runs([o for _, o in runs], tolerance, [i for i, _ in runs])
    golden = None
    if request.get("golden") and runs:
        job = baseline.GoldenJob(**request["golden"])
        agreed = comparison is None or bool(comparison)
        golden = baseline.apply(job, runs[0][1], request.get("fingerprint"), runs_agree=agreed and request["all_ok"])
    return {
        "comparison": compare.comparison_to_dict(comparison) if comparison is not None else None,
        "golden": baseline.result_to_dict(golden) if golden is not None else None,
    }
