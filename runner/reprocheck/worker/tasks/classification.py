"""Class scores compared as classifications: per sample, the same top-k classes in the same order.

The class dimension is `dim` (default -1); every other dimension indexes samples. Ranks come from a stable sort,
so equal scores rank by class index in both runs. A single class score (shape [..., 1]) is a binary decision:
positive or not. What changed is counted in `stats` with the first ITEMS samples: the class that changed at the
first differing rank, and run 1's gap between that rank and the next (the top-1/top-2 margin at rank 1).
NaN follows the elementwise rule: NaN at the same places in both runs is equal, NaN in one run only changes the
sample. With `score_atol` the scores themselves are bounded too; the largest score difference is always reported.
The result counts samples (unit "samples"): `total` samples, `mismatched` the samples that changed; every sample is
matched with itself, so `max_matched_diff` is the largest score difference (None with no sample).
"""

from __future__ import annotations

import math
from typing import Any

from ...results import Kind, OutputResult, TaskResult
from .select import RuleError, Selected, form_changed, nan_aware_diff

ITEMS = 20


def scores_by_sample(t: Any, dim: int) -> Any:
    """[samples, classes], float64."""
    moved = t.movedim(dim, -1)
    return moved.reshape(-1, moved.shape[-1]).double()


def sample_index(flat: int, shape: tuple[int, ...]) -> list[int]:
    out = []
    for size in reversed(shape):
        out.append(flat % size if size else 0)
        flat //= size if size else 1
    return list(reversed(out))


def ranked(scores: Any, k: int) -> tuple[Any, Any]:
    """(values, classes) of the top k (+1 where there is one) per sample, best first."""
    import torch

    if scores.shape[1] == 1:  # binary: class 1 when the score is positive
        decision = (scores[:, 0] > 0).long()
        return scores.abs(), decision[:, None]
    values, classes = torch.sort(scores.nan_to_num(nan=-math.inf), dim=1, descending=True, stable=True)
    return values[:, : k + 1], classes[:, : k + 1]


def compare(sel: Selected, exp_t: Any, obt_t: Any, runs: tuple[int, int]) -> OutputResult:
    rule = sel.rule
    k = rule.top_k or 1
    dim = -1 if rule.dim is None else rule.dim
    classes = exp_t.shape[dim]
    base = {**sel.fields(exp_t, runs), "unit": "samples"}
    if classes > 1 and k > classes:
        raise RuleError(
            sel.pattern,
            f"compare pattern {sel.pattern!r}: top_k is {k} but {sel.name} has {classes} classes along dim {dim}",
        )
    form = form_changed(exp_t, obt_t)
    if form:
        return OutputResult(kind=Kind.STRUCTURE, detail=form, **base)
    e, o = scores_by_sample(exp_t, dim), scores_by_sample(obt_t, dim)
    lead = tuple(exp_t.movedim(dim, -1).shape[:-1])
    ev, ec = ranked(e, k)
    _, oc = ranked(o, k)
    kk = min(k, ec.shape[1])
    diff = nan_aware_diff(e, o)  # inf where NaN is in one run only
    ranks_differ = (ec[:, :kk] != oc[:, :kk]).any(dim=1)
    nan_one = (e.isnan() ^ o.isnan()).any(dim=1)
    bad = ranks_differ | nan_one
    if rule.score_atol is not None:
        bad |= (diff > rule.score_atol).any(dim=1)
    differ = bad.nonzero().flatten().tolist()
    changes = [_change(s, ranks_differ, nan_one, ev, ec, oc, diff, kk, lead) for s in differ[:ITEMS]]
    max_diff = float(diff.max()) if diff.numel() else None
    stats = {
        "samples": int(e.shape[0]),
        "classes": int(classes),
        "top_k": k,
        "changed_count": len(differ),
        "class_change_count": int(ranks_differ.sum()),
        "nan_change_count": int(nan_one.sum()),
        "changed": changes,
        "max_score_diff": max_diff,
        "score_atol": rule.score_atol,
    }
    return OutputResult(
        kind=Kind.VALUES if differ else Kind.MATCH,
        total=int(e.shape[0]),
        mismatched=len(differ),
        max_abs_diff=max_diff or 0.0,
        max_matched_diff=max_diff,
        magnitude=float(e.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).abs().max()) if e.numel() else 0.0,
        task=TaskResult("classification", sel.pattern, stats),
        **base,
    )


def _change(
    s: int, ranks_differ: Any, nan_one: Any, ev: Any, ec: Any, oc: Any, diff: Any, kk: int, lead: tuple
) -> dict:
    """How sample `s` changed: the first rank whose class differs and its margin, else why its scores differ."""
    if not ranks_differ[s]:  # same classes; NaN in one run only, or scores beyond score_atol
        return {
            "sample": sample_index(s, lead),
            "rank": None,
            "from": int(ec[s, 0]),
            "to": int(oc[s, 0]),
            "expected_top": ec[s, :kk].tolist(),
            "obtained_top": oc[s, :kk].tolist(),
            "margin": None,
            "why": "nan" if bool(nan_one[s]) else "score",
            "score_diff": float(diff[s].max()),
        }
    rank = int((ec[s, :kk] != oc[s, :kk]).nonzero()[0])
    gap = (
        float(ev[s, 0])
        if ev.shape[1] == 1
        else float(ev[s, rank] - ev[s, rank + 1])
        if ev.shape[1] > rank + 1
        else None
    )
    return {
        "sample": sample_index(s, lead),
        "rank": rank + 1,
        "from": int(ec[s, rank]),
        "to": int(oc[s, rank]),
        "expected_top": ec[s, :kk].tolist(),
        "obtained_top": oc[s, :kk].tolist(),
        "margin": gap,
    }
