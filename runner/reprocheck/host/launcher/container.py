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
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            values[m.group(1)] = m.group(2)
    return values


# A flavour's name: what a tag ends in and a key of versions.env starts with (<FLAVOUR>_LOCK, ...). Checked before
# it is used anywhere, so that a value from a workflow input can never become an option or a variable name.
FLAVOUR_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")


def flavours(v: dict[str, str]) -> tuple[str, ...]:
    """The image's flavours (FLAVOURS), the default (DEFAULT_FLAVOUR) among them."""
    names = tuple(f.strip() for f in v.get("FLAVOURS", "").split(",") if f.strip())
    if not names or not all(FLAVOUR_NAME.match(f) for f in names) or v.get("DEFAULT_FLAVOUR") not in names:
        raise ValueError("FLAVOURS in versions.env must list lowercase names, DEFAULT_FLAVOUR among them")
    return names


def released_flavours(v: dict[str, str]) -> tuple[str, ...]:
    """The flavours a release of this version published: listed in RELEASED_FLAVOURS, or with a recorded digest."""
    listed = {f.strip() for f in v.get("RELEASED_FLAVOURS", "").split(",")}
    return tuple(f for f in flavours(v) if f in listed or v.get(f"RELEASE_DIGEST_{f.upper()}"))


def choose_flavour(v: dict[str, str], flavour: str | None, gpus: str = "none") -> str:
    """The flavour to run: the one asked for, checked strictly (a flavour without CUDA is refused with GPUs); else
    cpu for `gpus none` once a release published it; else DEFAULT_FLAVOUR. ValueError with the fix."""
    names = flavours(v)
    if not flavour:
        cpu = [f for f in names if not v.get(f"{f.upper()}_CUDA_VERSION")]
        return cpu[0] if gpus == "none" and cpu and cpu[0] in released_flavours(v) else v["DEFAULT_FLAVOUR"]
    if flavour not in names:  # exact: no stripping, no case folding, never an option
        raise ValueError(f"flavour {flavour!r} is not one of {', '.join(names)}")
    if gpus != "none" and not v.get(f"{flavour.upper()}_CUDA_VERSION"):
        raise ValueError(
            f"flavour {flavour} has no CUDA, so it cannot use gpus {gpus!r}: pick a CUDA flavour or gpus none"
        )
    return flavour


def stack_tag(v: dict[str, str], flavour: str | None = None) -> str:
    """The tag of this version's image: reprocheck's version, torch's and the flavour (default DEFAULT_FLAVOUR)."""
    return f"{v['REPROCHECK_VERSION']}-torch{v['TORCH_VERSION']}-{choose_flavour(v, flavour or v['DEFAULT_FLAVOUR'])}"


def default_image(flavour: str | None = None, gpus: str = "none") -> str:
    """`reprocheck docker`'s image, built here (docker/build.sh --flavour): chosen as the Action chooses."""
    v = read_versions()
    return f"reprocheck:{stack_tag(v, choose_flavour(v, flavour, gpus))}"


REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9_.\-]+$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def released_image(repository: str, path: Path = VERSIONS, flavour: str | None = None, gpus: str = "none") -> str:
    """The image the release workflow pushed for the version files at this commit: its stack tag, whatever ref
    (a SHA, a moving v0) the workflow named the action by; with the digest where a release recorded one."""
    if not REPOSITORY.match(repository):
        raise ValueError(f"{repository!r} is not an OWNER/REPO name")
    v = read_versions(path)
    chosen = choose_flavour(v, flavour, gpus)
    image = f"ghcr.io/{repository.lower()}:{stack_tag(v, chosen)}"
    key = f"RELEASE_DIGEST_{chosen.upper()}"
    digest = v.get(key, "")
    if digest and not DIGEST.match(digest):
        raise ValueError(f"{key} in {path} is not sha256:<64 hex digits>")
    return f"{image}@{digest}" if digest else image


def build_args(build: Path, flavour: str | None = None) -> list[str]:
    """docker/build.sh's command line: the flavour (checked first: never an option) and --local where asked."""
    if flavour is not None and not FLAVOUR_NAME.match(flavour):
        raise ValueError(f"flavour {flavour!r} is not a flavour name")
    args = ["bash", str(build)] + (["--local"] if os.environ.get("REPROCHECK_LOCAL_BASE") else [])
    return args + (["--flavour", flavour] if flavour else [])


def build_image(tag: str, flavour: str | None = None) -> None:
    tree = source_tree()
    if tree is None:
        raise ContainerError("--build needs the reprocheck source tree (docker/Dockerfile); use --image instead")
    args = build_args(tree / "docker" / "build.sh", flavour)
    proc = subprocess.run(args, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ContainerError(f"building the image failed (exit {proc.returncode}); see the output above")
    built = proc.stdout.strip().splitlines()[-1]
    if built != tag:
        raise ContainerError(f"the build produced {built}, not {tag}; pass --image {built}")


def run(plan: Any, *, build: bool, derivation: Any = None, flavour: str | None = None) -> int:
    """Run the planned container; its exit code is reprocheck's. Engine and image problems: ContainerError; a
    derivation (your requirements) that cannot be built: derived.DerivedError."""
    import dataclasses

    from .launch import prepare

    require_engine()
    if build:
        build_image(plan.image, flavour)
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
