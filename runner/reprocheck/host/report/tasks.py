"""Task-aware results in task words: detections missing, extra or relabelled; samples whose class changed; pixels
that changed class; and outputs on a decision boundary (fragile). Shared by every format."""

from __future__ import annotations

import decimal
import math
from typing import Any

from ...results import SAFETY, Fragile, OutputResult

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
                f"{_many(s['score_change_count'], 'matched score')} changed by up to {_n(s['max_score_diff'])} "
                f"(score_atol {s['score_atol']:g})"
            )
        if s.get("masks") and s["masks"]["changed"]:
            m = s["masks"]
            iou = f"mask IoU down to {m['min_iou']:.3g} < {m['threshold']:g}"
            parts.append(f"{_many(m['changed'], 'mask')} changed ({iou})")
        if s.get("keypoints") and s["keypoints"]["changed"]:
            k = s["keypoints"]
            vis = f", {k['visibility_changed']} changed visibility" if k.get("visibility_changed") else ""
            parts.append(
                f"{_many(k['changed'], 'keypoint set')} changed (moved by up to {_n(k['max_shift'])} px, keypoint_atol "
                f"{k['atol']:g}{vis})"
            )
        if s.get("keypoint_scores") and s["keypoint_scores"]["changed"]:
            parts.append(f"{_many(s['keypoint_scores']['changed'], 'keypoint score set')} changed")
        differ = f"{o.mismatched} of {_count(o.total)} differ"
        head = f"since {a}, {differ}: " if golden else f"{differ} between {a} and {b}: "
        return f"{o.path}: {head}" + "; ".join(parts) + f"; {matched_words(o)}"
    if not s["expected"]:
        return f"{o.path}: no detections in either run"
    shift = f", max box shift {_n(s.get('max_box_shift'))} px" if s.get("matched") else ""
    score = f", max score diff {_n(s['max_score_diff'])}" if s["max_score_diff"] is not None else ""
    return f"{o.path}: {_count(s['expected'])} match (IoU >= {s['iou']:g}{shift}{score})"


UNITS = {"detections": "detection", "samples": "sample", "pixels": "pixel", "values": "value"}


def counted(o: OutputResult, n: int | None = None) -> str:
    """A count in the output's unit: "3 detections", "1 sample", "2000 values"."""
    n = o.total if n is None else n
    return f"{n} {_plural(n, UNITS.get(o.unit, 'value'))}"


def matched_words(o: OutputResult) -> str:
    """What max_matched_diff measured, or why there is none: never a bare 0 beside a failure."""
    assert o.task is not None
    s, d = o.task.stats, o.max_matched_diff
    if o.task.task == "detection":
        if d is None:
            return "no detection matched, so no value difference to measure"
        if d == 0:
            return "the boxes and scores of matched detections are equal (largest difference 0)"
        score, shift = s.get("max_score_diff") or 0.0, s.get("max_box_shift") or 0.0
        what = "a score" if score >= shift else "a box coordinate, px"
        return f"largest difference between matched detections {_n(d)} ({what})"
    if d is None:
        return "an integer label map: no scores to measure" if o.unit == "pixels" else "no sample to measure"
    return f"largest score difference {_n(d)}"


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
    return _many(n, "detection")


