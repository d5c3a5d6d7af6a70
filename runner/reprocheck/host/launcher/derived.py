"""Your dependencies in the pinned image: a derived image `FROM` it with your requirement files and your own
package installed, built once and reused while nothing changed. Shared by `reprocheck docker --requirements/--install`
and the Action's `requirements:` / `install:` inputs. What a pull request puts there is untrusted:

  * requirement lines name packages from PyPI (never a URL, path or VCS link), at versions the image's pinned
    torch / torchvision (and, before a build, every distribution of the image) allow (derived_requirements.py);
  * an install folder is staged, never copied as it lies: git's listing, no link out of the folder, no special
    file, never the run's writable folders or model cache, no untracked file named like credentials
    (derived_context.py); its project may not be named like a distribution of the image;
  * the build (derived_inside.py) pins every distribution of the image, installs as an unprivileged uid that can
    add to site-packages and bin/ but change nothing, and fails naming the distribution and file if anything of the
    image changed, or a .pth / sitecustomize / `._pth` / pyvenv.cfg, a bin/ file that is not a venv script, a
    pydantic / torch.backends plugin appeared, or Python's sys.path changed;
  * the tag is a length-prefixed hash of the base image's id and every staged path, mode and byte (the
    Dockerfile too): `reprocheck-derived:<hash>`, reused while unchanged ("using cached image ..."); the last
    few per base image are kept (label io.reprocheck.derived.base), a failed build leaves nothing behind;
  * a base image that is not here is pulled, as `docker run` would; the network is used only by this build.

Standard library only: the Action's step (action.py) runs on a runner where reprocheck is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .derived_context import stage_install, tree_hash
from .derived_requirements import DerivedError, check_requirements, normalize, project_name
from .engine import ContainerError, docker

__all__ = ["Derivation", "DerivedError", "check_requirements", "ensure", "plan_exclude", "tag_for"]

PINNED = ("torch", "torchvision")
LABEL = "io.reprocheck.derived.base"
KEEP = 3  # derived images kept per base image
INSIDE = Path(__file__).resolve().parent / "derived_inside.py"
MARK = "reprocheck-derive-error: "  # derived_inside.MARK
HASH_VERSION = b"reprocheck-derived/2"
DOCKERFILE = """\
ARG BASE
FROM ${BASE}
USER root
COPY context/ /tmp/reprocheck-derive/
RUN ["/opt/venv/bin/python", "-I", "-S", "/tmp/reprocheck-derive/inside.py"]
USER reprocheck
"""
# The image's distributions, read by the image's own interpreter without site-packages running anything.
LIST_DISTS = (
    "import os;lib='/opt/venv/lib';print('\\n'.join(e[:-10] for d in os.listdir(lib) "
    "for e in os.listdir(os.path.join(lib,d,'site-packages')) if e.endswith('.dist-info')))"
)
CERT_FAILURE = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed", re.IGNORECASE)
DOCKER_NOISE = re.compile(
    r"^(Step \d+/\d+ :| ---> |Removing intermediate container|Sending build context|DEPRECATED:|\s+Install the buildx"
    r"|\s+https://docs\.docker\.com/go/buildx|The command .* returned a non-zero code|Successfully )"
)


@dataclass(frozen=True)
class Derivation:
    base: str  # the pinned image
    requirements: tuple[Path, ...] = ()
    installs: tuple[Path, ...] = ()  # folders with a pyproject.toml (or setup.py)
    exclude: tuple[Path, ...] = ()  # never copied from an install folder: the run's writable folders, model cache

    def __bool__(self) -> bool:
        return bool(self.requirements or self.installs)


def plan_exclude(plan: Any) -> tuple[Path, ...]:
    """What a launch plan's derivation must never copy: its writable output folders and its model cache."""
    head = list(plan.args)
    head = head[: head.index("--")] if "--" in head else head
    cache = [head[i + 1] for i, a in enumerate(head[:-1]) if a == "--model-cache"]
    return tuple(plan.outputs) + tuple(Path(c) for c in cache)


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return docker(*args)
    except ContainerError as exc:
        raise DerivedError(str(exc)) from None


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return (lines[-1] if lines else f"exit {proc.returncode}")[:300]


