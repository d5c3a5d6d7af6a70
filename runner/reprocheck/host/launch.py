"""One launch policy for the pinned image, shared by `reprocheck docker` and the GitHub Action.

Both build the same `docker run` from the same request, here:
  * the workspace (the Action's $GITHUB_WORKSPACE, or the current folder) is mounted read-only at
    the same path, so paths in specs and messages read the same inside and out;
  * only the folders that receive --report / --summary and the baseline folder are writable, and
    each must be inside the workspace (symlinks resolved first), so nothing outside it is reachable;
  * under GitHub, only the $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY files are mounted, not their
    folder (which also holds the step's env and path files);
  * no network unless asked, the caller's uid:gid (never root), all capabilities dropped, no
    privilege escalation, a read-only root file system with a private /tmp;
  * no value can become an option: every value is checked (values starting with `-` are refused),
    `--` ends the options before the image and before the spec paths, and nothing is glob-expanded;
  * no path can rewrite a mount: Docker reads `--mount` as CSV, so a path holding `,` or `"` (or a line
    break) is refused rather than quoted;
  * a writable folder may not be, lie in or hold `.git` or `.github`, nor hold a spec of the run: model
    code must never reach the repository's hooks, workflows or the files a check is made of. The
    container is told its writable folders (REPROCHECK_WRITABLE) and refuses a model or input file there.

Standard library only: the Action's step (action.py) runs on a runner where reprocheck is not installed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

CHECK_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|auto)$")
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@\-]*$")
NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
ISOLATIONS = ("auto", "fork", "spawn")
# --invariance values: all, none, or a kind of invariance.KINDS (a test keeps the two equal; this module
# stays standard-library only).
INVARIANCE = ("all", "none", "batch", "threads", "device")
CONTAINER_ENV = {"HOME": "/tmp", "NO_COLOR": "1"}
# Docker parses a --mount value as CSV fields of key=value: these characters could end a field or open a quote.
MOUNT_UNSAFE = ',"\r\n\0'
PROTECTED = (".git", ".github")  # never writable, nor any folder holding them
WRITABLE_ENV = "REPROCHECK_WRITABLE"  # the container's writable folders, a JSON list


class LaunchError(ValueError):
    """A request the policy refuses: one line naming the input and the fix."""


@dataclass(frozen=True)
class Request:
    """What to run, as the user gave it; `plan` checks every field."""

    specs: tuple[str, ...]
    image: str
    workspace: Path = field(default_factory=Path.cwd)
    checks: tuple[str, ...] = ()
    runs: int | None = None
    device: str | None = None
    gpus: str = "none"
    network: str = "none"
    isolation: str = "auto"
    quiet: bool = False
    report: str | None = None
    summary: str | None = None
    baseline: str | None = None
    update_baseline: bool = False
    invariance: tuple[str, ...] = ()
    require_devices: bool = False
    strict: bool = False
    github: bool = False
    model_cache: str | None = None  # weights folder, mounted read-only (TORCH_HOME, HF_HOME under it)
    allow_outside_cache: bool = False  # a model cache outside the workspace (self-hosted runners, reprocheck docker)
    github_output: str | None = None  # the runner's file-command files (only with github)
    github_summary: str | None = None
    float64: bool = False  # the upgrade canary's float64 reference run
    code: str | None = None  # `upgrade`: a folder holding only reprocheck's package, read-only, first on PYTHONPATH


@dataclass(frozen=True)
class Mount:
    path: str
    writable: bool

    def option(self) -> str:
        return f"type=bind,source={self.path},target={self.path}" + ("" if self.writable else ",readonly")


@dataclass(frozen=True)
class Plan:
    mounts: tuple[Mount, ...]
    env: dict[str, str]
    user: str
    network: str
    gpus: str
    image: str
    args: tuple[str, ...]  # reprocheck's arguments inside the container
    outputs: tuple[Path, ...] = ()  # output folders to create on the host before the run
    entrypoint: str | None = None  # the image's own (reprocheck) unless set: the upgrade canary's grading helper

    def docker_argv(self) -> list[str]:
        argv = [
            "docker",
            "run",
            "--rm",
            "--user",
            self.user,
            "--network",
            self.network,
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,exec,mode=1777",
        ]
        if self.gpus != "none":
            argv += ["--gpus", self.gpus]
        for m in self.mounts:
            argv += ["--mount", m.option()]
        argv += ["--workdir", str(self.mounts[0].path)]
        if self.entrypoint:
            argv += ["--entrypoint", self.entrypoint]
        for key, value in self.env.items():
            argv += ["--env", f"{key}={value}"]
        return argv + ["--", self.image, *self.args]


def _no_option(name: str, value: str) -> str:
    if value.startswith("-"):
        raise LaunchError(f"{name} {value!r} starts with '-': a value can never be an option (rename it)")
    if any(c in value for c in "\r\n\0"):
        raise LaunchError(f"{name} contains a line break or NUL; give one value per line")
    return value


def ascii_count(name: str, value: str) -> int:
    """A whole number written in ASCII digits only (str.isdigit also takes '²' and '٣')."""
    if not re.fullmatch(r"[0-9]{1,9}", value):
        raise LaunchError(f"{name} must be a whole number written in the digits 0-9, got {value!r}")
    return int(value)


def _mountable(name: str, path: str) -> str:
    bad = sorted({c for c in path if c in MOUNT_UNSAFE})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise LaunchError(
            f"{name} {path!r} holds {shown}, which Docker's --mount syntax reads as a separator or quote; "
            "rename the folder or file"
        )
    return path


def _inside(workspace: Path, name: str, value: str, must_exist: bool = False) -> Path:
    """An absolute, symlink-resolved path that must lie inside the workspace."""
    _no_option(name, value)
    path = Path(os.path.realpath(workspace / value))
    _mountable(name, str(path))
    if path != workspace and workspace not in path.parents:
        raise LaunchError(f"{name} {value!r} is outside the workspace {workspace}; give a path inside it")
    if must_exist and not path.is_file():
        raise LaunchError(f"{name} {value!r}: no such file in the workspace (check the path)")
    return path


def cache_env(folder: str) -> dict[str, str]:
    """Where torch and Hugging Face look for weights, under one folder; the hub is never asked (no network)."""
    return {
        "TORCH_HOME": os.path.join(folder, "torch"),
        "HF_HOME": os.path.join(folder, "huggingface"),
        "HF_HUB_OFFLINE": "1",
    }


def _model_cache(workspace: Path, value: str, allow_outside: bool) -> Path:
    _no_option("model-cache", value)
    path = Path(os.path.realpath(workspace / value))
    _mountable("model-cache", str(path))
    if not path.is_dir():
        raise LaunchError(f"model-cache {value!r} is not a folder (fill it in an earlier step, see the README)")
    if path != workspace and workspace not in path.parents and not allow_outside:
        raise LaunchError(
            f"model-cache {value!r} is outside the workspace {workspace}; put it inside it, or give an absolute "
            "path on a self-hosted runner"
        )
    return path


def _gpus(value: str) -> str:
    if value in ("none", "all") or (re.fullmatch(r"[0-9]{1,4}", value) and int(value) > 0):
        return value
    raise LaunchError(f"gpus must be none, all or a positive count (digits 0-9), got {value!r}")


def _refuse_protected(workspace: Path, name: str, folder: Path, specs: list[Path]) -> None:
    """A writable folder must be a dedicated output folder: not in or holding .git/.github or a spec."""
    fix = "give a dedicated output folder, e.g. reprocheck/"
    parts = folder.relative_to(workspace).parts
    hit = next((p for p in parts if p in PROTECTED), None)
    if hit:
        raise LaunchError(f"{name} would make {folder} writable, which is inside {hit}; {fix}")
    for spec in specs:
        if folder in spec.parents:
            raise LaunchError(
                f"{name} would make {folder} writable, which holds the spec {spec.name} (and what it loads); {fix}"
            )
    if folder.is_dir():
        for top, dirs, _ in os.walk(folder):
            found = next((d for d in dirs if d in PROTECTED), None)
            if found:
                raise LaunchError(f"{name} would make {folder} writable, which holds {Path(top) / found}; {fix}")


def plan(req: Request) -> Plan:
    """Check every value of the request and lay out the container. Raises LaunchError."""
    workspace = Path(os.path.realpath(req.workspace))
    if not workspace.is_dir():
        raise LaunchError(f"workspace {req.workspace} is not a folder")
    _mountable("workspace", str(workspace))
    if not req.specs:
        raise LaunchError("spec is empty: name at least one spec file")
    if not IMAGE.match(req.image):
        raise LaunchError(f"image {req.image!r} is not an image reference (name[:tag][@digest])")
    specs = [_inside(workspace, "spec", s, must_exist=True) for s in req.specs]
    args: list[str] = ["run"]
    for name in req.checks:
        if not CHECK_NAME.match(name):
            raise LaunchError(f"check {name!r} is not a check name (letters, digits, '.', '_', '-')")
        args += ["--check", name]
    if req.runs is not None:
        if not 2 <= req.runs <= 1000:
            raise LaunchError(f"runs must be a whole number from 2 to 1000, got {req.runs}")
        args += ["--runs", str(req.runs)]
    if req.device is not None:
        if not DEVICE.match(req.device):
            raise LaunchError(f"device must be cpu, cuda, cuda:N or auto, got {req.device!r}")
        args += ["--device", req.device]
    if req.isolation not in ISOLATIONS:
        raise LaunchError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {req.isolation!r}")
    if not NETWORK.match(req.network) or req.network == "host":
        raise LaunchError(f"network {req.network!r} is refused (use none, bridge or a named network; never host)")
    args += ["--isolation", req.isolation] + (["-q"] if req.quiet else [])
    for kind in req.invariance:
        if kind not in INVARIANCE:
            raise LaunchError(f"invariance {kind!r} is not one of {', '.join(INVARIANCE)}")
        args += ["--invariance", kind]
    if req.require_devices:
        args.append("--require-devices")
    if req.strict:
        args.append("--strict")
    if req.float64:
        args.append("--reference-float64")

    mounts = [Mount(str(workspace), writable=False)]
    writable: list[Path] = []
    writable_names: list[str] = []
    for flag, value in (("--report", req.report), ("--summary", req.summary)):
        if value:
            path = _inside(workspace, flag.lstrip("-"), value)
            if path == workspace or path.is_dir():
                raise LaunchError(f"{flag.lstrip('-')} {value!r} is a folder; give a file name")
            if path.parent == workspace:  # it would need the whole workspace writable
                raise LaunchError(
                    f"{flag.lstrip('-')} {value!r} is in the workspace's top folder, which the container gets "
                    f"read-only; put it in a folder inside it, e.g. reprocheck/{path.name}"
                )
            writable.append(path.parent)
            writable_names.append(flag.lstrip("-"))
            args += [flag, str(path)]
    if req.baseline:
        path = _inside(workspace, "baseline", req.baseline)
        if path == workspace:
            raise LaunchError(
                "baseline is the workspace itself, which the container gets read-only; use a folder inside it"
            )
        writable.append(path)
        writable_names.append("baseline")
        args += ["--baseline", str(path), "--baseline-root", str(workspace)]
        if req.update_baseline:
            args.append("--update-baseline")
    elif req.update_baseline:
        raise LaunchError("update-baseline needs a baseline folder (where to write the goldens)")
    flags = {folder: name for folder, name in zip(writable, writable_names, strict=True)}
    for folder, name in flags.items():
        _refuse_protected(workspace, name, folder, specs)
        mounts.append(Mount(str(folder), writable=True))

    env = dict(CONTAINER_ENV)
    if req.model_cache:
        cache = _model_cache(workspace, req.model_cache, req.allow_outside_cache)
        if any(cache == f or cache in f.parents or f in cache.parents for f in flags):
            raise LaunchError(f"model-cache {req.model_cache!r} overlaps a writable output folder; keep them apart")
        if cache != workspace and workspace not in cache.parents:
            mounts.append(Mount(str(cache), writable=False))
        env.update(cache_env(str(cache)))
        args += ["--model-cache", str(cache)]
    if req.code:
        code = Path(_mountable("code", os.path.realpath(_no_option("code", req.code))))
        if not (code / "reprocheck" / "__init__.py").is_file():
            raise LaunchError(f"code {req.code!r} holds no reprocheck package")
        if any(code == f or code in f.parents or f in code.parents for f in flags):
            raise LaunchError(f"code {req.code!r} overlaps a writable output folder; keep them apart")
        mounts.append(Mount(str(code), writable=False))
        env["PYTHONPATH"] = str(code)
    if flags:
        env[WRITABLE_ENV] = json.dumps(list(map(str, flags)))
    if req.github:
        args.append("--github")
        env["GITHUB_ACTIONS"] = "true"
        env["GITHUB_WORKSPACE"] = str(workspace)
        for var, value in (("GITHUB_OUTPUT", req.github_output), ("GITHUB_STEP_SUMMARY", req.github_summary)):
            if value:
                file = _mountable(f"${var}", os.path.realpath(_no_option(var, value)))
                if not os.path.isfile(file):
                    raise LaunchError(f"${var} {value!r} is not a file")
                mounts.append(Mount(file, writable=True))  # the file alone, not its folder
                env[var] = file
    return Plan(
        mounts=tuple(mounts),
        env=env,
        user=f"{os.getuid()}:{os.getgid()}",
        network=req.network,
        gpus=_gpus(req.gpus),
        image=req.image,
        args=tuple([*args, "--", *map(str, specs)]),
        outputs=tuple(flags),
    )


def prepare(p: Plan) -> None:
    """Create the writable folders on the host (they must exist to be mounted)."""
    for folder in p.outputs:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LaunchError(f"cannot create {folder} ({exc.strerror or exc})") from None
