"""Detections compared as detections: matched one to one, order never mattering.

A detection of the obtained run matches one of the expected run when their boxes overlap with IoU >= `iou`
(optimal assignment, assign.py): first among pairs with the same label, then, among the rest, pairs with different
labels (a label change: the same box, another class). Matched pairs must also agree on score (`score_atol`), mask
(mask IoU >= `mask_iou`, masks binarised at 0.5 like torchvision's) and keypoints (`keypoint_atol` pixels).
What is left unmatched is missing (expected only) or extra (obtained only). Everything found is counted in `stats`
with the first ITEMS cases (label, score, box); report/tasks.py words it.

The result counts detections (unit "detections"): `total` is every detection of either run, a matched pair once
(expected + extra); `mismatched` is each detection missing or extra, and each matched pair that changed (label,
score, mask, keypoints), a pair once whatever changed in it; so it never exceeds `total`. `max_matched_diff` is the
largest difference of a box coordinate (pixels) or a score between matched detections (None: nothing matched).
"""

from __future__ import annotations

from typing import Any

from ...results import Kind, OutputResult, TaskResult, Tolerance
from ...spec import ToleranceSpec
from ...tree import join_path
from .assign import match
from .select import DETECTION_KEYS, RuleError, Selected, nan_aware_diff

ITEMS = 20
MAX_PAIRS = 16_000_000  # detections of one run x the other's: the IoU matrix stays under 128 MiB
IOU, SCORE_ATOL, KEYPOINT_ATOL = 0.99, 1e-4, 1.0
LOOSEST_IOU = 0.5  # the loosest IoU a remedy proposes (COCO's loosest match): below it, boxes hardly overlap


def parse(d: dict[str, Any], name: str, keys: tuple[str, ...] = DETECTION_KEYS) -> tuple[dict[str, Any] | None, str]:
    """The detection keys of a dict (those of `keys`), checked: (tensors by key, "") or (None, what is wrong)."""
    found = {k: d[k] for k in keys if k in d}
    if "boxes" not in found:
        return None, f"{name} has no boxes tensor"
    boxes = found["boxes"]
    if not boxes.is_floating_point() or boxes.dim() != 2 or boxes.shape[1] != 4:
        return None, f"{name}.boxes has shape {list(boxes.shape)} ({boxes.dtype}), not [N, 4] floating (x1, y1, x2, y2)"
    n = boxes.shape[0]
    for key, t in found.items():
        if t.dim() == 0 or t.shape[0] != n:
            return None, f"{name}.{key} has shape {list(t.shape)}: not one entry per box ({n} boxes)"
    if "labels" in found and (found["labels"].is_floating_point() or found["labels"].dim() != 1):
        return None, f"{name}.labels must be integers, one per box (shape {list(found['labels'].shape)})"
    if "scores" in found and found["scores"].dim() != 1:
        return None, f"{name}.scores must be one number per box (shape {list(found['scores'].shape)})"
    if "masks" in found and found["masks"].dim() < 3:
        return None, f"{name}.masks has shape {list(found['masks'].shape)}: not [N, (1,) H, W]"
    if "keypoints" in found and (found["keypoints"].dim() != 3 or found["keypoints"].shape[2] < 2):
        return None, f"{name}.keypoints has shape {list(found['keypoints'].shape)}: not [N, K, 2 or 3]"
    return found, ""


def box_iou(a: Any, b: Any) -> Any:
    """IoU of every box of `a` with every box of `b` (x1, y1, x2, y2), in float64. Two empty boxes: 1 if equal."""
    import torch

    a, b = a.double(), b.double()
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    # Equal boxes are IoU 1, NaN at the same coordinates included (the elementwise NaN rule).
    ea, eb = a[:, None, :], b[None, :, :]
    same = ((ea == eb) | (ea.isnan() & eb.isnan())).all(-1)
    iou = torch.where(union > 0, inter / union.clamp(min=1e-300), torch.zeros_like(union))
    return torch.where(same, torch.ones_like(iou), iou)


def item(d: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "index": i,
        "label": int(d["labels"][i]) if "labels" in d else None,
        "score": float(d["scores"][i]) if "scores" in d else None,
        "box": [round(float(x), 4) for x in d["boxes"][i]],
    }


def _mask_iou(a: Any, b: Any) -> float:
    if a.is_floating_point() and not bool((a.isnan() == b.isnan()).all()):
        return 0.0  # NaN in one run only: the mask changed
    ma = a > 0.5 if a.is_floating_point() else a != 0
    mb = b > 0.5 if b.is_floating_point() else b != 0
    union = int((ma | mb).sum())
    return 1.0 if union == 0 else int((ma & mb).sum()) / union


