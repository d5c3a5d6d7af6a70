"""Task-aware results in task words: detections missing, extra or relabelled; samples whose class changed; pixels
that changed class; and outputs on a decision boundary (fragile). Shared by every format."""

from __future__ import annotations

from typing import Any

from ...results import Fragile, OutputResult

SHOWN = 3  # examples written out per kind of finding; the JSON report has up to 20


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _det(d: dict[str, Any], digits: int = 3) -> str:
    parts = []
    if d.get("label") is not None:
        parts.append(f"label {d['label']}")
    if d.get("score") is not None:
        parts.append(f"score {d['score']:.{digits}g}")
    box = _box(d)
    return " ".join(parts) + f" at {box}" if parts else f"box {box}"


def _some(items: list[dict[str, Any]], count: int, word: Any) -> str:
    text = "; ".join(word(d) for d in items[:SHOWN])
    return text + (f"; and {count - SHOWN} more" if count > SHOWN else "")


def detection(o: OutputResult, a: str, b: str) -> str:
    assert o.task is not None
    s = o.task.stats
    golden = o.expected_run == 0
    if not o:
        parts = []
        if s["label_change_count"]:
            changes = _some(s["label_changes"], s["label_change_count"], _relabel)
            parts.append(f"{s['label_change_count']} of {s['expected']} detections changed label: {changes}")
        if s["missing_count"]:
            gone = _some(s["missing"], s["missing_count"], _det)
            verb = "disappeared" if golden else f"of {a} {_has(s['missing_count'])} no match in {b}"
            parts.append(f"{_count(s['missing_count'])} {verb} ({gone})")
        if s["extra_count"]:
            new = _some(s["extra"], s["extra_count"], _det)
            verb = "appeared" if golden else f"of {b} {_has(s['extra_count'])} no match in {a}"
            parts.append(f"{_count(s['extra_count'])} {verb} ({new})")
        if s.get("score_change_count"):
            parts.append(
                f"{s['score_change_count']} matched scores changed by up to {_n(s['max_score_diff'])} "
                f"(score_atol {s['score_atol']:g})"
            )
        if s.get("masks") and s["masks"]["changed"]:
            m = s["masks"]
            parts.append(f"{m['changed']} masks changed (mask IoU down to {m['min_iou']:.3g} < {m['threshold']:g})")
        if s.get("keypoints") and s["keypoints"]["changed"]:
            k = s["keypoints"]
            vis = f", {k['visibility_changed']} changed visibility" if k.get("visibility_changed") else ""
            parts.append(
                f"{k['changed']} keypoint sets changed (moved by up to {_n(k['max_shift'])} px, keypoint_atol "
                f"{k['atol']:g}{vis})"
            )
        if s.get("keypoint_scores") and s["keypoint_scores"]["changed"]:
            parts.append(f"{s['keypoint_scores']['changed']} keypoint score sets changed")
        head = f"since {a}, " if golden else f"detections differ between {a} and {b}: "
        return f"{o.path}: {head}" + "; ".join(parts)
    shift = f", max box shift {_n(s.get('max_box_shift'))} px" if s.get("matched") else ""
    return (
        f"{o.path}: {_count(s['expected'])} match (IoU >= {s['iou']:g}{shift}, "
        f"max score diff {_n(s['max_score_diff'])})"
    )


def _box(d: dict[str, Any]) -> str:
    return "[" + ", ".join(f"{x:g}" for x in d["box"]) + "]"


def _relabel(d: dict[str, Any]) -> str:
    score = f"score {d['score']:.3g} " if d.get("score") is not None else ""
    return f"{d['label']} → {d['to']} at IoU {d['iou']:.3g} ({score}at {_box(d)})"


def _has(n: int) -> str:
    return "has" if n == 1 else "have"


def _sample(index: list[int]) -> str:
    return ", ".join(map(str, index))


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _count(n: int) -> str:
    return f"{n} detection" + ("" if n == 1 else "s")


