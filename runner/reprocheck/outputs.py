"""A model's output as a structure tree plus named leaf tensors, and its file format.

Output paths join one component per container level with dots: `0.boxes`, `logits`, `1.2`;
a bare tensor output is `output`. Components are unambiguous, so no two leaves share a path:
  * a list/tuple index or an int dict key is written in decimal: `0`, `-1`;
  * a str key is written bare when it is identifier-like (`[A-Za-z_][A-Za-z0-9_-]*`), else
    quoted as a JSON string: `{"a.b": x}` -> `"a.b"`, `{"1": x}` -> `"1"` (so it differs from `1`);
  * any other key (bool, float, None, tuple, ...) is written `<repr>`: `<True>`, `<0.5>`.
Two keys of one dict that still read the same (equal reprs) are refused, never merged.
`split_path` reverses `join_path`. The tree records container types, keys and lengths so
that comparison can check structure before values. Python numbers become 0-d tensors;
strings and None are kept in the tree and compared exactly.

On disk: `torch.save({"format": 1, "tree": ..., "tensors": {path: cpu tensor}})`,
read back with `weights_only=True` (no pickle code runs), written atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT_NAME = "output"
SEPARATOR = "."
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_INT = re.compile(r"^-?\d+$")


class UnsupportedOutput(TypeError):
    pass


class OutputTargetError(OSError):
    """A path the user asked us to write cannot be written safely (symlink, device, not writable)."""


@dataclass
class Outputs:
    tree: dict[str, Any]
    tensors: dict[str, Any]


def key_component(key: Any) -> str:
    """One unambiguous path component for a container key or index."""
    if isinstance(key, bool):
        return f"<{key!r}>"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, str):
        return key if _BARE.match(key) else json.dumps(key, ensure_ascii=False)
    return f"<{key!r}>"


def join_path(prefix: str, component: str) -> str:
    return f"{prefix}{SEPARATOR}{component}" if prefix else component


def split_path(path: str) -> list[str]:
    """The components of a path, quoting kept (`a."b.c".0` -> ['a', '"b.c"', '0'])."""
    parts: list[str] = []
    i, n = 0, len(path)
    while i <= n:
        if i < n and path[i] == '"':
            j = i + 1
            while j < n and path[j] != '"':
                j += 2 if path[j] == "\\" else 1
            end = j + 1
        elif i < n and path[i] == "<":
            end = path.find(">" + SEPARATOR, i)
            end = n if end < 0 else end + 1
        else:
            end = path.find(SEPARATOR, i)
            end = n if end < 0 else end
        parts.append(path[i:end])
        i = end + 1
    return parts


def decode_component(component: str) -> Any:
    """The key a component stands for: str, int, or the repr text of any other key."""
    if component.startswith('"'):
        return json.loads(component)
    if _INT.match(component):
        return int(component)
    return component


def tree_leaves(node: Any) -> list[str]:
    """The leaf paths of an output tree, in order. Raises ValueError for a malformed tree (e.g. a foreign golden)."""
    if not isinstance(node, dict) or "t" not in node:
        raise ValueError("its output tree is malformed")
    if node["t"] in ("tensor", "scalar"):
        return [node["path"]]
    if node["t"] == "dict":
        return [p for _, child in node["items"] for p in tree_leaves(child)]
    if node["t"] in ("list", "tuple"):
        return [p for child in node["items"] for p in tree_leaves(child)]
    return []


def _leaf_tensor(value: Any, leaf: str) -> Any:
    import torch

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
    import torch

    if isinstance(v, torch.Tensor):
        return True
    return isinstance(v, list) and bool(v) and all(isinstance(x, torch.Tensor) for x in v)


def flatten(obj: Any) -> Outputs:
    import torch

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


IGNORED = "<ignored>"


def prune(out: Outputs, patterns: list[str]) -> tuple[Outputs, list[str], list[str]]:
    """`ignore:` applied: each node whose path (containers too; the root is `output`) matches a pattern becomes a
    placeholder, equal in every run, and its tensors go. Returns (outputs, ignored paths, patterns matching none)."""
    import fnmatch

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


def all_paths(tree: dict[str, Any]) -> list[str]:
    """Every node's path, containers too, in order (the root is `output`)."""
    out: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        out.append(path or ROOT_NAME)
        if node["t"] == "dict":
            for k, c in node["items"]:
                walk(c, join_path(path, k))
        elif node["t"] in ("list", "tuple"):
            for i, c in enumerate(node["items"]):
                walk(c, join_path(path, str(i)))

    walk(tree, "")
    return out


def constants(out: Outputs) -> dict[str, str]:
    """Leaves of more than one element whose elements are all equal (all zero, all NaN, ...): a check cannot see a
    change there. path -> the value, as text."""
    found = {}
    for path, t in out.tensors.items():
        if t.numel() < 2 or t.dtype.is_complex:
            continue
        flat = t.reshape(-1)
        first = flat[0]
        if t.is_floating_point() and bool(first.isnan()):
            if bool(flat.isnan().all()):
                found[path] = "NaN"
        elif bool((flat == first).all()):
            found[path] = f"{first.item():g}" if t.is_floating_point() else str(first.item())
    return found


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666  # less the umask, like any file the user creates


def refuse_special_target(path: Path) -> None:
    """Raise when `path` exists and is not a regular file: a symlink, FIFO, device or folder is never replaced."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise OutputTargetError(f"{path}: a parent is a file, not a folder") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputTargetError(f"{path}: is a symbolic link; name the real file (links are never replaced)")
    if stat.S_ISDIR(st.st_mode):
        raise OutputTargetError(f"{path}: is a folder (give a file name)")
    if not stat.S_ISREG(st.st_mode):
        raise OutputTargetError(f"{path}: is a FIFO, socket or device, not a regular file (give a file name)")


def atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """Call write(tmp_path) then rename over `path`: readers never see half a file.
    The file gets mode 0666 less the umask; a non-regular file at `path` is refused, never replaced."""
    refuse_special_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        refuse_special_target(path)  # created meanwhile?
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save(outputs: Outputs, path: Path) -> None:
    import torch

    payload = {"format": 1, "tree": outputs.tree, "tensors": outputs.tensors}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load(path: Path) -> Outputs:
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    return Outputs(tree=payload["tree"], tensors=payload["tensors"])
