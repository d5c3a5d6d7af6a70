"""The dispatch mode a traced run's forward runs under: every aten op, with its outputs, to the tracer (probe.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class OpMode(TorchDispatchMode):
    def __init__(self, tracer: Any) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.tracer.op(func, _outputs(out))
        return out


def _outputs(out: Any) -> list[Any]:
    """The op's results in order: tensors, and the Python numbers an op such as `item()` returns."""
    if isinstance(out, (tuple, list)):
        return [x for o in out for x in _outputs(o)]
    if isinstance(out, (torch.Tensor, bool, int, float)):
        return [out]
    return []
