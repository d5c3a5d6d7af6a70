"""The one place that prepares a process to run model code, and cleans up after it.

Model code comes from the pull request under test. Whatever it does by accident must not reach the verdict: it gets
/dev/null as its standard input (never the zygote's command pipe), no descriptor beyond 0-2, no protocol detail or
CI file-command path in its environment, and no way to unpickle (`torch.load` is weights-only). Every process it
starts is killed when the run ends: the run is a child subreaper, so even a daemonised grandchild is reparented to it
and reaped. These are guards against accidents; SECURITY.md says what deliberate hostility can still do.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from ..environment import scrub_environment
from ..processes import reap, subreaper

__all__ = ["force_weights_only", "preload", "reap", "seal", "subreaper"]

# What a run's own code imports besides the model: loaded before the spec's folder goes first on sys.path (for a
# factory), so that a `torchvision/` or `PIL/` there is the model's business only, never the input or the outputs.
PRELOAD = ("numpy", "torch", "torchvision", "torchvision.transforms", "PIL.Image", "safetensors", "safetensors.torch")


def preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # optional here; the run says so if it needs one
    from .. import spec  # noqa: F401
    from . import fingerprint, inputs, models, names, outputs, recipe  # noqa: F401


def seal() -> None:
    """Before model code runs in this process: stdin from /dev/null, descriptors beyond 2 closed, the environment
    scrubbed, orphans of this process reparented to it (so that `reap` finds them), torch.load weights-only."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    if devnull != 0:
        os.close(devnull)
    os.closerange(3, _max_fd())
    scrub_environment(os.environ)
    subreaper()
    force_weights_only()


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def force_weights_only() -> None:
    """torch.load with weights_only=True whatever the caller asks (torch.hub, torch.export's pickle fallback and
    libraries pass False): the environment variable does it where torch reads it, this wrapper everywhere."""
    import torch
    import torch.serialization

    original = torch.serialization.load
    if getattr(original, "__reprocheck_weights_only__", False):
        return

    @functools.wraps(original)
    def load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    load.__reprocheck_weights_only__ = True  # type: ignore[attr-defined]
    torch.load = torch.serialization.load = load
