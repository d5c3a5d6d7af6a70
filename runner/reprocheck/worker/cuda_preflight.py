"""Why CUDA cannot be used here, one line per cause with its fix: read before a CUDA run builds anything, and by
`reprocheck env --cuda`. Facts are gathered without a CUDA context where they can be (nvidia-smi, /proc, torch's
build); the verdict is a pure function of them, so recorded facts test it on a machine without a GPU.

The preflight never refuses what torch can use: a driver older than the pinned minimum is a cause only when torch
itself says CUDA is not available."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field

# The oldest driver each CUDA major runs on (NVIDIA's minor version compatibility, Linux x86_64), for a torch
# outside the image; the image states its own (REPROCHECK_MIN_DRIVER, from docker/versions.env).
MINOR_COMPAT = {"13": "580.65.06", "12": "525.60.13", "11": "450.80.02"}
HIDDEN = ("", "-1", "none", "NoDevFiles")  # CUDA_VISIBLE_DEVICES values that hide every GPU
OUTPUT_LIMIT = 64 * 1024
QUERY = ["--query-gpu=index,name,compute_cap,driver_version", "--format=csv,noheader"]


@dataclass
class Facts:
    torch: str = ""
    cuda_build: str | None = None  # torch.version.cuda
    available: bool = False
    why: str = ""  # torch's own warning when it could not initialise CUDA
    count: int = 0
    driver: str | None = None  # from /proc/driver/nvidia/version, else nvidia-smi
    smi: str = "absent"  # absent | ok | failed
    smi_error: str = ""
    smi_gpus: list[str] = field(default_factory=list)  # "0: NVIDIA H100 (sm 9.0)"
    device_nodes: bool = False  # /dev/nvidiactl
    visible: str | None = None  # CUDA_VISIBLE_DEVICES
    flavour: str | None = None  # REPROCHECK_FLAVOUR: inside the pinned image
    image_cuda: str | None = None
    min_driver: str | None = None  # REPROCHECK_MIN_DRIVER


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def parse_smi(stdout: str) -> list[str]:
    """nvidia-smi's CSV rows as `0: NAME (sm 9.0)`; rows that are not GPU rows are left out."""
    gpus = []
    for line in stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].isdigit():
            gpus.append(f"{parts[0]}: {parts[1][:80]} (sm {parts[2][:8]})")
    return gpus


def _limit_output() -> None:
    # nvidia-smi is whatever PATH names: it writes at most OUTPUT_LIMIT bytes (more ends it), read as text below
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))