def compare_all(
    sel: Selected, exp_d: dict[str, Any], obt_d: dict[str, Any], runs: tuple[int, int], tolerance: ToleranceSpec
) -> list[OutputResult]:
    """The detections judged, then the dict's per-detection tensors (sel.per_detection) elementwise on the matched
    pairs, each under its own tolerance: per-box extras follow the matching, so their order never matters either."""
    import dataclasses

    import torch

    from ...results import tolerance_for
    from ..values import compare_tensors

    result, pairs = compare(sel, exp_d, obt_d, runs)
    out = [result]
    for key in sel.per_detection:
        path = f"{sel.path}.{key}" if sel.path else key
        o = obt_d.get(key)
        if pairs is None:
            continue  # the detections' structure differs: said once, on the detection result
        if o is None or o.dim() == 0 or o.shape[0] != obt_d["boxes"].shape[0]:
            detail = "not one entry per detection in the obtained run"
            out.append(
                OutputResult(path=path, kind=Kind.STRUCTURE, tolerance=tolerance_for(path, tolerance), detail=detail)
            )
            continue
        ei = torch.tensor([i for i, _ in pairs], dtype=torch.long)
        oi = torch.tensor([j for _, j in pairs], dtype=torch.long)
        r = compare_tensors(path, exp_d[key][ei], o[oi], tolerance_for(path, tolerance), runs)
        note = f"compared on the {len(pairs)} matched detections"
        out.append(dataclasses.replace(r, detail=f"{r.detail}; {note}" if r.detail else note))
    return out


def compare(
    sel: Selected, exp_d: dict[str, Any], obt_d: dict[str, Any], runs: tuple[int, int]
) -> tuple[OutputResult, list[tuple[int, int]] | None]:
    """The detections judged; and the matched pairs (None when their structure differs)."""

    rule = sel.rule
    iou_min = IOU if rule.iou is None else rule.iou
    score_atol = SCORE_ATOL if rule.score_atol is None else rule.score_atol
    exp, problem = parse(exp_d, sel.name, sel.tensor_keys)
    if exp is None:
        raise RuleError(sel.pattern, f"compare pattern {sel.pattern!r} selects {sel.name} as detection, but {problem}")
    base: dict[str, Any] = dict(
        path=sel.name,
        tolerance=Tolerance(score_atol, 0.0, sel.pattern),
        expected_run=runs[0],
        obtained_run=runs[1],
        shape=(exp["boxes"].shape[0],),
        dtype=str(exp["boxes"].dtype).replace("torch.", ""),
        total=exp["boxes"].shape[0],
        unit="detections",
        members=tuple(join_path(sel.path, k) for k in exp),  # what blindness is judged on (host/checks/findings.py)
    )
    # Run 2 is read for every detection key, so a key that became a tensor (or stopped being one) is a difference.
    obt, problem = parse(obt_d, sel.name, tuple(k for k in DETECTION_KEYS if k in sel.tensor_keys or k in obt_d))
    form = _form_difference(exp, obt, problem)
    if obt is None or form:
        return OutputResult(kind=Kind.STRUCTURE, detail=form, **base), None
    if exp["boxes"].shape[0] * obt["boxes"].shape[0] > MAX_PAIRS:
        raise RuleError(
            sel.pattern,
            f"compare pattern {sel.pattern!r}: {sel.name} has {exp['boxes'].shape[0]} and {obt['boxes'].shape[0]} "
            f"detections, more than {MAX_PAIRS:,} pairs to match; cap the detections (detections_per_img) or compare "
            "them elementwise",
        )
    iou, pairs, relabelled = _pairs(exp, obt, iou_min)
    iou_np = iou.nan_to_num(nan=0.0).numpy()  # a NaN box in one run only matches nothing
    missing = sorted(set(range(iou_np.shape[0])) - {i for i, _ in pairs + relabelled})
    extra = sorted(set(range(iou_np.shape[1])) - {j for _, j in pairs + relabelled})
    stats: dict[str, Any] = {
        "expected": int(base["total"]),
        "obtained": int(obt["boxes"].shape[0]),
        "matched": len(pairs) + len(relabelled),
        "iou": iou_min,
        "score_atol": score_atol,
        "missing_count": len(missing),
        "extra_count": len(extra),
        "label_change_count": len(relabelled),
        "score_scale": _scale(exp, obt, "scores"),
        "iou_needed": _iou_needed(exp, obt, iou_np, missing, extra) if not relabelled else None,
    }
    _unmatched(exp, obt, iou_np, missing, extra, relabelled, stats)
    every = pairs + relabelled
    changed = _matched(exp, obt, every, iou, rule, iou_min, score_atol, stats)
    changed |= set(range(len(pairs), len(every)))  # a label change is a changed pair (once, whatever else changed)
    findings = len(missing) + len(extra) + len(changed)
    stats["changed_pair_count"] = len(changed)
    measured = [d for d in (stats.get("max_box_shift"), stats["max_score_diff"]) if d is not None]
    result = OutputResult(
        kind=Kind.VALUES if findings else Kind.MATCH,
        mismatched=findings,
        max_matched_diff=max(measured) if measured else None,
        magnitude=_scale(exp, obt, "boxes") or 0.0,
        task=TaskResult("detection", sel.pattern, stats),
        **{**base, "total": int(base["total"]) + len(extra)},  # every detection of either run, a pair once
    )
    return result, every


