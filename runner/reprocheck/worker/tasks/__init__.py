"""Task-aware comparison (`compare:` in the spec): detections, classifications and segmentations compared the way
users judge them, and fragile outputs flagged.

select.py          which outputs each rule takes (globs over output paths, containers too)
assign.py          optimal one-to-one matching (Hungarian, per connected component)
detection.py       detections: matched, missing, extra, label changes, score/mask/keypoint changes
classification.py  per sample: the top-k classes in order
segmentation.py    per pixel: the argmax class; agreement, per-class IoU, changed regions
fragile.py         run 1's outputs near a decision boundary
"""

from __future__ import annotations

from typing import Any

from ...results import OutputResult
from ...spec import ToleranceSpec
from .select import DETECTION_KEYS, RuleError, Selected, dict_tensors, select

__all__ = ["DETECTION_KEYS", "RuleError", "Selected", "compare_selected", "select"]


def compare_selected(
    sel: Selected,
    expected: dict[str, Any],
    obtained: dict[str, Any],
    exp_tensors: dict[str, Any],
    obt_tensors: dict[str, Any],
    runs: tuple[int, int],
    tolerance: ToleranceSpec,
) -> list[OutputResult]:
    """One selected node (its tree nodes in both runs) compared by its rule's task; for a detection dict, also its
    per-detection tensors (sel.per_detection), elementwise on the matched pairs under the check's tolerance."""
    task = sel.rule.as_
    if task == "detection":
        from . import detection

        return detection.compare_all(
            sel, dict_tensors(expected, exp_tensors), dict_tensors(obtained, obt_tensors), runs, tolerance
        )
    e, o = exp_tensors[expected["path"]], obt_tensors[obtained["path"]]
    if task == "classification":
        from . import classification

        return [classification.compare(sel, e, o, runs)]
    from . import segmentation

    return [segmentation.compare(sel, e, o, runs)]