def _stage(d: Derivation, ctx: Path) -> list[str]:
    """Lay out the build context in ctx; notes for the log."""
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    context = ctx / "context"
    context.mkdir()
    shutil.copyfile(INSIDE, context / "inside.py")
    shutil.copyfile(INSIDE.with_name("derived_venv.py"), context / "derived_venv.py")  # inside.py imports it
    for i, path in enumerate(d.requirements):
        try:
            (context / f"req-{i}.txt").write_bytes(Path(path).read_bytes())
        except OSError as exc:
            raise DerivedError(f"requirements {path}: cannot be read ({exc.strerror or exc})") from None
    notes = []
    for i, folder in enumerate(d.installs):
        try:
            note = stage_install(folder, str(folder), context / f"install-{i}", d.exclude)
        except OSError as exc:
            raise DerivedError(f"install {folder}: cannot be copied ({exc.strerror or exc}: {exc.filename})") from None
        notes += [note] if note else []
    # Local builds behind a TLS-intercepting proxy: the host's CA bundle for pip. It stays in the derived
    # image's COPY layer (public certificates only): such an image is for this machine, never to be pushed.
    cert = os.environ.get("REPROCHECK_PIP_CERT")
    if cert:
        try:
            (context / "ca.pem").write_bytes(Path(cert).read_bytes())
        except OSError as exc:
            raise DerivedError(
                f"REPROCHECK_PIP_CERT {cert}: cannot be read ({exc.strerror or exc}); point it at a CA bundle"
            ) from None
    return notes


def _tag(base_id: str, ctx: Path) -> str:
    return f"reprocheck-derived:{tree_hash(ctx, HASH_VERSION, base_id.encode())[:16]}"


def tag_for(base_id: str, d: Derivation) -> str:
    """The tag a derivation builds to on a base image (its id)."""
    with tempfile.TemporaryDirectory(prefix="reprocheck-derive-") as tmp:
        _stage(d, Path(tmp))
        return _tag(base_id, Path(tmp))


def _base_id(base: str, log: TextIO) -> str:
    """The base image's id, pulled first when it is not here (as `docker run` would)."""
    found = _docker("image", "inspect", "--format", "{{.Id}}", base)
    if found.returncode != 0:
        print(f"reprocheck: image {base} is not here: pulling it", file=log, flush=True)
        pulled = _docker("pull", "--quiet", base)
        if pulled.returncode != 0:
            raise DerivedError(
                f"image {base} is not here and pulling it failed ({_last_line(pulled)}); "
                "build it (docker/build.sh) or pass an image this machine has"
            )
        found = _docker("image", "inspect", "--format", "{{.Id}}", base)
    return found.stdout.strip()


def _label_pins(base: str) -> dict[str, str]:
    labels = _docker("image", "inspect", "--format", "{{json .Config.Labels}}", base)
    try:
        data = json.loads(labels.stdout or "{}") or {}
    except ValueError:
        data = {}
    return {p: data.get(f"io.reprocheck.{p}.version", "?") for p in PINNED}


def _dists(base_id: str) -> dict[str, str]:
    """Every distribution of the image: name -> version."""
    argv = ["run", "--rm", "--network", "none", "--cap-drop", "ALL", "--entrypoint", "/opt/venv/bin/python"]
    proc = _docker(*argv, base_id, "-I", "-S", "-c", LIST_DISTS)
    if proc.returncode != 0:
        raise DerivedError(f"cannot list the image's distributions ({_last_line(proc)}); is it a reprocheck image?")
    return {normalize(n): v for n, _, v in (e.rpartition("-") for e in proc.stdout.split()) if n}


def _check_installs(d: Derivation, ctx: Path, dists: dict[str, str]) -> None:
    for i, folder in enumerate(d.installs):
        name = project_name(ctx / "context" / f"install-{i}", str(folder))
        if name in dists:
            raise DerivedError(
                f"install {folder}: its project is named {name}, which the image already has ({name}=={dists[name]}) "
                "and which no package may replace; rename your project"
            )