def _many(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


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
        return f"{o.path}: all {s['pixels']} pixels have the same class ({matched_words(o)})"
    where = "; ".join(
        f"sample {r['sample']} rows {r['rows'][0]}–{r['rows'][1]}, cols {r['cols'][0]}–{r['cols'][1]}"
        for r in s["regions"][:SHOWN]
    )
    worst = ", ".join(f"class {c['class']} IoU {c['iou']:.3g}" for c in s["class_iou"][:SHOWN])
    verdict = "" if not o else " (within min_agreement)"
    return (
        f"{o.path}: {s['changed_pixels']} of {s['pixels']} pixels changed class between {a} and {b}{verdict} "
        f"({agree}); changed region: {where}; lowest class IoU: {worst}; {matched_words(o)}"
    )


def sentence(o: OutputResult, a: str, b: str) -> str:
    assert o.task is not None
    return {"detection": detection, "classification": classification, "segmentation": segmentation}[o.task.task](
        o, a, b
    )


MIN_AGREEMENT = 0.99  # the lowest min_agreement a remedy proposes: below it, whole regions change class
LOOSEST_IOU = 0.5  # the lowest iou or mask_iou a remedy proposes (COCO's loosest match)
CAUSE = {
    "detection": "a score near the threshold, an NMS tie, or nondeterminism before them",
    "classification": "the class scores vary between runs by more than the gap between the classes",
    "segmentation": "the class scores vary by more than the gap between the two best classes there",
}


def up(x: float) -> str:
    """x rounded up to three significant digits: a tolerance printed from it still passes x (subnormals too)."""
    if x <= 0 or not math.isfinite(x):
        return f"{x:g}"
    return _text(ceiling(x, 3))


def ceiling(x: float, digits: int) -> decimal.Decimal:
    """Positive finite x rounded up to `digits` significant digits, in exact decimal arithmetic (a subnormal's
    power of ten would underflow to 0 in floats)."""
    d = decimal.Decimal(repr(x))  # the shortest text that reads back as x; rounding it up never reads back below x
    return d.quantize(decimal.Decimal(1).scaleb(d.adjusted() - digits + 1), rounding=decimal.ROUND_CEILING)


def down(x: float, digits: int = 3) -> str:
    """x rounded down to `digits` decimals (a threshold printed from it still accepts x)."""
    if not math.isfinite(x):
        return f"{x:g}"
    d = decimal.Decimal(repr(x))
    return _text(d.quantize(decimal.Decimal(1).scaleb(-digits), rounding=decimal.ROUND_FLOOR))


def _text(d: decimal.Decimal) -> str:
    n = d.normalize()
    return f"{n:f}" if n == 0 or decimal.Decimal("1e-4") <= abs(n) < decimal.Decimal("1e6") else f"{n:e}"


def _blind(need: float, scale: float | None) -> bool:
    """A bound that, with calibrate's margin, reaches the values' own scale accepts any value: never proposed."""
    return not math.isfinite(need) or (scale is not None and need * SAFETY >= scale)


def _detection_knobs(o: OutputResult) -> tuple[list[str], list[str]]:
    """The detection rule's knobs that would pass what changed, and what no knob can honestly accept."""
    assert o.task is not None
    s, knobs, refused = o.task.stats, [], []
    if s["label_change_count"]:
        refused.append(f"{_count(s['label_change_count'])} changed label, and no rule accepts another class")
    if s["missing_count"] or s["extra_count"]:
        if s.get("iou_needed") is not None:
            knobs.append(f"iou: {s['iou_needed']:g} (their scores are then compared too)")
        else:
            lost = s["missing_count"] + s["extra_count"]
            refused.append(f"{_count(lost)} in one run only, with no same-label counterpart at IoU >= {LOOSEST_IOU:g}")
    scores = [s["max_score_diff"] if s.get("score_change_count") else 0.0]
    if s.get("keypoint_scores") and s["keypoint_scores"]["changed"]:
        scores.append(float(s["keypoint_scores"]["max_diff"]))
    if max(scores) > 0:
        if _blind(max(scores), s.get("score_scale")):
            refused.append(f"scores change by up to {_n(max(scores))} (largest |score| {_n(s.get('score_scale'))})")
        else:
            knobs.append(f"score_atol: {up(max(scores))}")
    if s.get("masks") and s["masks"]["changed"]:
        m = float(s["masks"]["min_iou"])
        if m >= LOOSEST_IOU:
            knobs.append(f"mask_iou: {down(m)}")
        else:
            refused.append(f"masks overlap at IoU down to {m:.3g}")
    k = s.get("keypoints") or {}
    if k.get("visibility_changed"):
        refused.append(f"{k['visibility_changed']} keypoint sets change visibility")
    elif k.get("changed"):
        shift = float(k["max_shift"])
        if _blind(shift, o.magnitude or None):
            refused.append(f"keypoints move by up to {_n(shift)} px (largest box coordinate {_n(o.magnitude)})")
        else:
            knobs.append(f"keypoint_atol: {up(shift)}")
    return knobs, refused


def _knobs(o: OutputResult) -> tuple[list[str], list[str]]:
    assert o.task is not None
    s = o.task.stats
    if o.task.task == "detection":
        return _detection_knobs(o)
    if o.task.task == "segmentation":
        if s["agreement"] >= MIN_AGREEMENT:
            return [f"min_agreement: {down(s['agreement'], 4)}"], []
        return [], [f"{100 * (1 - s['agreement']):.3g}% of the pixels change class"]
    refused = []
    if s["class_change_count"]:
        refused.append(f"{counted(o, s['class_change_count'])} changed class, and no rule accepts another class")
    if s["nan_change_count"]:
        refused.append(f"{counted(o, s['nan_change_count'])} hold NaN in one run only")
    if refused or o.max_matched_diff is None:
        return [], refused
    if _blind(o.max_matched_diff, o.magnitude or None):
        return [], [f"scores change by up to {_n(o.max_matched_diff)} (largest |score| {_n(o.magnitude)})"]
    return [f"score_atol: {up(o.max_matched_diff)}"], []


def remedy(o: OutputResult) -> str:
    """A failing task output's remedy: the rule's own knobs that would pass it, never a bound as large as the values
    themselves; else why no tolerance can honestly fix it. Either way, where to look."""
    assert o.task is not None
    knobs, refused = _knobs(o)
    find = f"{CAUSE[o.task.task]}; `reprocheck diagnose` finds the first module that diverges"
    if refused or not knobs:
        why = "; ".join(refused) or "what changed is not a value a rule bounds"
        return f"no tolerance can honestly fix it ({why}): find why the runs differ: {find}"
    return (
        f"would pass with {' and '.join(knobs)} in its compare rule ({o.task.pattern!r}), if differences that large "
        f"are acceptable; but first ask why the runs differ: {find}"
    )


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
