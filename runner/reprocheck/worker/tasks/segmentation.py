"""Segmentation maps compared as segmentations: per-pixel classes (argmax over the class dimension `dim`, default
-3; one class is a binary mask, decided at 0; an integer output is already a label map), their agreement against
`min_agreement`, per-class IoU between the two runs, and where the changed pixels are (a bounding box per sample). A
pixel whose class scores are NaN in one run only has changed (the elementwise NaN rule); the largest score
difference is reported. The result counts pixels (unit "pixels"): `total` pixels, `mismatched` those whose class
changed; every pixel is matched with itself, so `max_matched_diff` is the largest class-score difference (None for an
integer label map, which has no scores, or with no pixel)."""

from __future__ import annotations

from typing import Any

from ...results import Kind, OutputResult, TaskResult
from .select import Selected, form_changed, nan_aware_diff

ITEMS = 20
CLASSES = 64  # classes whose IoU is computed, at most: the ones with the most changed pixels


def labels(t: Any, dim: int) -> Any:
    """[samples, H, W] class per pixel. argmax takes the first class on ties, the same in both runs. One class (a
    binary mask's logits) is a decision at 0, as a [..., 1] classification is: an argmax over one class is always 0
    and would see nothing."""
    if t.is_floating_point():
        if t.shape[dim] == 1:
            t = (t.nan_to_num(nan=float("-inf")) > 0).squeeze(dim).long()
        else:
            t = t.nan_to_num(nan=float("-inf")).argmax(dim=dim)
    return t.reshape(-1, t.shape[-2], t.shape[-1]) if t.dim() >= 2 else t


def compare(sel: Selected, exp_t: Any, obt_t: Any, runs: tuple[int, int]) -> OutputResult:
    import torch

    rule = sel.rule
    dim = -3 if rule.dim is None else rule.dim
    need = 1.0 if rule.min_agreement is None else rule.min_agreement
    base = {**sel.fields(exp_t, runs), "unit": "pixels"}
    form = form_changed(exp_t, obt_t)
    if form:
        return OutputResult(kind=Kind.STRUCTURE, detail=form, **base)
    le, lo = labels(exp_t, dim), labels(obt_t, dim)
    changed = le != lo
    max_diff: float | None = None  # a label map has no scores to measure
    if exp_t.is_floating_point():
        diff = nan_aware_diff(exp_t, obt_t)
        max_diff = float(diff.max()) if diff.numel() else None
        nan_changed = (exp_t.isnan() ^ obt_t.isnan()).any(dim=dim)
        changed = changed | nan_changed.reshape(changed.shape)
    pixels, n_changed = changed.numel(), int(changed.sum())
    agreement = 1.0 - n_changed / pixels if pixels else 1.0
    regions, ious = [], []
    if n_changed:
        for s in changed.flatten(1).any(dim=1).nonzero().flatten().tolist()[:ITEMS]:
            rows = changed[s].any(dim=1).nonzero().flatten()
            cols = changed[s].any(dim=0).nonzero().flatten()
            regions.append(
                {
                    "sample": s,
                    "rows": [int(rows.min()), int(rows.max())],
                    "cols": [int(cols.min()), int(cols.max())],
                    "pixels": int(changed[s].sum()),
                }
            )
        involved = torch.cat([le[changed], lo[changed]])
        classes, counts = involved.unique(return_counts=True)
        for c in classes[counts.argsort(descending=True)][:CLASSES].tolist():
            a, b = le == c, lo == c
            union = int((a | b).sum())
            ious.append(
                {
                    "class": int(c),
                    "iou": round(int((a & b).sum()) / union, 6) if union else 1.0,
                    "expected_pixels": int(a.sum()),
                    "obtained_pixels": int(b.sum()),
                }
            )
        ious.sort(key=lambda x: x["iou"])
    stats = {
        "pixels": pixels,
        "changed_pixels": n_changed,
        "agreement": agreement,
        "min_agreement": need,
        "class_iou": ious,
        "regions": regions,
        "max_score_diff": max_diff,
    }
    return OutputResult(
        kind=Kind.VALUES if agreement < need else Kind.MATCH,
        total=pixels,
        mismatched=n_changed,
        max_abs_diff=max_diff or 0.0,
        max_matched_diff=max_diff,
        magnitude=float(exp_t.double().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).abs().max())
        if exp_t.numel()
        else 0.0,
        task=TaskResult("segmentation", sel.pattern, stats),
        **base,
    )