def classification(o: OutputResult, a: str, b: str) -> str:
    assert o.task is not None
    s = o.task.stats
    k = f"top-{s['top_k']}" if s["top_k"] > 1 else "top-1"
    if o:
        return (
            f"{o.path}: the {k} classes match for all {s['samples']} samples (max score diff {_n(s['max_score_diff'])})"
        )

    def word(c: dict[str, Any]) -> str:
        if c.get("why") == "nan":
            return f"sample {_sample(c['sample'])}: its scores are NaN in one run only"
        if c.get("why") == "score":
            return (
                f"sample {_sample(c['sample'])}: same classes, scores moved by {_n(c['score_diff'])} "
                f"(score_atol {s['score_atol']:g})"
            )
        at = f" at rank {c['rank']}" if s["top_k"] > 1 else ""
        margin = "" if c["margin"] is None else f" ({a}'s margin there {c['margin']:.3g})"
        return f"sample {_sample(c['sample'])}: class {c['from']} → {c['to']}{at}{margin}"

    changes = _some(s["changed"], s["changed_count"], word)
    what = f"{k} class" + (" or scores" if s.get("score_atol") is not None else "")
    return (
        f"{o.path}: {s['changed_count']} of {s['samples']} {_plural(s['samples'], 'sample')} changed {what} "
        f"between {a} and {b}: {changes}; max score diff {_n(s['max_score_diff'])}"
    )


def segmentation(o: OutputResult, a: str, b: str) -> str:
    assert o.task is not None
    s = o.task.stats
    agree = f"agreement {100 * s['agreement']:.4g}%, min_agreement {100 * s['min_agreement']:.4g}%"
    if not s["changed_pixels"]:
        return f"{o.path}: all {s['pixels']} pixels have the same class (max score diff {_n(s.get('max_score_diff'))})"
    where = "; ".join(
        f"sample {r['sample']} rows {r['rows'][0]}–{r['rows'][1]}, cols {r['cols'][0]}–{r['cols'][1]}"
        for r in s["regions"][:SHOWN]
    )
    worst = ", ".join(f"class {c['class']} IoU {c['iou']:.3g}" for c in s["class_iou"][:SHOWN])
    verdict = "" if not o else " (within min_agreement)"
    return (
        f"{o.path}: {s['changed_pixels']} of {s['pixels']} pixels changed class between {a} and {b}{verdict} "
        f"({agree}); changed region: {where}; lowest class IoU: {worst}"
    )


def sentence(o: OutputResult, a: str, b: str) -> str:
    assert o.task is not None
    return {"detection": detection, "classification": classification, "segmentation": segmentation}[o.task.task](
        o, a, b
    )


REMEDY = {
    "detection": "the detections themselves change between runs: a score near the threshold, an NMS tie, or "
    "nondeterminism before them; run `reprocheck diagnose` to find the first module that diverges",
    "classification": "the predicted classes change: the class scores vary between runs by more than the gap "
    "between the classes; find the nondeterminism with `reprocheck diagnose`",
    "segmentation": "pixels change class between runs: the class scores vary by more than the gap between the two "
    "best classes there; find the nondeterminism with `reprocheck diagnose`, or lower `min_agreement` if a few "
    "boundary pixels are acceptable",
}


def fragile_sentence(f: Fragile) -> str:
    first = f.items[0] if f.items else {}
    if f.reason == "score-threshold":
        return (
            f"{f.path}: {_count(f.count)} score within {f.margin:.2g} of the score threshold {f.threshold:g} "
            f"(closest: {_det(first, 7)}): another device, thread count or library version may drop or add them"
        )
    if f.reason == "nms":
        tie = ", scores nearly equal: which survives is a tie-break" if first.get("near_tie") else ""
        scores = first.get("scores")
        shown = f", scores {scores[0]:.7g} and {scores[1]:.7g}" if scores else ""
        label = f"label {first['label']}: " if first.get("label") is not None else ""
        return (
            f"{f.path}: {f.count} same-label box {'pairs overlap' if f.count != 1 else 'pair overlaps'} at IoU within "
            f"{f.margin:.2g} of the NMS threshold {f.threshold:g} (closest: {label}detections {first['index']}, "
            f"IoU {first['iou']:.6g}{shown}{tie}): NMS may keep or suppress one on another machine"
        )
    if f.reason == "top-k":
        who = "samples have" if f.count != 1 else "sample has"
        return (
            f"{f.path}: {f.count} {who} two ranked classes within {f.margin:.2g} x max(1, |top-1|) (closest: sample "
            f"{_sample(first['sample'])}, rank {first['rank']}, classes {first['classes']}, gap {first['gap']:.3g}): "
            "the predicted classes may flip on another machine"
        )
    who = "pixels have their" if f.count != 1 else "pixel has its"
    return (
        f"{f.path}: {f.count} {who} two best classes within {f.margin:.2g} x max(1, |top-1|), more than "
        "min_agreement lets change: the map may change on another machine"
    )
