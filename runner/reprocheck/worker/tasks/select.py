"""Which outputs a `compare:` rule takes: globs over output paths, containers included, decided on run 1's
outputs (the expected side).

Nodes are visited from the top; the first pattern that matches a node's path decides it. A node of the rule's
form is selected (and nothing under it is visited again); a node of another form is looked through, so `"*"`
finds the per-image dicts inside a list, or the class-score tensors inside a dict. The forms:
  * detection: a dict holding a `boxes` tensor (scores, labels, masks, keypoints optional);
  * classification: a floating tensor with a class dimension;
  * segmentation: a floating tensor with a class dimension and two spatial ones after it, or an integer label map
    of two dimensions or more.
Under a glob (`*`, `?`, `[`), classification takes class scores only: a [..., 1] tensor (a regression head, or a
binary score), a tensor of 4 dimensions or more (cache keys and values, feature maps), a tensor under a cache or
hidden-state container (`past_key_values`, `cache`, `encoder_last_hidden_state`, ...) and a tensor named like
features or boxes (embedding, hidden, pooled, pred_boxes, ...) stay elementwise, with a note; a rule naming the
output itself judges it as classes (a [..., 1] tensor as a binary decision at 0).
The root is named `output` (a bare tensor's path). A pattern that matches no output at all, or decides only
nodes of another form, is an error in the spec (RuleError names the pattern and what it found).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from ...results import RuleError, Tolerance
from ...spec import CompareRule
from ...tree import ROOT_NAME, Outputs, join_path, split_path

# Per-detection keys the detection comparison understands; other keys of the dict stay elementwise.
DETECTION_KEYS = ("boxes", "scores", "labels", "masks", "keypoints", "keypoints_scores")


# Output names that are features or boxes, not class scores, when only a glob would make them a classification.
NOT_SCORES = re.compile(r"(?i)(embed|hidden|feature|pool|latent|encod|state|attention|proj|regress|box|^reg$)")
# Containers whose tensors are never class scores: caches (keys and values), hidden states, attention maps.
NOT_SCORES_UNDER = re.compile(r"(?i)(cache|past_key|key_value|hidden|attentions|encoder_last)")


@dataclass(frozen=True)
class Selected:
    path: str  # the node's path in comparison walks ("" for the root container)
    pattern: str
    rule: CompareRule
    # detection: the dict's other tensors with one entry per box (e.g. per-box logits), compared on matched pairs
    per_detection: tuple[str, ...] = ()
    # detection: the detection keys that are tensors in run 1; a key of another form (a list of strings, a Python
    # list, a list of masks) is left to the elementwise comparison, never dropped
    tensor_keys: tuple[str, ...] = DETECTION_KEYS

    def fields(self, expected: Any, runs: tuple[int, int]) -> dict[str, Any]:
        """The OutputResult fields a task result on one tensor output starts from."""
        return dict(
            path=self.name,
            tolerance=Tolerance(0.0, 0.0, self.pattern),
            expected_run=runs[0],
            obtained_run=runs[1],
            shape=tuple(expected.shape),
            dtype=str(expected.dtype).replace("torch.", ""),
        )

    @property
    def claimed(self) -> frozenset[str]:
        """A detection dict's keys that the task comparison takes; the others stay elementwise."""
        return frozenset(self.tensor_keys) | frozenset(self.per_detection)

    @property
    def name(self) -> str:
        return self.path or ROOT_NAME


def form_changed(expected: Any, obtained: Any) -> str | None:
    """How one tensor output's shape or dtype changed between the runs (None: it did not)."""
    if expected.shape == obtained.shape and expected.dtype == obtained.dtype:
        return None
    return f"shape {list(expected.shape)} {expected.dtype} expected, {list(obtained.shape)} {obtained.dtype} obtained"