def _unmatched(
    exp: dict[str, Any],
    obt: dict[str, Any],
    iou_np: Any,
    missing: list[int],
    extra: list[int],
    relabelled: list[tuple[int, int]],
    stats: dict[str, Any],
) -> None:
    """The first ITEMS missing, extra and relabelled detections into `stats`, each missing or extra one with the IoU
    of the nearest unmatched detection of the other run (what explains it)."""

    def best(i: int | None, j: int | None) -> float:
        if i is not None:
            row = iou_np[i, extra] if extra else []
            return round(float(max(row, default=0.0)), 4)
        col = iou_np[missing, j] if missing else []
        return round(float(max(col, default=0.0)), 4)

    stats["missing"] = [{**item(exp, i), "best_iou": best(i, None)} for i in missing[:ITEMS]]
    stats["extra"] = [{**item(obt, j), "best_iou": best(None, j)} for j in extra[:ITEMS]]
    stats["label_changes"] = [
        {
            **item(exp, i),
            "to": int(obt["labels"][j]),
            "obtained_index": j,
            "obtained_score": float(obt["scores"][j]) if "scores" in obt else None,
            "iou": round(float(iou_np[i, j]), 6),
        }
        for i, j in relabelled[:ITEMS]
    ]


def _scale(exp: dict[str, Any], obt: dict[str, Any], key: str) -> float | None:
    """The largest finite |value| of `key` in either run (None: no such key, or no finite value)."""
    if key not in exp:
        return None
    values = [t[t.isfinite()].abs().max() for t in (exp[key].double(), obt[key].double()) if bool(t.isfinite().any())]
    return float(max(values)) if values else None


def _iou_needed(
    exp: dict[str, Any], obt: dict[str, Any], iou_np: Any, missing: list[int], extra: list[int]
) -> float | None:
    """The IoU threshold (rounded down, at least LOOSEST_IOU) at which every missing and extra detection would match
    one to one with the same label; None when none would (different counts, other labels, boxes too far apart)."""
    import math

    if not missing or len(missing) != len(extra):
        return None
    sub = iou_np[missing][:, extra]
    allowed = sub >= LOOSEST_IOU
    if "labels" in exp:
        allowed &= (exp["labels"][missing][:, None] == obt["labels"][extra][None, :]).numpy()
    found = match(sub, allowed)
    if len(found) != len(missing):
        return None
    return math.floor(min(float(sub[i, j]) for i, j in found) * 1000) / 1000


def _matched(
    exp: dict[str, Any],
    obt: dict[str, Any],
    every: list[tuple[int, int]],
    iou: Any,
    rule: Any,
    iou_min: float,
    score_atol: float,
    stats: dict[str, Any],
) -> set[int]:
    """The matched pairs compared (boxes, scores, masks, keypoints) into `stats`, the largest box and score
    differences among them included (None where nothing was measured); the positions in `every` of the pairs that
    changed, each once."""
    import torch

    stats["max_score_diff"] = None
    if not every:
        return set()
    ei = torch.tensor([i for i, _ in every])
    oi = torch.tensor([j for _, j in every])
    shift = nan_aware_diff(exp["boxes"][ei], obt["boxes"][oi]).amax(dim=1)
    stats["max_box_shift"] = float(shift.max())
    stats["min_iou"] = round(float(iou[ei, oi].min()), 6)
    changed: set[int] = set()
    if "scores" in exp:
        diffs = nan_aware_diff(exp["scores"][ei], obt["scores"][oi])
        stats["max_score_diff"] = float(diffs.max())
        bad = [k for k in diffs.argsort(descending=True).tolist() if diffs[k] > score_atol]
        stats["score_changes"] = [
            {**item(exp, every[k][0]), "obtained_score": float(obt["scores"][every[k][1]])} for k in bad[:ITEMS]
        ]
        stats["score_change_count"] = len(bad)
        changed.update(bad)
    if "masks" in exp:
        mask_min = iou_min if rule.mask_iou is None else rule.mask_iou
        mious = [_mask_iou(exp["masks"][i], obt["masks"][j]) for i, j in every]
        moved = [k for k, m in enumerate(mious) if m < mask_min]
        stats["masks"] = {"min_iou": round(min(mious), 6), "threshold": mask_min, "changed": len(moved)}
        changed.update(moved)
    if "keypoints" in exp:
        changed.update(_keypoints(exp, obt, ei, oi, rule, score_atol, stats))
    if "keypoints_scores" in exp:
        ks = nan_aware_diff(exp["keypoints_scores"][ei], obt["keypoints_scores"][oi])
        per = ks.amax(dim=1) if ks.dim() > 1 else ks
        stats["keypoint_scores"] = {"max_diff": float(per.max()), "changed": int((per > score_atol).sum())}
        changed.update((per > score_atol).nonzero().flatten().tolist())
    return changed