def _failure(output: str, d: Derivation) -> str:
    """One line: what failed, in pip's own words (not Docker's), with the fix for a certificate failure."""
    steps = {f"req-{i}.txt": f"requirements {p}" for i, p in enumerate(d.requirements)}
    steps.update({f"install-{i}": f"install {p}" for i, p in enumerate(d.installs)})
    marks = [line[len(MARK) :] for line in output.splitlines() if line.startswith(MARK)]
    try:
        data = json.loads(marks[-1]) if marks else {}
    except ValueError:
        data = {}
    if data:
        where = steps.get(str(data.get("step", "")), "")
        tail = [str(t) for t in data.get("tail", [])]
        text = (f"{where}: " if where else "") + str(data.get("message", ""))
    else:
        tail = [x for x in output.splitlines() if x.strip() and not DOCKER_NOISE.match(x)]
        text = "the build failed"
    tail = [t.strip() for t in tail if not re.search(r"━|\beta \d", t)]  # progress bars say nothing
    errors = [t for t in tail if t.startswith("ERROR")]
    if tail:
        text += " (pip said: " + " | ".join((errors or tail)[-4:])[-600:] + ")"
    if CERT_FAILURE.search(output):
        text += "; a certificate failure: behind a TLS-intercepting proxy, set REPROCHECK_PIP_CERT=/path/to/ca.pem"
    return f"installing your requirements into {d.base} failed: " + " ".join(text.split())


def _clean_failed(output: str, base_id: str, tag: str) -> None:
    """A failed build leaves nothing: its containers, the images of its steps, a partial tag."""
    for container in re.findall(r"^ ---> Running in ([0-9a-f]{12,64})\s*$", output, re.M):
        _docker("rm", "-f", container)
    if _docker("image", "inspect", tag).returncode == 0:
        _docker("rmi", tag)
    steps = re.findall(r"^ ---> ([0-9a-f]{12,64})\s*$", output, re.M)
    for image in reversed(steps):
        info = _docker("image", "inspect", "--format", "{{.Id}} {{len .RepoTags}}", image).stdout.split()
        # Never the base, never an image with a name: only this build's own steps (rmi refuses shared ones).
        if len(info) == 2 and info[0] != base_id and info[1] == "0":
            _docker("rmi", image)


def _prune(base_id: str, keep: str) -> None:
    """Keep the newest KEEP derived images of this base (and the one in use); only images with our label."""
    listed = _docker("images", "--filter", f"label={LABEL}={base_id}", "--format", "{{.Repository}}:{{.Tag}}")
    tags = [t for t in listed.stdout.split() if t.startswith("reprocheck-derived:") and t != keep]
    for tag in tags[KEEP - 1 :]:
        _docker("rmi", tag)


def _build(d: Derivation, ctx: Path, base_id: str, tag: str) -> None:
    argv = ["docker", "build", "--force-rm", "--rm", "--label", f"{LABEL}={base_id}", "-t", tag]
    argv += ["--build-arg", f"BASE={base_id}", str(ctx)]
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as exc:
        raise DerivedError(f"the docker command cannot be run ({exc.strerror or exc}); install Docker") from None
    if proc.returncode != 0:
        output = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", proc.stdout)  # the builder colours what RUN wrote
        _clean_failed(output, base_id, tag)
        raise DerivedError(_failure(output, d))


def ensure(d: Derivation, log: TextIO | None = None) -> str:
    """The derived image's tag, built when it is not here yet. Raises DerivedError."""
    log = log or sys.stderr
    for path in d.requirements:
        if not Path(path).is_file():
            raise DerivedError(f"requirements {path}: no such file")
    base_id = _base_id(d.base, log)
    pins = _label_pins(d.base)
    with tempfile.TemporaryDirectory(prefix="reprocheck-derive-") as tmp:
        ctx = Path(tmp)
        notes = _stage(d, ctx)
        staged = [(ctx / "context" / f"req-{i}.txt", path) for i, path in enumerate(d.requirements)]
        for copy, path in staged:  # the copy that is built, checked
            check_requirements(copy, pins, path)
        for note in notes:
            print(f"reprocheck: {note}", file=log, flush=True)
        tag = _tag(base_id, ctx)
        if _docker("image", "inspect", "--format", "{{.Id}}", tag).returncode == 0:
            print(f"reprocheck: using cached image {tag} (FROM {d.base}, nothing changed)", file=log, flush=True)
            return tag
        dists = _dists(base_id)
        for copy, path in staged:
            check_requirements(copy, dists, path)
        _check_installs(d, ctx, dists)
        print(f"reprocheck: building {tag} FROM {d.base} with your requirements", file=log, flush=True)
        _build(d, ctx, base_id, tag)
    _prune(base_id, tag)
    return tag