def nan_aware_diff(e: Any, o: Any) -> Any:
    """|e - o| in float64 with the elementwise NaN rule: 0 where both are NaN, inf where only one is."""
    import torch

    e, o = e.double(), o.double()
    both, one = e.isnan() & o.isnan(), e.isnan() ^ o.isnan()
    diff = (e - o).abs()
    diff = torch.where(both, torch.zeros_like(diff), diff)
    diff = torch.where(one, torch.full_like(diff, float("inf")), diff)
    # inf - inf is NaN: equal infinities are equal, others differ
    same_inf = e.isinf() & (e == o)
    # posinf stays inf: nan_to_num would otherwise make it the largest finite double (1.8e308), a false number
    return torch.where(same_inf, torch.zeros_like(diff), diff.nan_to_num(nan=float("inf"), posinf=float("inf")))


def children(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    if node["t"] == "dict":
        return [(join_path(path, k), child) for k, child in node["items"]]
    if node["t"] in ("list", "tuple"):
        return [(join_path(path, str(i)), child) for i, child in enumerate(node["items"])]
    return []


def node_at(tree: dict[str, Any], path: str) -> dict[str, Any]:
    """The node of an output tree at a walk path ("" for the root)."""
    stack = [(tree, "")]
    while stack:
        node, p = stack.pop()
        if p == path:
            return node
        stack += [(c, cp) for cp, c in children(node, p) if path == cp or path.startswith(cp + ".")]
    raise KeyError(path)


def dict_tensors(node: dict[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    """A dict node's direct tensor children, by key."""
    return {k: tensors[c["path"]] for k, c in node.get("items", ()) if c["t"] in ("tensor", "scalar")}


def _per_detection(rule: CompareRule, node: dict[str, Any], tensors: dict[str, Any]) -> tuple[str, ...]:
    if rule.as_ != "detection":
        return ()
    d = dict_tensors(node, tensors)
    n = d["boxes"].shape[0] if d["boxes"].dim() else -1
    return tuple(k for k, t in d.items() if k not in DETECTION_KEYS and t.dim() >= 1 and t.shape[0] == n)


def _tensor_keys(rule: CompareRule, node: dict[str, Any]) -> tuple[str, ...]:
    if rule.as_ != "detection":
        return ()
    return tuple(k for k, c in node["items"] if k in DETECTION_KEYS and c["t"] == "tensor")


def form_problem(rule: CompareRule, node: dict[str, Any], tensors: dict[str, Any]) -> str | None:
    """None when `node` is of the rule's form, else what it is instead."""
    task = rule.as_
    if task == "detection":
        if node["t"] != "dict":
            return f"a {node.get('type', node['t'])}, not a dict with boxes"
        keys = [k for k, _ in node["items"]]
        if "boxes" not in dict_tensors(node, tensors):
            return "a dict without a boxes tensor (keys: " + (", ".join(keys[:8]) or "none") + ")"
        return None
    if node["t"] != "tensor":
        return f"a {node.get('type', node['t'])}, not a tensor"
    t = tensors[node["path"]]
    if task == "classification":
        d = -1 if rule.dim is None else rule.dim
        if not t.is_floating_point() or t.dim() < 1:
            return f"a {str(t.dtype).replace('torch.', '')} tensor of shape {list(t.shape)}, not class scores"
        if not -t.dim() <= d < t.dim():
            return f"a tensor of shape {list(t.shape)}, without a class dimension {d}"
        return None
    if t.is_floating_point():
        d = -3 if rule.dim is None else rule.dim
        if t.dim() < 3 or not -t.dim() <= d < t.dim() or d % t.dim() > t.dim() - 3:
            return f"a tensor of shape {list(t.shape)}: no class dimension {d} with two spatial ones after it"
        return None
    if t.dtype.is_complex or t.dim() < 2:
        return f"a {str(t.dtype).replace('torch.', '')} tensor of shape {list(t.shape)}, not a label map"
    return None


def _not_scores_under_glob(pattern: str, rule: CompareRule, name: str, t: Any) -> str | None:
    if rule.as_ not in ("classification", "segmentation") or not any(c in pattern for c in "*?["):
        return None
    if rule.as_ == "classification":
        d = -1 if rule.dim is None else rule.dim
        if t.dim() >= 1 and -t.dim() <= d < t.dim() and t.shape[d] == 1:
            return (
                f"a tensor of shape {list(t.shape)} (one score: a regression head or a binary score), which a glob "
                "does not take as classes"
            )
        if t.dim() >= 4:  # class scores are [classes], [samples, classes] or [samples, positions, classes]
            return (
                f"a {t.dim()}-d tensor of shape {list(t.shape)} (a cache or a feature map, not class scores), which a "
                "glob does not take as classes"
            )
    what = "classes" if rule.as_ == "classification" else "a segmentation"
    *above, last = split_path(name)
    under = next((c for c in above if NOT_SCORES_UNDER.search(c)), None)
    if under is not None:
        return f"under {under} (a cache or hidden states, not class scores), which a glob does not take as {what}"
    if NOT_SCORES.search(last):
        return f"named like features or boxes ({last}), not class scores, which a glob does not take as {what}"
    return None


def select(outputs: Outputs, rules: dict[str, CompareRule], notes: list[str] | None = None) -> list[Selected]:
    """The nodes each rule takes, in output order. Raises RuleError for a pattern that takes nothing. `notes` gets a
    line for each tensor a classification glob left elementwise (not class scores)."""
    if not rules:
        return []
    chosen: list[Selected] = []
    unfit: dict[str, tuple[str, str, bool]] = {}  # pattern -> (a node it decided, why it does not fit, its type fits)
    every: list[str] = []
    noted: set[str] = set()  # classification globs that left an output elementwise (said in a note)

    def every_path(node: dict[str, Any], path: str) -> None:
        every.append(path or ROOT_NAME)
        for child_path, child in children(node, path):
            every_path(child, child_path)

    def visit(node: dict[str, Any], path: str) -> None:
        name = path or ROOT_NAME
        for pattern, rule in rules.items():
            if fnmatch.fnmatchcase(name, pattern):
                problem = form_problem(rule, node, outputs.tensors)
                if problem is None and node["t"] == "tensor":
                    left = _not_scores_under_glob(pattern, rule, name, outputs.tensors[node["path"]])
                    if left is not None:  # a warning, not a spec error: the output stays elementwise
                        noted.add(pattern)
                        if notes is not None:
                            notes.append(
                                f"compare pattern {pattern!r} leaves {name} elementwise: it is {left}; name it in "
                                f"a rule of its own (e.g. {name!r}: {{as: {rule.as_}}}) to judge it so"
                            )
                        break
                if problem is None:
                    chosen.append(
                        Selected(
                            path, pattern, rule, _per_detection(rule, node, outputs.tensors), _tensor_keys(rule, node)
                        )
                    )
                    return
                # Report the node closest to the form: a dict for detection, a tensor for the others.
                wanted = "dict" if rule.as_ == "detection" else "tensor"
                if pattern not in unfit or (node["t"] == wanted and not unfit[pattern][2]):
                    unfit[pattern] = (name, problem, node["t"] == wanted)
                break
        for child_path, child in children(node, path):
            visit(child, child_path)

    every_path(outputs.tree, "")
    visit(outputs.tree, "")
    taken = {s.pattern for s in chosen} | noted
    for pattern, rule in rules.items():
        if pattern in taken:
            continue
        if not any(fnmatch.fnmatchcase(p, pattern) for p in every):
            shown = ", ".join(every[:10]) + (", ..." if len(every) > 10 else "")
            raise RuleError(pattern, f"compare pattern {pattern!r} matches no output (the outputs: {shown})")
        if pattern in unfit:
            name, problem, _ = unfit[pattern]
            raise RuleError(
                pattern,
                f"compare pattern {pattern!r} selects nothing to compare as {rule.as_}: {name} is {problem}",
                unfit=True,
            )
    return chosen