def _keypoints(
    exp: dict[str, Any], obt: dict[str, Any], ei: Any, oi: Any, rule: Any, score_atol: float, stats: dict[str, Any]
) -> list[int]:
    """The matched pairs' keypoints compared into stats["keypoints"]: the positions of the pairs whose keypoints
    moved beyond keypoint_atol or changed visibility."""
    k_atol = KEYPOINT_ATOL if rule.keypoint_atol is None else rule.keypoint_atol
    ek, ok = exp["keypoints"][ei], obt["keypoints"][oi]
    per = nan_aware_diff(ek[..., :2], ok[..., :2]).norm(dim=-1).amax(dim=1)
    moved = per > k_atol
    stats["keypoints"] = {"max_shift": float(per.max()), "atol": k_atol, "changed": int(moved.sum())}
    if ek.shape[-1] >= 3:  # visibility (x, y, v): a keypoint turning visible or hidden is a change
        vis = nan_aware_diff(ek[..., 2], ok[..., 2]).amax(dim=1) > score_atol
        stats["keypoints"]["visibility_changed"] = int(vis.sum())
        moved = moved | vis
        stats["keypoints"]["changed"] = int(moved.sum())
    return [int(k) for k in moved.nonzero().flatten().tolist()]


def _form_difference(exp: dict[str, Any], obt: dict[str, Any] | None, problem: str) -> str:
    """Why the two runs' detections are not the same kind of thing ("" when they are)."""
    if obt is None or set(obt) != set(exp) or exp["boxes"].dtype != obt["boxes"].dtype:
        if obt is not None and set(obt) == set(exp):
            a_t = str(exp["boxes"].dtype).replace("torch.", "")
            return f"boxes are {a_t} in one run, {obt['boxes'].dtype} in the other"
        return problem or "detection keys differ: " + ", ".join(sorted(exp)) + " vs " + ", ".join(sorted(obt or {}))
    for key, e in exp.items():  # per-detection shapes (mask size, keypoint count) and dtypes must agree
        o = obt[key]
        if e.dtype != o.dtype:
            a_t, b_t = (str(t.dtype).replace("torch.", "") for t in (e, o))
            return f"{key} are {a_t} in one run, {b_t} in the other"
        if e.shape[1:] != o.shape[1:]:
            return f"{key} are {list(e.shape[1:])} per detection in one run, {list(o.shape[1:])} in the other"
    return ""


def _pairs(
    exp: dict[str, Any], obt: dict[str, Any], iou_min: float
) -> tuple[Any, list[tuple[int, int]], list[tuple[int, int]]]:
    """The IoU matrix; the pairs matched with the same label; then, among the rest, pairs whose label changed."""
    iou = box_iou(exp["boxes"], obt["boxes"])
    close = (iou >= iou_min).numpy()
    if "labels" in exp:
        same_label = (exp["labels"][:, None] == obt["labels"][None, :]).numpy()
    else:
        same_label = close | True
    iou_np = iou.nan_to_num(nan=0.0).numpy()  # a NaN box in one run only matches nothing
    # Run 2 equal to run 1 (NaN at the same places too): the identity is the optimal matching, found in linear time.
    identical = all(exp[k].shape == obt[k].shape and bool((nan_aware_diff(exp[k], obt[k]) == 0).all()) for k in exp)
    pairs = [(i, i) for i in range(len(iou_np))] if identical else match(iou_np, close & same_label)
    left_e = sorted(set(range(len(iou_np))) - {i for i, _ in pairs})
    left_o = sorted(set(range(iou_np.shape[1])) - {j for _, j in pairs})
    relabelled: list[tuple[int, int]] = []
    if left_e and left_o:
        sub = match(iou_np[left_e][:, left_o], close[left_e][:, left_o])
        relabelled = [(left_e[i], left_o[j]) for i, j in sub]
    return iou, pairs, relabelled
