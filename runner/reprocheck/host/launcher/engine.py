"""The docker command as reprocheck queries it, and whether an engine answers. Standalone, so that the container
launcher and the derived images share it without importing each other."""

from __future__ import annotations

import shutil
import subprocess


class ContainerError(Exception):
    """A one-line problem with the engine or image, with its fix."""


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    """A docker command whose output reprocheck reads (captured, never raising on its exit status); builds and
    the container itself stream their output and are started where they are planned."""
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise ContainerError(f"the docker command cannot be run ({exc.strerror or exc}); install Docker") from None


def require_engine() -> None:
    if shutil.which("docker") is None:
        raise ContainerError("the docker command is not installed (install Docker, or run `reprocheck run` here)")
    proc = docker("version", "--format", "{{.Server.Version}}")
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no answer"])[-1][:160]
        raise ContainerError(f"cannot reach the Docker engine ({why}); start dockerd or set DOCKER_HOST")
