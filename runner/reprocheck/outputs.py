"""A model's output as a structure tree plus named leaf tensors, and its file format.

Leaf paths join container keys/indices with dots: `0.boxes`, `logits`, `1.2`; a bare
tensor output is `output`. The tree records container types, keys and lengths so that
comparison can check structure before values. Python numbers become 0-d tensors;
strings and None are kept in the tree and compared exactly.

On disk: `torch.save({"format": 1, "tree": ..., "tensors": {path: cpu tensor}})`,
read back with `weights_only=True` (no pickle code runs), written atomically.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT_NAME = "output"


class UnsupportedOutput(TypeError):
    pass


@dataclass
class Outputs:
    tree: dict[str, Any]
    tensors: dict[str, Any]

    @property
    def paths(self) -> list[str]:
        return list(self.tensors)


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def flatten(obj: Any) -> Outputs:
    import torch

    tensors: dict[str, Any] = {}

    def walk(value: Any, path: str) -> dict[str, Any]:
        leaf = path or ROOT_NAME
        if isinstance(value, torch.Tensor):
            t = value.detach()
            if t.is_sparse:
                t = t.to_dense()
            if t.is_quantized:
                t = t.dequantize()
            tensors[leaf] = t.cpu().contiguous()
            return {"t": "tensor", "path": leaf}
        if isinstance(value, (bool, int, float)):
            tensors[leaf] = torch.tensor(value)
            return {"t": "scalar", "path": leaf, "py": type(value).__name__}
        if value is None or isinstance(value, str):
            return {"t": "value", "path": leaf, "value": value}
        if isinstance(value, dict):  # includes OrderedDict and transformers' ModelOutput
            return {"t": "dict", "type": type(value).__name__,
                    "items": [[str(k), walk(v, _join(path, k))] for k, v in value.items()]}
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
            return {"t": "dict", "type": type(value).__name__,
                    "items": [[k, walk(getattr(value, k), _join(path, k))] for k in value._fields]}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {"t": "dict", "type": type(value).__name__,
                    "items": [[f.name, walk(getattr(value, f.name), _join(path, f.name))] for f in dataclasses.fields(value)]}
        if isinstance(value, (list, tuple)):
            return {"t": type(value).__name__ if type(value) in (list, tuple) else "list",
                    "items": [walk(v, _join(path, i)) for i, v in enumerate(value)]}
        raise UnsupportedOutput(
            f"output {leaf!r} is a {type(value).__name__}; return tensors, numbers, strings, "
            "or lists/tuples/dicts/dataclasses of them"
        )

    tree = walk(obj, "")
    return Outputs(tree=tree, tensors=tensors)


def atomic_write(path: Path, write: Any) -> None:
    """Call write(tmp_path) then rename over `path`: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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
