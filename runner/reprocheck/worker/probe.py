"""diagnose's probe, inside the worker when a run is traced: every module's output (forward hooks), which
modules ran in training mode, and a digest of every parameter and buffer."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..diagnosis import Divergence
from . import compare


class Tracer:
    """For `diagnose`: every module's output in the order the modules finish (forward hooks),
    which modules ran in training mode, and a digest of every parameter and buffer (to tell
    loaded weights from random ones by comparing two seeds)."""

    def __init__(self, model: Any) -> None:
        import torch

        self.calls: list[list[str]] = []
        self.tensors: dict[str, Any] = {}
        self.training: dict[str, str] = {}
        self.params: dict[str, str] = {}
        if isinstance(model, torch.nn.Module):
            for name, t in [*model.named_parameters(), *model.named_buffers()]:
                data = t.detach().cpu().contiguous().reshape(-1)
                self.params[name] = hashlib.sha256(data.view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
            for path, module in model.named_modules():
                try:
                    module.register_forward_hook(self._hook(path))
                except (RuntimeError, AttributeError):
                    pass  # scripted modules may refuse hooks

    def _hook(self, path: str) -> Any:
        from .outputs import UnsupportedOutput, flatten

        def hook(module: Any, args: Any, output: Any) -> None:
            i = len(self.calls)
            self.calls.append([path, type(module).__name__])
            if getattr(module, "training", False):
                self.training[path] = type(module).__name__
            try:
                flat = flatten(output)
            except UnsupportedOutput:
                return
            for leaf, t in flat.tensors.items():
                self.tensors[f"{i}|{leaf}"] = t.clone()

        return hook

    def save(self, path: Path) -> None:
        import torch

        from ..files import atomic_write

        payload = {"calls": self.calls, "tensors": self.tensors, "training": self.training, "params": self.params}
        atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_trace(run_dir: Path) -> dict[str, Any]:
    import torch

    return torch.load(run_dir / "trace.pt", map_location="cpu", weights_only=True)


def first_divergence(a: dict[str, Any], b: dict[str, Any], tolerance: Any) -> Divergence | None:
    """The first module (in finishing order) whose output differs between two traces."""
    for i, (ca, cb) in enumerate(zip(a["calls"], b["calls"], strict=False)):
        if ca != cb:
            return Divergence(
                call=i,
                module=ca[0],
                type=ca[1],
                result=None,
                detail=f"the runs call different modules here: {ca[0] or '(model)'} vs {cb[0] or '(model)'}",
            )
        prefix = f"{i}|"
        keys_a = [k for k in a["tensors"] if k.startswith(prefix)]
        worst = None
        for key in keys_a:
            ta, tb = a["tensors"][key], b["tensors"].get(key)
            if tb is None:
                return Divergence(
                    call=i, module=ca[0], type=ca[1], result=None, detail="an output leaf is missing in run 2"
                )
            leaf = key[len(prefix) :]
            r = compare.compare_tensors(leaf, ta, tb, compare.tolerance_for(leaf, tolerance))
            if not r and (worst is None or r.severity() > worst.severity()):
                worst = r
        if worst is not None:
            return Divergence(call=i, module=ca[0], type=ca[1], result=worst)
    if len(a["calls"]) != len(b["calls"]):
        n = min(len(a["calls"]), len(b["calls"]))
        return Divergence(
            call=n,
            module="",
            type="",
            result=None,
            detail=f"run 1 made {len(a['calls'])} module calls, run 2 made {len(b['calls'])}",
        )
    return None
