"""The names of a model's output leaves, and the output tree (no tensor work: both sides read it).

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
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

ROOT_NAME = "output"
SEPARATOR = "."
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_INT = re.compile(r"^-?\d+$")


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


IGNORED = "<ignored>"
EMPTY = "empty"  # a constant leaf's value when it has no elements (outputs.constants)


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
