"""`reprocheck docker`: the engine, the image, and running the container that launch.py lays out.

The container's shape (mounts, user, network, privileges) is decided by launch.py, the one policy the
GitHub Action uses too; this module finds the engine and the image and passes the exit code through.
It drives the `docker` command line, so nothing beyond the standard library is needed here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from .engine import ContainerError, docker, require_engine

__all__ = ["ContainerError", "build_image", "docker", "require_engine", "run"]


# The image's pins (docker/versions.env, their one place), shipped inside the package as package data.
VERSIONS = Path(__file__).resolve().parent / "versions.env"


def source_tree() -> Path | None:
    """The reprocheck checkout this runs from (for --build), if any."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "docker" / "Dockerfile").is_file():
            return parent
    return None


def read_versions(path: Path = VERSIONS) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Z_]+)=(.*)$", line.strip())
        if m:
            values[m.group(1)] = m.group(2)
    return values


def stack_tag(v: dict[str, str]) -> str:
    """The tag of this version's image: reprocheck's version, torch's and the CUDA flavour."""
    return f"{v['REPROCHECK_VERSION']}-torch{v['TORCH_VERSION']}-{v['CUDA_TAG']}"


def default_image() -> str:
    return f"reprocheck:{stack_tag(read_versions())}"


REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9_.\-]+$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def released_image(repository: str, path: Path = VERSIONS) -> str:
    """The image the release workflow pushed for the version files at this commit: its stack tag, whatever ref
    (a SHA, a moving v0) the workflow named the action by; with the digest where a release recorded one."""
    if not REPOSITORY.match(repository):
        raise ValueError(f"{repository!r} is not an OWNER/REPO name")
    v = read_versions(path)
    image = f"ghcr.io/{repository.lower()}:{stack_tag(v)}"
    digest = v.get("RELEASE_DIGEST", "")
    if digest and not DIGEST.match(digest):
        raise ValueError(f"RELEASE_DIGEST in {path} is not sha256:<64 hex digits>")
    return f"{image}@{digest}" if digest else image


def build_image(tag: str) -> None:
    tree = source_tree()
    if tree is None:
        raise ContainerError("--build needs the reprocheck source tree (docker/Dockerfile); use --image instead")
    build = tree / "docker" / "build.sh"
    args = ["bash", str(build)] + (["--local"] if os.environ.get("REPROCHECK_LOCAL_BASE") else [])
    proc = subprocess.run(args, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ContainerError(f"building the image failed (exit {proc.returncode}); see the output above")
    built = proc.stdout.strip().splitlines()[-1]
    if built != tag:
        raise ContainerError(f"the build produced {built}, not {tag}; pass --image {built}")


def run(plan: Any, *, build: bool, derivation: Any = None) -> int:
    """Run the planned container; its exit code is reprocheck's. Engine and image problems: ContainerError; a
    derivation (your requirements) that cannot be built: derived.DerivedError."""
    import dataclasses

    from .launch import prepare

    require_engine()
    if build:
        build_image(plan.image)
    # A derivation's base is pulled when missing (derived.ensure), as `docker run` would.
    if not derivation and docker("image", "inspect", "--format", "{{.Id}}", plan.image).returncode != 0:
        raise ContainerError(
            f"image {plan.image} is not here; build it with `reprocheck docker --build ...` "
            f"(or docker/build.sh) or pass --image"
        )
    if derivation:
        from .derived import ensure, plan_exclude

        derivation = dataclasses.replace(derivation, exclude=derivation.exclude + plan_exclude(plan))
        plan = dataclasses.replace(plan, image=ensure(derivation))
    prepare(plan)
    sys.stdout.flush()
    proc = subprocess.run(plan.docker_argv())
    if proc.returncode == 125:
        fix = " (GPUs need the NVIDIA Container Toolkit on the host)" if plan.gpus != "none" else ""
        raise ContainerError(f"the engine refused to start the container (docker exit 125, see above){fix}")
    return proc.returncode
