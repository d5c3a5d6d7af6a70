"""Reading a spec's YAML safely and within limits: one parse gives the node tree (for line numbers) and
the data; nesting depth and alias expansion are bounded before anything large is built."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError, SpecErrors
from .types import MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES


class Located:
    """Maps key paths to line numbers through the composed YAML node tree."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def node(self, path: tuple[Any, ...]) -> tuple[yaml.Node | None, int | None]:
        node, line = self.root, (self.root.start_mark.line + 1 if self.root is not None else None)
        for part in path:
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == str(part):
                        node, line = v, k.start_mark.line + 1
                        break
                else:
                    return None, line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return None, line
        return node, line

    def line(self, path: tuple[Any, ...]) -> int | None:
        return self.node(path)[1]

    def has(self, path: tuple[Any, ...]) -> bool:
        return self.node(path)[0] is not None


def _duplicate_keys(node: yaml.Node | None, path: str = "") -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            key = f"{path}.{k.value}" if path else str(k.value)
            if k.value in seen:
                found.append((k.start_mark.line + 1, key))
            seen.add(k.value)
            found += _duplicate_keys(v, key)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            found += _duplicate_keys(v, f"{path}.{i}")
    return found


class _TooBig(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, before the (recursive) composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else None
                raise _TooBig(line, f"nested more than {MAX_DEPTH} levels deep (a spec needs a few)")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _check_expansion(root: yaml.Node | None) -> None:
    """Refuse alias bombs: count the nodes as if every alias were expanded, without expanding them."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack = [(root, False)] if root is not None else []
    while stack:  # post-order, without recursion
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        kids = _children(node)
        if not children_done:
            open_.add(id(node))
            stack.append((node, True))
            for kid in kids:
                if id(kid) in open_:
                    raise _TooBig(kid.start_mark.line + 1, "a YAML alias refers to a value that contains it")
                stack.append((kid, False))
            continue
        open_.discard(id(node))
        sizes[id(node)] = 1 + sum(sizes[id(k)] for k in kids)
        if sizes[id(node)] > MAX_NODES:
            raise _TooBig(
                node.start_mark.line + 1,
                f"expands to more than {MAX_NODES:,} values through YAML aliases (an alias bomb?); write it out",
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """One safe parse giving both the node tree (for line numbers) and the data, within limits."""
    _check_depth(text)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        _check_expansion(node)
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _read_regular(path: Path) -> str:
    """A regular file's text, at most MAX_SPEC_BYTES: never a FIFO (it would block), a device (endless) or a folder."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SpecErrors([SpecError(path, None, "", "not a regular file (a FIFO, a device or a folder)")])
        data = f.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        limit = MAX_SPEC_BYTES // 1024 // 1024
        raise SpecErrors([SpecError(path, None, "", f"larger than {limit} MiB; a spec is a small YAML file")])
    return data.decode("utf-8")


def read_located(path: Path) -> tuple[Any, Located]:
    try:
        text = _read_regular(path)
    except FileNotFoundError:
        raise SpecErrors([SpecError(path, None, "", "no such spec file (check the path)")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecErrors([SpecError(path, None, "", f"cannot read the spec: {exc}")]) from None
    try:
        node, data = _parse(text)
    except _TooBig as exc:
        raise SpecErrors([SpecError(path, exc.line, "", exc.message)]) from None
    except RecursionError:
        raise SpecErrors([SpecError(path, None, "", "nested too deeply to read")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecErrors([SpecError(path, line, "", f"YAML syntax error: {problem} (fix the YAML)")]) from None
    dups = _duplicate_keys(node)
    if dups:
        raise SpecErrors(
            [SpecError(path, line, key, "duplicate key (YAML keeps only the last; remove one)") for line, key in dups]
        )
    return data, Located(node)
