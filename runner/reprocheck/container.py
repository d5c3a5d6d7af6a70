"""`reprocheck docker SPEC [run options]`: the same check inside the pinned image, via the Docker SDK.

The spec's folder is mounted read-only at the same path inside the container (so paths in the spec
and in messages read the same), each folder that receives --report/--summary is mounted writable,
the container runs as the calling user with no network unless asked, and its exit code is passed
through unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__

ENGINE_EXIT = 2  # nothing was run: no engine, no image, bad flags


class ContainerError(Exception):
    """A one-line problem with the engine or image, with its fix."""


def versions_file() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "docker" / "versions.env"
        if candidate.is_file():
            return candidate
    return None


def read_versions(path: Path | None = None) -> dict[str, str]:
    path = path or versions_file()
    if path is None:
        return {}
    values = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Z_]+)=(.*)$", line.strip())
        if m:
            values[m.group(1)] = m.group(2)
    return values


def default_image() -> str:
    v = read_versions()
    torch_v, cuda = v.get("TORCH_VERSION", "2.14.1"), v.get("CUDA_TAG", "cu130")
    return f"reprocheck:{v.get('REPROCHECK_VERSION', __version__)}-torch{torch_v}-{cuda}"


def gpu_requests(gpus: str) -> list[Any]:
    """--gpus all | N | none -> Docker device requests."""
    import docker.types

    if gpus == "none":
        return []
    if gpus == "all":
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if gpus.isdigit() and int(gpus) > 0:
        return [docker.types.DeviceRequest(count=int(gpus), capabilities=[["gpu"]])]
    raise ContainerError(f"--gpus {gpus!r}: use all, none or a positive count")


@dataclass(frozen=True)
class Plan:
    """What the container gets: mounts, the argument list, the user."""

    volumes: dict[str, dict[str, str]]
    command: list[str]
    user: str


def plan(spec_paths: list[Path], run_args: list[str], report: Path | None, summary: Path | None,
         baseline: Path | None = None, update_baseline: bool = False) -> Plan:
    volumes: dict[str, dict[str, str]] = {}
    command = ["run"]
    for spec in spec_paths:
        spec = spec.resolve()
        if not spec.is_file():
            raise ContainerError(f"{spec}: no such spec file (check the path)")
        volumes.setdefault(str(spec.parent), {"bind": str(spec.parent), "mode": "ro"})
        command.append(str(spec))
    for flag, path in (("--report", report), ("--summary", summary)):
        if path is None:
            continue
        path = path.resolve()
        if not path.parent.is_dir():
            raise ContainerError(f"{flag} {path}: folder {path.parent} does not exist (create it first)")
        volumes[str(path.parent)] = {"bind": str(path.parent), "mode": "rw"}  # writable wins over ro
        command += [flag, str(path)]
    if baseline is not None:
        baseline = baseline.resolve()
        baseline.mkdir(parents=True, exist_ok=True)
        # Writable: the obtained outputs land beside the goldens on a mismatch.
        volumes[str(baseline)] = {"bind": str(baseline), "mode": "rw"}
        command += ["--baseline", str(baseline)] + (["--update-baseline"] if update_baseline else [])
    return Plan(volumes=volumes, command=command + run_args, user=f"{os.getuid()}:{os.getgid()}")


def _client() -> Any:
    try:
        import docker
    except ImportError:
        raise ContainerError("the Docker SDK is not installed (pip install 'reprocheck[docker]')") from None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types for an absent engine
        raise ContainerError(
            f"cannot reach the Docker engine ({str(exc).splitlines()[0][:160]}); start dockerd or set DOCKER_HOST"
        ) from None
    return client


def build_image(tag: str) -> None:
    script = versions_file()
    if script is None:
        raise ContainerError("--build needs the reprocheck source tree (docker/Dockerfile); use --image instead")
    build = script.parent / "build.sh"
    args = ["bash", str(build)] + (["--local"] if os.environ.get("REPROCHECK_LOCAL_BASE") else [])
    proc = subprocess.run(args, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ContainerError(f"building the image failed (exit {proc.returncode}); see the output above")
    built = proc.stdout.strip().splitlines()[-1]
    if built != tag:
        raise ContainerError(f"the build produced {built}, not {tag}; pass --image {built}")


def run(spec_paths: list[Path], run_args: list[str], *, image: str, build: bool, gpus: str, network: str,
        report: Path | None, summary: Path | None, baseline: Path | None = None, update_baseline: bool = False) -> int:
    p = plan(spec_paths, run_args, report, summary, baseline, update_baseline)
    client = _client()
    if build:
        build_image(image)
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ContainerError(f"image {image} is not here; build it with `reprocheck docker --build ...` "
                             f"(or docker/build.sh) or pass --image") from None
    environment = {"HOME": "/tmp", "NO_COLOR": os.environ.get("NO_COLOR", "1")}
    volumes = dict(p.volumes)
    if "--github" in run_args:
        # The runner's file-command files, at the same paths, so the container can write outputs and summary.
        for var in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE"):
            if os.environ.get(var):
                environment[var] = os.environ[var]
                folder = os.environ[var] if var == "GITHUB_WORKSPACE" else str(Path(os.environ[var]).parent)
                volumes.setdefault(folder, {"bind": folder, "mode": "rw"})
    try:
        container = client.containers.run(
            image, p.command, detach=True, user=p.user, volumes=volumes, network_mode=network,
            device_requests=gpu_requests(gpus), working_dir="/work", environment=environment,
        )
    except docker.errors.APIError as exc:
        why = (exc.explanation or str(exc)).splitlines()[0][:200]
        fix = " (GPUs need the NVIDIA Container Toolkit on the host)" if gpus != "none" else ""
        raise ContainerError(f"the engine refused to start the container: {why}{fix}") from None
    try:
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        return int(container.wait()["StatusCode"])
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError:
            pass
