"""A model's output flattened into a structure tree plus named leaf tensors (leaf names: tree.py), and its file
format.

On disk: `torch.save({"format": 1, "tree": ..., "tensors": {path: cpu tensor}})`,
read back with `weights_only=True` (no pickle code runs), written atomically.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write
from ..tree import EMPTY, IGNORED, ROOT_NAME, Outputs, join_path, key_component, tree_leaves


class UnsupportedOutput(TypeError):
    pass


def _leaf_tensor(value: Any, leaf: str) -> Any:
    t = value.detach()
    if getattr(t, "is_nested", False):
        raise UnsupportedOutput(
            f"output {leaf!r} is a nested (jagged) tensor; return its components "
            "(e.g. `list(t.unbind())`) or a padded tensor (`t.to_padded_tensor(0.0)`)"
        )
    if t.is_meta:
        raise UnsupportedOutput(f"output {leaf!r} is on the meta device and has no values")
    if t.layout != torch.strided:  # sparse COO/CSR/CSC/BSR, mkldnn
        t = t.to_dense()
    if t.is_quantized:
        t = t.dequantize()
    if type(t) is not torch.Tensor and not isinstance(t, torch.nn.Parameter):
        t = t.as_subclass(torch.Tensor)  # subclasses may not survive a weights-only load
    return t.cpu().contiguous()


def _cache_items(value: Any) -> list[tuple[str, Any]] | None:
    """A transformers Cache as (key, value) pairs: `layers.N.keys` / `layers.N.values` (DynamicCache and the like),
    `self_attention_cache` / `cross_attention_cache` (EncoderDecoderCache), or the older `key_cache` / `value_cache`
    lists; for another layout, its public tensor attributes. None for anything else."""

    if not type(value).__module__.startswith("transformers") or not type(value).__name__.endswith("Cache"):
        return None
    if hasattr(value, "self_attention_cache") and hasattr(value, "cross_attention_cache"):
        return [
            ("self_attention_cache", value.self_attention_cache),
            ("cross_attention_cache", value.cross_attention_cache),
        ]

    def tensors(obj: Any) -> dict[str, Any]:
        # public state only: private helpers (a sliding window's bookkeeping tensor) are not the cache's content
        return {k: v for k, v in vars(obj).items() if not k.startswith("_") and _tensor_state(v)}

    layers = getattr(value, "layers", None)
    if isinstance(layers, list):
        return [("layers", [tensors(layer) for layer in layers])]
    if isinstance(getattr(value, "key_cache", None), list):
        return [("keys", list(value.key_cache)), ("values", list(value.value_cache))]
    found = tensors(value)  # another cache layout (conv and SSM states, ...): its public tensors
    return list(found.items()) if found else None


def _tensor_state(v: Any) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    return isinstance(v, list) and bool(v) and all(isinstance(x, torch.Tensor) for x in v)


def flatten(obj: Any) -> Outputs:
    tensors: dict[str, Any] = {}

    def items(pairs: list[tuple[Any, Any]], path: str) -> list[list[Any]]:
        seen: dict[str, Any] = {}
        out = []
        for key, value in pairs:
            comp = key_component(key)
            if comp in seen:
                raise UnsupportedOutput(
                    f"output {join_path(path, comp)!r}: keys {seen[comp]!r} and {key!r} "
                    "cannot be told apart in an output path; give them distinct names"
                )
            seen[comp] = key
            out.append([comp, walk(value, join_path(path, comp))])
        return out

    def walk(value: Any, path: str) -> dict[str, Any]:
        leaf = path or ROOT_NAME
        if isinstance(value, torch.Tensor):
            tensors[leaf] = _leaf_tensor(value, leaf)
            return {"t": "tensor", "path": leaf}
        if isinstance(value, (bool, int, float)):
            tensors[leaf] = torch.tensor(value)
            return {"t": "scalar", "path": leaf, "py": type(value).__name__}
        if value is None or isinstance(value, str):
            return {"t": "value", "path": leaf, "value": value}
        if isinstance(value, dict):  # includes OrderedDict and transformers' ModelOutput
            return {"t": "dict", "type": type(value).__name__, "items": items(list(value.items()), path)}
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
            return {
                "t": "dict",
                "type": type(value).__name__,
                "items": items([(k, getattr(value, k)) for k in value._fields], path),
            }
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                "t": "dict",
                "type": type(value).__name__,
                "items": items([(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)], path),
            }
        if isinstance(value, (list, tuple)):
            return {
                "t": type(value).__name__ if type(value) in (list, tuple) else "list",
                "items": [walk(v, join_path(path, str(i))) for i, v in enumerate(value)],
            }
        cache = _cache_items(value)
        if cache is not None:  # a Hugging Face cache: its per-layer key and value tensors
            return {"t": "dict", "type": type(value).__name__, "items": items(cache, path)}
        raise UnsupportedOutput(
            f"output {leaf!r} is a {type(value).__name__}; return tensors, numbers, strings, "
            "or lists/tuples/dicts/dataclasses of them"
        )

    tree = walk(obj, "")
    return Outputs(tree=tree, tensors=tensors)


def prune(out: Outputs, patterns: list[str]) -> tuple[Outputs, list[str], list[str]]:
    """`ignore:` applied: each node whose path (containers too; the root is `output`) matches a pattern becomes a
    placeholder, equal in every run, and its tensors go. Returns (outputs, ignored paths, patterns matching none)."""
    ignored: list[str] = []
    used: set[str] = set()
    tensors = dict(out.tensors)

    def walk(node: dict[str, Any], path: str) -> dict[str, Any]:
        name = path or ROOT_NAME
        hit = next((p for p in patterns if fnmatch.fnmatchcase(name, p)), None)
        if hit is not None:
            used.add(hit)
            ignored.append(name)
            for leaf in tree_leaves(node):
                tensors.pop(leaf, None)
            return {"t": "value", "path": name, "value": IGNORED}
        if node["t"] == "dict":
            return {**node, "items": [[k, walk(c, join_path(path, k))] for k, c in node["items"]]}
        if node["t"] in ("list", "tuple"):
            return {**node, "items": [walk(c, join_path(path, str(i))) for i, c in enumerate(node["items"])]}
        return node

    tree = walk(out.tree, "") if patterns else out.tree
    return Outputs(tree, tensors), ignored, [p for p in patterns if p not in used]


def constants(out: Outputs) -> dict[str, str]:
    """Leaves of more than one element whose elements are all equal (all zero, all NaN, ...), and empty leaves: a
    check cannot see a change there. path -> the value, as text (EMPTY for no elements)."""
    found = {}
    for path, t in out.tensors.items():
        if t.numel() == 0:
            found[path] = EMPTY
            continue
        if t.numel() < 2:
            continue
        flat = t.reshape(-1)
        if t.is_floating_point() and t.element_size() < 2:  # float8: no comparisons here, float32 holds its values
            flat = flat.float()
        first = flat[0]
        if (t.is_floating_point() or t.is_complex()) and bool(first.isnan()):
            if bool(flat.isnan().all()):
                found[path] = "NaN"
        elif bool((flat == first).all()):
            value = first.item()
            found[path] = f"{value:g}" if isinstance(value, (float, complex)) else str(value)
    return found


def save(outputs: Outputs, path: Path) -> None:
    payload = {"format": 1, "tree": outputs.tree, "tensors": outputs.tensors}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load(path: Path) -> Outputs:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return Outputs(tree=payload["tree"], tensors=payload["tensors"])
