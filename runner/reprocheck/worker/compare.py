"""Nested outputs -> per-output results. No printing here: reports render these objects.

Rules (the comparison contract, also in the README):
  * structure first: container types, keys, lengths, shapes, dtypes; a difference is a
    `structure` mismatch with a description, never a crash;
  * floats: |obtained - expected| <= atol + rtol * |expected|, elementwise; with the default
    atol = rtol = 0 the comparison is bitwise, so -0.0 vs 0.0 is a mismatch (the sign of zero
    shows a different computation, and flips 1/x or atan2 downstream);
  * integers and bools: exactly, whatever the tolerance;
  * NaN at the same positions in both counts as equal (and is counted); NaN in one only is
    a mismatch; infinities are equal only when equal;
  * per-output tolerances: glob patterns over paths, the first matching pattern wins, and a
    rule that sets only atol or rtol takes the other from the check.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from ..results import Comparison, Kind, OutputResult, Tolerance, output_from_dict, tolerance_for
from ..spec import CompareSpec, ToleranceSpec
from ..tree import Outputs
from .tasks import Selected, compare_selected, select
from .values import compare_tensors

__all__ = [
    "Comparison",
    "Kind",
    "OutputResult",
    "Tolerance",
    "compare",
    "compare_runs",
    "compare_stream",
    "compare_tensors",
    "tolerance_for",
]


# --- structure ------------------------------------------------------------------------------------


def _walk(
    exp: dict[str, Any],
    obt: dict[str, Any],
    path: str,
    found: list[tuple[str, str]],
    pairs: list[tuple[str, bool]],
    chosen: dict[str, Selected] | None = None,
    tasks: list[tuple[Selected, dict[str, Any], dict[str, Any]]] | None = None,
) -> None:
    """Collect (path, problem) for structural differences, the leaf paths present in both (and whether each is a
    Python number), and the nodes that `compare:` rules take (compared by their task instead)."""
    where = path or "output"
    if exp["t"] != obt["t"]:
        found.append((where, f"a {_kind_name(exp)} in the expected run but a {_kind_name(obt)} in the obtained one"))
        return
    t = exp["t"]
    sel = chosen.get(path) if chosen else None
    if sel is not None and tasks is not None:
        tasks.append((sel, exp, obt))
        if t != "dict":
            return
        # A detection dict: its other keys stay elementwise.
        exp = {**exp, "items": [(k, n) for k, n in exp["items"] if k not in sel.claimed]}
        obt = {**obt, "items": [(k, n) for k, n in obt["items"] if k not in sel.claimed]}
        chosen = None
    if t in ("tensor", "scalar"):
        pairs.append((exp["path"], t == "scalar"))
    elif t == "value":
        if exp["value"] != obt["value"]:
            found.append((where, f"value {exp['value']!r} expected, {obt['value']!r} obtained"))
    elif t == "dict":
        if exp.get("type") != obt.get("type"):  # a namedtuple in one run, a dict or a dataclass in the other
            found.append(
                (where, f"a {exp.get('type')} in the expected run but a {obt.get('type')} in the obtained one")
            )
        ek = [k for k, _ in exp["items"]]
        ok = [k for k, _ in obt["items"]]
        ek_set, ok_set = set(ek), set(ok)
        missing = [k for k in ek if k not in ok_set]
        extra = [k for k in ok if k not in ek_set]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing keys " + ", ".join(missing))
            if extra:
                parts.append("extra keys " + ", ".join(extra))
            found.append((where, "; ".join(parts) + " in the obtained run"))
        obt_items = dict(obt["items"])
        for k, node in exp["items"]:
            if k in obt_items:
                _walk(node, obt_items[k], f"{path}.{k}" if path else k, found, pairs, chosen, tasks)
    else:  # list / tuple
        ne, no = len(exp["items"]), len(obt["items"])
        if ne != no:
            found.append((where, f"length {ne} expected, {no} obtained"))
        for i, (a, b) in enumerate(zip(exp["items"], obt["items"], strict=False)):
            _walk(a, b, f"{path}.{i}" if path else str(i), found, pairs, chosen, tasks)


def _kind_name(node: dict[str, Any]) -> str:
    return {"tensor": "tensor", "scalar": "number", "value": "string/None"}.get(node["t"], node.get("type", node["t"]))


# --- values ---------------------------------------------------------------------------------------


def compare(
    expected: Outputs,
    obtained: Outputs,
    spec: ToleranceSpec,
    runs: tuple[int, int] = (1, 2),
    selection: list[Selected] | None = None,
) -> list[OutputResult]:
    """Compare one obtained run with the expected one: structure first, then each shared leaf; the nodes in
    `selection` (from `tasks.select`) by their task."""
    problems: list[tuple[str, str]] = []
    pairs: list[tuple[str, bool]] = []
    tasks: list[tuple[Selected, dict[str, Any], dict[str, Any]]] = []
    chosen = {s.path: s for s in selection or ()}
    _walk(expected.tree, obtained.tree, "", problems, pairs, chosen, tasks)
    results = [
        OutputResult(
            path=p,
            kind=Kind.STRUCTURE,
            tolerance=tolerance_for(p, spec),
            detail=d,
            expected_run=runs[0],
            obtained_run=runs[1],
        )
        for p, d in problems
    ]
    for sel, e, o in tasks:
        results += compare_selected(sel, e, o, expected.tensors, obtained.tensors, runs, spec)
    for p, python in pairs:
        r = compare_tensors(p, expected.tensors[p], obtained.tensors[p], tolerance_for(p, spec), runs)
        results.append(dataclasses.replace(r, python=True) if python else r)
    return results


def compare_runs(
    runs: list[Outputs],
    spec: ToleranceSpec,
    labels: Iterable[int] | None = None,
    rules: CompareSpec | None = None,
) -> Comparison:
    """Run 1 is expected; every later run is obtained. Each output keeps its worst result."""
    labels = list(labels) if labels is not None else list(range(1, len(runs) + 1))
    return compare_stream(runs[0], zip(labels[1:], runs[1:], strict=True), spec, labels[0], rules)


FOLDED = "folded.json"  # beside a run's outputs once the zygote has folded them


@dataclasses.dataclass(frozen=True)
class Folded:
    """One later run compared with run 1: its per-output results and content digests. Small: a run's outputs can be
    deleted once folded (the zygote folds each run as it ends, so the disk never holds every run)."""

    label: int
    results: tuple[OutputResult, ...]
    digests: dict[str, str]
    whole: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "results": [dataclasses.asdict(r) for r in self.results],
            "digests": self.digests,
            "whole": self.whole,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Folded:
        outs = tuple(output_from_dict(r) for r in d["results"])
        return Folded(int(d["label"]), outs, dict(d["digests"]), str(d["whole"]))

    # A fold stays on the torch side: written by the fold's fork, read by the verdict.
    def write(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict()))

    @staticmethod
    def read(path: Path) -> Folded:
        return Folded.from_dict(json.loads(path.read_text()))


def fold(
    expected: Outputs,
    label: int,
    obtained: Outputs,
    spec: ToleranceSpec,
    expected_label: int,
    selection: list[Selected],
) -> Folded:
    """One later run against run 1: what compare_stream keeps of it."""
    results = tuple(compare(expected, obtained, spec, (expected_label, label), selection))
    digests = _digests(obtained)
    return Folded(label, results, digests, _whole(obtained, digests))


def compare_stream(
    expected: Outputs,
    obtained: Iterable[tuple[int, Outputs | Folded]],
    spec: ToleranceSpec,
    expected_label: int = 1,
    rules: CompareSpec | None = None,
    selection: list[Selected] | None = None,
) -> Comparison:
    """Run 1 (`expected`) against each later run as it comes, so that only two output sets are ever held (a later
    run may come already folded). Each output keeps its worst result and counts the runs in which it differs; with
    three runs or more, distinct results are counted by content hash, per output and for the whole output set.
    Outputs that `rules` (compare:) take are compared by their task (`selection`: what `tasks.select` made of them,
    when the caller already has it); a rule that fits no output raises tasks.RuleError."""
    if selection is None:
        selection = select(expected, rules.outputs) if rules is not None else []
    worst: dict[str, OutputResult] = {}
    differing: dict[str, int] = {}
    hashes: dict[str, set[str]] = {}
    wholes: set[str] = set()
    runs_differing = compared = 0
    for label, obt in obtained:
        f = obt if isinstance(obt, Folded) else fold(expected, label, obt, spec, expected_label, selection)
        compared += 1
        bad = False
        for r in f.results:
            if not r:
                differing[r.path] = differing.get(r.path, 0) + 1
                bad = True
            if r.path not in worst or r.severity() > worst[r.path].severity():
                worst[r.path] = r
        runs_differing += bad
        for path, digest in f.digests.items():
            hashes.setdefault(path, set()).add(digest)
        wholes.add(f.whole)
    if compared >= 2:  # hashes count from three runs on (two runs: the comparison says it all)
        first_digests = _digests(expected)
        for path, digest in first_digests.items():
            hashes.setdefault(path, set()).add(digest)
        wholes.add(_whole(expected, first_digests))
    else:
        hashes.clear()
        wholes.clear()
    paths = list(expected.tensors)
    order = {p: i for i, p in enumerate(paths)}
    counted = [
        dataclasses.replace(r, runs_differing=differing.get(r.path, 0), distinct_results=len(hashes.get(r.path, ())))
        for r in worst.values()
    ]
    ordered = sorted(counted, key=lambda r: (order.get(r.path, -1), r.path))
    unused = tuple(p for p in spec.outputs if not any(fnmatch.fnmatchcase(x, p) for x in paths))
    return Comparison(
        outputs=tuple(ordered),
        unused_patterns=unused,
        runs_compared=compared + 1,
        runs_differing=runs_differing,
        distinct_results=len(wholes),
    )


def _digests(outputs: Outputs) -> dict[str, str]:
    import hashlib

    import torch

    out = {}
    for path, t in outputs.tensors.items():
        h = hashlib.blake2b(f"{t.dtype}{tuple(t.shape)}".encode(), digest_size=16)
        h.update(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        out[path] = h.hexdigest()
    return out


def _whole(outputs: Outputs, digests: dict[str, str]) -> str:
    import hashlib
    import json

    return hashlib.blake2b(json.dumps([outputs.tree, sorted(digests.items())]).encode(), digest_size=16).hexdigest()


# --- plain data, for the way back from the worker ---------------------------------------------------
