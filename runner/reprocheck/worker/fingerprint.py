"""The environment a result was produced in: software stack, hardware, threads, flags.

Collected inside the worker (after the recipe, so flags are as the model saw them).
CUDA fields are read only when CUDA is in use or `cuda=True`, so a CPU check never
initialises CUDA.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def driver_version() -> str | None:
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return None
    m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", text)
    return m.group(1) if m else None


def _cxx() -> str | None:
    """The C++ compiler torch.compile's inductor would use on the CPU (CXX, else g++): its version line."""
    import shutil
    import subprocess

    found = shutil.which(os.environ.get("CXX") or "g++")
    if found is None:
        return None
    try:
        done = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.splitlines() or [found])[0][:200]


def collect(cuda: bool | None = None) -> dict[str, Any]:
    import numpy
    import torch

    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:
        tv = None
    fp: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": tv,
        "numpy": numpy.__version__,
        "cuda_build": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "driver": driver_version(),
        "cxx": _cxx(),
        "gpus": [],
        "flags": {
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        },
        "env": {k: os.environ.get(k) for k in ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS")},
        "hash_randomization": bool(sys.flags.hash_randomization),
    }
    use_cuda = torch.cuda.is_initialized() if cuda is None else cuda
    if use_cuda and torch.cuda.is_available():
        fp["gpus"] = [
            {
                "name": torch.cuda.get_device_name(i),
                "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
            }
            for i in range(torch.cuda.device_count())
        ]
    return fp
