"""Fragility: run 1's outputs judged for how close they sit to a decision boundary, where another GPU, thread count
or library version may push them across even though every run here agrees.

  * detection: scores within `score_margin` of the score threshold (a detection that may vanish or appear);
    same-label box pairs whose IoU is within `nms_margin` of the NMS threshold (one may be suppressed), with a
    note when their scores are also within `score_margin` (which one survives is then a tie-break);
  * classification: adjacent ranks within the top k (and rank k against k + 1) whose scores are within
    margin * max(1, |top-1|) (the order or the set may flip);
  * segmentation: pixels whose best two classes are that close; flagged only when there are more of them than
    `min_agreement` allows to change.
Thresholds come from the rule, else from the model (torchvision detectors' `score_thresh`/`nms_thresh`, recorded
by the run); margins default to sqrt(eps) of the output's dtype (float32: 3.5e-4, float16: 0.031, bfloat16: 0.088).
"""

from __future__ import annotations

import math
from typing import Any

from ...results import Fragile
from ...tree import Outputs
from . import classification, segmentation
from .detection import box_iou, item, parse
from .select import Selected, dict_tensors, node_at

ITEMS = 10


def default_margin(dtype: Any) -> float:
    import torch

    return math.sqrt(torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0


def fragility(outputs: Outputs, selection: list[Selected], facts: dict[str, Any]) -> tuple[list[Fragile], list[str]]:
    """Run 1's outputs near a decision boundary, and notes on what could not be judged (a threshold unknown)."""
    found: list[Fragile] = []
    notes: list[str] = []
    for sel in selection:
        node = node_at(outputs.tree, sel.path)
        task = sel.rule.as_
        if task == "detection":
            d, _ = parse(dict_tensors(node, outputs.tensors), sel.name)
            if d is not None:
                found += _detection(sel, d, facts, notes)
        else:
            t = outputs.tensors[node["path"]]
            found += _classification(sel, t) if task == "classification" else _segmentation(sel, t)
    return found, notes


def _detection(sel: Selected, d: dict[str, Any], facts: dict[str, Any], notes: list[str]) -> list[Fragile]:
    import torch

    rule, out = sel.rule, []
    scores = d.get("scores")
    score_margin = rule.score_margin if rule.score_margin is not None else default_margin(d["boxes"].dtype)
    thresh = rule.score_thresh if rule.score_thresh is not None else facts.get("score_thresh")
    if scores is not None and thresh is None:
        note = (
            f"compare pattern {sel.pattern!r}: the model has no score_thresh attribute, so detections at the score "
            "threshold cannot be flagged; set `score_thresh` in the rule"
        )
        if note not in notes:
            notes.append(note)
    if scores is not None and thresh is not None and scores.numel():
        dist = (scores.double() - thresh).abs()
        near = (dist <= score_margin).nonzero().flatten()
        if near.numel():
            order = near[dist[near].argsort()][:ITEMS].tolist()
            items = tuple(item(d, i) for i in order)
            out.append(Fragile(sel.name, "detection", "score-threshold", near.numel(), score_margin, thresh, items))
    cap = facts.get("detections_per_img")
    if cap and d["boxes"].shape[0] == cap:
        note = (
            f"compare pattern {sel.pattern!r}: {sel.name} holds exactly detections_per_img ({cap:g}) detections, "
            "so the lowest-scored ones competed with detections that were cut; raise detections_per_img or the "
            "score threshold for a stable set"
        )
        if note not in notes:
            notes.append(note)
    nms = rule.nms_thresh if rule.nms_thresh is not None else facts.get("nms_thresh")
    n = d["boxes"].shape[0]
    if nms is not None and n > 1:
        nms_margin = rule.nms_margin if rule.nms_margin is not None else default_margin(d["boxes"].dtype)
        pairs: list[tuple[float, int, int, float]] = []
        for start in range(0, n, 1024):  # rows in chunks: memory stays bounded for thousands of boxes
            iou = box_iou(d["boxes"][start : start + 1024], d["boxes"])
            rows = torch.arange(start, min(n, start + 1024))[:, None]
            edge = ((iou - nms).abs() <= nms_margin) & (rows < torch.arange(n)[None, :])
            if "labels" in d:
                edge &= d["labels"][start : start + 1024, None] == d["labels"][None, :]
            for i, j in edge.nonzero().tolist():
                pairs.append((abs(float(iou[i, j]) - nms), start + i, j, float(iou[i, j])))
        if pairs:
            pairs.sort()
            items = tuple(
                {
                    "index": [i, j],
                    "label": int(d["labels"][i]) if "labels" in d else None,
                    "iou": round(iou_ij, 6),
                    "scores": [float(scores[i]), float(scores[j])] if scores is not None else None,
                    "near_tie": scores is not None and abs(float(scores[i]) - float(scores[j])) <= score_margin,
                }
                for _, i, j, iou_ij in pairs[:ITEMS]
            )
            out.append(Fragile(sel.name, "detection", "nms", len(pairs), nms_margin, nms, items))
    return out


def _classification(sel: Selected, t: Any) -> list[Fragile]:
    rule = sel.rule
    k = rule.top_k or 1
    margin = rule.margin if rule.margin is not None else default_margin(t.dtype)
    dim = -1 if rule.dim is None else rule.dim
    scores = classification.scores_by_sample(t, dim)
    if not scores.numel():
        return []
    values, classes = classification.ranked(scores, k)
    scale = values[:, :1].abs().clamp(min=1.0)
    if scores.shape[1] == 1:
        gaps = values  # binary: the distance from the decision at 0
    else:
        gaps = values[:, :-1] - values[:, 1:]
    edge = gaps < margin * scale
    samples = edge.any(dim=1).nonzero().flatten()
    if not samples.numel():
        return []
    lead = tuple(t.movedim(dim, -1).shape[:-1])
    worst = sorted(samples.tolist(), key=lambda s: float(gaps[s][edge[s]].min()))[:ITEMS]
    items = []
    for s in worst:
        r = int(edge[s].nonzero()[0])
        pair = [int(classes[s, r])] + ([int(classes[s, r + 1])] if classes.shape[1] > r + 1 else [])
        items.append(
            {"sample": classification.sample_index(s, lead), "rank": r + 1, "classes": pair, "gap": float(gaps[s, r])}
        )
    return [Fragile(sel.name, "classification", "top-k", samples.numel(), margin, None, tuple(items))]


def _segmentation(sel: Selected, t: Any) -> list[Fragile]:
    rule = sel.rule
    if not t.is_floating_point():
        return []  # a label map carries no scores to judge
    dim = -3 if rule.dim is None else rule.dim
    if t.shape[dim] < 2:
        return []
    margin = rule.margin if rule.margin is not None else default_margin(t.dtype)
    top = t.double().nan_to_num(nan=-math.inf).topk(2, dim=dim).values
    first, second = top.select(dim, 0), top.select(dim, 1)
    edge = (first - second) < margin * first.abs().clamp(min=1.0)
    count = int(edge.sum())
    need = 1.0 if rule.min_agreement is None else rule.min_agreement
    allowed = math.floor((1.0 - need) * edge.numel() + 1e-9)
    if count <= allowed:
        return []
    per = segmentation.labels(edge.long(), -3)  # [samples, H, W]
    items = tuple(
        {"sample": s, "pixels": int(per[s].sum())}
        for s in per.flatten(1).any(dim=1).nonzero().flatten().tolist()[:ITEMS]
    )
    return [Fragile(sel.name, "segmentation", "pixels", count, margin, None, items)]