def _printable(text: str) -> str:
    return re.sub(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", "?", text)


def _smi(facts: Facts) -> None:
    found = shutil.which("nvidia-smi")
    if found is None:
        return
    with tempfile.TemporaryFile() as out:
        try:
            code = subprocess.run(
                [found, *QUERY],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=20,
                check=False,
                preexec_fn=_limit_output,
            ).returncode
        except (OSError, subprocess.SubprocessError) as exc:
            facts.smi, facts.smi_error = "failed", _printable(str(exc))[:200]
            return
        out.seek(0)
        text = _printable(out.read(OUTPUT_LIMIT).decode("utf-8", errors="replace"))
    if code != 0:
        lines = text.strip().splitlines()
        facts.smi, facts.smi_error = "failed", (lines[0] if lines else f"exit {code}")[:200]
        return
    facts.smi, facts.smi_gpus = "ok", parse_smi(text)
    rows = [r.split(",") for r in text.splitlines() if r.count(",") >= 3]
    if rows and facts.driver is None:
        facts.driver = rows[0][3].strip()[:32] or None


def gather() -> Facts:
    """This process's facts. torch.cuda.is_available() may initialise the driver: call it only in a process that
    runs CUDA anyway (a run, a helper), never in the zygote that forks runs."""
    import torch

    from .fingerprint import driver_version

    facts = Facts(torch=torch.__version__, cuda_build=torch.version.cuda, driver=driver_version())
    facts.device_nodes = os.path.exists("/dev/nvidiactl")
    facts.visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    facts.flavour = os.environ.get("REPROCHECK_FLAVOUR") or None
    facts.image_cuda = os.environ.get("REPROCHECK_CUDA") or None
    facts.min_driver = os.environ.get("REPROCHECK_MIN_DRIVER") or None
    _smi(facts)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        facts.available = torch.cuda.is_available()
    facts.why = next((_printable(str(w.message).splitlines()[0][:300]) for w in seen if "CUDA" in str(w.message)), "")
    facts.count = torch.cuda.device_count() if facts.available else 0
    return facts


def _needed_driver(facts: Facts) -> tuple[str, str] | None:
    """(CUDA version, its oldest driver): the image's own where set, else minor version compatibility's."""
    if facts.min_driver:
        return facts.image_cuda or facts.cuda_build or "?", facts.min_driver
    if facts.cuda_build and facts.cuda_build.split(".")[0] in MINOR_COMPAT:
        return facts.cuda_build, MINOR_COMPAT[facts.cuda_build.split(".")[0]]
    return None


def _no_gpu(facts: Facts) -> str:
    if facts.visible is not None and facts.visible.strip() in HIDDEN:
        return (
            f"CUDA_VISIBLE_DEVICES={facts.visible!r} hides every GPU from this process: unset it, or name the GPUs "
            "to use (CUDA_VISIBLE_DEVICES=0)"
        )
    if facts.flavour is not None:
        return (
            "no NVIDIA GPU is visible inside the container: give it the GPUs (`gpus: all` in the Action, "
            "`reprocheck docker --gpus all`), and install the NVIDIA Container Toolkit on the host "
            "(nvidia-ctk runtime configure --runtime=docker)"
        )
    return (
        "no NVIDIA GPU is visible to this process (no nvidia-smi, /dev/nvidiactl or driver): install the NVIDIA "
        "driver, or in a container give it the GPUs (docker run --gpus all, with the NVIDIA Container Toolkit)"
    )


def problems(facts: Facts, device: str = "cuda") -> list[str]:
    """Why `device` cannot be used, one line each, the fix in it; empty when it can."""
    if facts.available:  # whatever the build says (a ROCm torch has no CUDA version and runs torch.cuda)
        index = int(device.partition(":")[2] or 0)
        if index >= facts.count:
            return [f"device {device} does not exist: {facts.count} GPU(s) are visible to this process"]
        return []
    if facts.cuda_build is None:
        fix = (
            "this is the image's cpu flavour: use a CUDA flavour (flavour: cu130, or cu126 for CUDA 12 drivers)"
            if facts.flavour == "cpu"
            else "install a CUDA build of torch (pip install torch --index-url https://download.pytorch.org/whl/cu126)"
            ", or run the check in the pinned image with `reprocheck docker --gpus all`"
        )
        return [f"this torch ({facts.torch}) is built without CUDA: {fix}"]
    if facts.visible is not None and facts.visible.strip() in HIDDEN:
        return [_no_gpu(facts)]
    out: list[str] = []
    seen_gpu = facts.smi == "ok" and bool(facts.smi_gpus)
    if not seen_gpu and facts.driver is None and not facts.device_nodes and facts.smi != "failed":
        return [_no_gpu(facts)]
    needed = _needed_driver(facts)
    if facts.driver and needed and _version(facts.driver) < _version(needed[1]):
        other = "" if needed[0].startswith("12") else ", or use the image's cu126 flavour (CUDA 12.6) for older drivers"
        out.append(
            f"the NVIDIA driver {facts.driver} is older than CUDA {needed[0]} needs (>= {needed[1]}): update the "
            f"host's driver{other}"
        )
    if facts.smi == "failed":
        out.append(f"nvidia-smi fails: {facts.smi_error} (the driver is not loaded, or not reachable from here)")
    if not out:
        gpus = "; ".join(facts.smi_gpus) or "a GPU device node"
        why = facts.why or "no reason given"
        out.append(f"torch.cuda.is_available() is False although this machine shows {gpus}: {why}")
    return out


def verdict_lines(facts: Facts) -> list[str]:
    """What `reprocheck env --cuda` prints: the facts, then `cuda: usable` or each problem."""
    needed = _needed_driver(facts)
    lines = [
        f"cuda.torch_build: {facts.cuda_build}",
        f"cuda.driver: {facts.driver}" + (f" (CUDA {needed[0]} needs >= {needed[1]})" if needed else ""),
        f"cuda.nvidia_smi: {facts.smi}" + (f": {'; '.join(facts.smi_gpus)}" if facts.smi_gpus else ""),
        f"cuda.visible_to_torch: {facts.count if facts.available else 0} GPU(s)",
    ]
    found = problems(facts)
    return lines + ([f"cuda: not usable: {p}" for p in found] or ["cuda: usable"])
