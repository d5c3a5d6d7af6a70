"""Your dependencies in the pinned image: a derived image `FROM` it with your requirement files and your own
package installed, built once and reused while nothing changed. Shared by `reprocheck docker --requirements/--install`
and the Action's `requirements:` / `install:` inputs.

  * the image's own stack cannot change: every package already in it (torch, torchvision, numpy, the CUDA wheels,
    reprocheck) is a pip constraint at its installed version, and a file naming torch or torchvision at another
    version is refused before anything is built;
  * a file with hashes is installed in pip's hash-checking mode (pip's own rule: one hash makes all required);
  * the network is used only by this build; the runs keep `--network none`;
  * the tag is a hash of the base image's id and every file's content: `reprocheck-derived:<hash>`, reused while
    they are unchanged ("using cached image ...").

Standard library only: the Action's step (action.py) runs on a runner where reprocheck is not installed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

PINNED = ("torch", "torchvision")
# pip options a requirement file may hold for the image; anything that points pip elsewhere is refused.
ALLOWED_OPTIONS = ("--hash",)
REFUSED_OPTIONS = (
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-e",
    "--editable",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "--no-index",
)


class DerivedError(ValueError):
    """A requirement file or install folder the image cannot take: one line naming it and the fix."""


@dataclass(frozen=True)
class Derivation:
    base: str  # the pinned image
    requirements: tuple[Path, ...] = ()
    installs: tuple[Path, ...] = ()  # folders with a pyproject.toml (or setup.py)

    def __bool__(self) -> bool:
        return bool(self.requirements or self.installs)


def _name(line: str) -> str:
    m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() if m else ""


def check_requirements(path: Path, pins: dict[str, str]) -> None:
    """Refuse what would change the pinned stack or send pip elsewhere. `pins`: package -> the image's version."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DerivedError(f"requirements {path}: cannot be read ({exc})") from None
    for number, raw in enumerate(text.replace("\\\n", " ").splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        option = line.split()[0].split("=")[0]
        if option.startswith("-"):
            if option in REFUSED_OPTIONS or option not in ALLOWED_OPTIONS:
                raise DerivedError(
                    f"requirements {path}:{number}: {option} is not taken for the image; list the packages "
                    "themselves (from PyPI)"
                )
            continue
        name = _name(line)
        if name in PINNED:
            want = f"{name}=={pins.get(name, '?')}"
            spec = re.sub(r"\s+", "", line.split(";")[0].split("--hash")[0])
            if spec.lower() != want:
                raise DerivedError(
                    f"requirements {path}:{number}: {line.split()[0]} would change the image's pinned {want}; "
                    f"remove it (the image provides {want})"
                )


def tag_for(base_id: str, d: Derivation) -> str:
    h = hashlib.sha256(base_id.encode())
    for path in d.requirements:
        h.update(b"requirements\0" + path.read_bytes())
    for folder in d.installs:
        h.update(b"install\0")
        for file in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts):
            h.update(str(file.relative_to(folder)).encode() + b"\0" + file.read_bytes())
    return f"reprocheck-derived:{h.hexdigest()[:16]}"


DOCKERFILE = """\
ARG BASE
FROM ${BASE}
USER root
COPY context/ /tmp/reprocheck-derive/
RUN set -e; cd /tmp/reprocheck-derive; \\
    if [ -s ca.pem ]; then export PIP_CERT=$PWD/ca.pem; fi; \\
    /opt/venv/bin/pip freeze --all --exclude-editable | grep -v ' @ ' > pins.txt; \\
    for r in req-*.txt; do [ -e "$r" ] || continue; \\
      /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -c pins.txt -r "$r"; done; \\
    for d in install-*; do [ -e "$d" ] || continue; \\
      /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -c pins.txt "./$d"; done; \\
    /opt/venv/bin/pip check; \\
    cd /; rm -rf /tmp/reprocheck-derive
USER reprocheck
"""


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def _pins(base: str) -> dict[str, str]:
    labels = _docker("image", "inspect", "--format", "{{json .Config.Labels}}", base)
    import json

    try:
        data = json.loads(labels.stdout or "{}") or {}
    except ValueError:
        data = {}
    return {p: data.get(f"io.reprocheck.{p}.version", "?") for p in PINNED}


def ensure(d: Derivation, log: TextIO | None = None) -> str:
    """The derived image's tag, built when it is not here yet. Raises DerivedError."""
    log = log or sys.stderr
    base_id = _docker("image", "inspect", "--format", "{{.Id}}", d.base)
    if base_id.returncode != 0:
        raise DerivedError(f"image {d.base} is not here; build or pull it first")
    pins = _pins(d.base)
    for path in d.requirements:
        if not path.is_file():
            raise DerivedError(f"requirements {path}: no such file")
        check_requirements(path, pins)
    for folder in d.installs:
        if not (folder / "pyproject.toml").is_file() and not (folder / "setup.py").is_file():
            raise DerivedError(f"install {folder}: no pyproject.toml or setup.py there (give your package's folder)")
    tag = tag_for(base_id.stdout.strip(), d)
    if _docker("image", "inspect", "--format", "{{.Id}}", tag).returncode == 0:
        print(f"reprocheck: using cached image {tag} (FROM {d.base}, nothing changed)", file=log, flush=True)
        return tag
    print(f"reprocheck: building {tag} FROM {d.base} with your requirements", file=log, flush=True)
    with tempfile.TemporaryDirectory(prefix="reprocheck-derive-") as tmp:
        ctx = Path(tmp)
        (ctx / "context").mkdir()
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        for i, path in enumerate(d.requirements):
            shutil.copyfile(path, ctx / "context" / f"req-{i}.txt")
        for i, folder in enumerate(d.installs):
            shutil.copytree(folder, ctx / "context" / f"install-{i}", ignore=shutil.ignore_patterns(".git"))
        args = ["docker", "build", "-q", "-t", tag, "--build-arg", f"BASE={d.base}"]
        # Local builds behind a TLS-intercepting proxy: the host's CA bundle for pip. It stays in the derived
        # image's COPY layer (public certificates only): such an image is for this machine, never to be pushed.
        cert = os.environ.get("REPROCHECK_PIP_CERT")
        if cert:
            shutil.copyfile(cert, ctx / "context" / "ca.pem")
        proc = subprocess.run([*args, str(ctx)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stdout.strip().splitlines()[-4:])[-600:]
        raise DerivedError(f"installing your requirements into {d.base} failed (pip said: {tail})")
    return tag
