"""One launch policy for the pinned image, shared by `reprocheck docker` and the GitHub Action.

Both build the same `docker run` from the same request, here:
  * the workspace (the Action's $GITHUB_WORKSPACE, or the current folder) is mounted read-only at
    the same path, so paths in specs and messages read the same inside and out;
  * only the folders that receive --report / --summary / --junit / --html, the --pictures folder and the
    baseline folder are writable, and
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

from .launch_checks import (
    SEED_LIMIT,
    SEED_RULE,
    LaunchError,
    cache_env,
    check_gpus,
    check_model_cache,
    inside_workspace,
    mountable,
    no_option,
    refuse_protected,
)

CHECK_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|auto)$")
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@\-]*$")
NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
ISOLATIONS = ("auto", "fork", "spawn")
RUNS = (2, 1000)  # the spec's bounds on runs (spec/types.py; a test keeps the two equal)
# --invariance values: all, none, or a kind of invariance.KINDS (a test keeps the two equal; this module
# stays standard-library only).
INVARIANCE = ("all", "none", "batch", "threads", "device", "compile", "dtype", "autocast")
CONTAINER_ENV = {"HOME": "/tmp", "NO_COLOR": "1"}
WRITABLE_ENV = "REPROCHECK_WRITABLE"  # the container's writable folders, a JSON list


@dataclass(frozen=True)
class Request:
    """What to run, as the user gave it; `plan` checks every field."""

    specs: tuple[str, ...]
    image: str
    workspace: Path = field(default_factory=Path.cwd)
    checks: tuple[str, ...] = ()
    runs: int | None = None
    seed: int | None = None
    device: str | None = None
    gpus: str = "none"
    network: str = "none"
    isolation: str = "auto"
    quiet: bool = False
    report: str | None = None
    summary: str | None = None
    junit: str | None = None
    html: str | None = None  # --html: one self-contained page
    pictures: str | None = None  # --pictures: a folder of PNG files
    baseline: str | None = None
    update_baseline: bool = False
    missing_baseline: str = "error"  # error | write
    invariance: tuple[str, ...] = ()
    require_devices: bool = False
    strict: bool = False
    github: bool = False
    model_cache: str | None = None  # weights folder, mounted read-only (TORCH_HOME, HF_HOME under it)
    allow_outside_cache: bool = False  # a model cache outside the workspace (self-hosted runners, reprocheck docker)
    runner_folders: tuple[str, ...] = ()  # the runner's own folders, which a model cache may not overlap
    homes: tuple[str, ...] = ()  # home folders, which a model cache may be inside of but never be or hold
    github_output: str | None = None  # the runner's file-command files (only with github)
    github_summary: str | None = None
    float64: bool = False  # the upgrade canary's float64 reference run
    code: str | None = None  # `upgrade`: a folder holding only reprocheck's package, read-only, first on PYTHONPATH
    trace: str | None = None  # `upgrade`: every run traced, its folder kept here (writable)


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


def plan(req: Request) -> Plan:
    """Check every value of the request and lay out the container. Raises LaunchError."""
    workspace = Path(os.path.realpath(req.workspace))
    if not workspace.is_dir():
        raise LaunchError(f"workspace {req.workspace} is not a folder")
    mountable("workspace", str(workspace))
    if not req.specs:
        raise LaunchError("spec is empty: name at least one spec file")
    if not IMAGE.match(req.image):
        raise LaunchError(f"image {req.image!r} is not an image reference (name[:tag][@digest])")
    specs = [inside_workspace(workspace, "spec", s, must_exist=True, folder_ok=True) for s in req.specs]
    args = _run_args(req, workspace)
    flags = _writable(req, workspace, args)
    mounts = [Mount(str(workspace), writable=False)]
    for folder, name in flags.items():
        refuse_protected(workspace, name, folder, specs)
        mounts.append(Mount(str(folder), writable=True))
    env = dict(CONTAINER_ENV)
    if req.model_cache:
        cache = check_model_cache(workspace, req.model_cache, req.allow_outside_cache, req.runner_folders, req.homes)
        if any(cache == f or cache in f.parents or f in cache.parents for f in flags):
            raise LaunchError(f"model-cache {req.model_cache!r} overlaps a writable output folder; keep them apart")
        if cache != workspace and workspace not in cache.parents:
            mounts.append(Mount(str(cache), writable=False))
        env.update(cache_env(str(cache)))
        args += ["--model-cache", str(cache)]
    if req.code:
        code = Path(mountable("code", os.path.realpath(no_option("code", req.code))))
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
        mounts += _github(req, workspace, env)
    return Plan(
        mounts=tuple(mounts),
        env=env,
        user=f"{os.getuid()}:{os.getgid()}",
        network=req.network,
        gpus=check_gpus(req.gpus),
        image=req.image,
        args=tuple([*args, "--", *map(str, specs)]),
        outputs=tuple(flags),
    )


def _run_args(req: Request, workspace: Path) -> list[str]:
    """`reprocheck run`'s options inside the container, each value checked."""
    args: list[str] = ["run"]
    for given in req.checks:
        spec, colon, name = given.rpartition(":")
        if not CHECK_NAME.match(name):
            raise LaunchError(f"check {given!r} is not a check name (letters, digits, '.', '_', '-'), or SPEC:NAME")
        if colon:  # SPEC:NAME, the spec as the container sees it
            name = f"{inside_workspace(workspace, 'check', spec, must_exist=True)}:{name}"
        args += ["--check", name]
    if req.runs is not None:
        if not RUNS[0] <= req.runs <= RUNS[1]:
            raise LaunchError(f"runs must be a whole number from {RUNS[0]} to {RUNS[1]}, got {req.runs}")
        args += ["--runs", str(req.runs)]
    if req.seed is not None:
        if not 0 <= req.seed < SEED_LIMIT:
            raise LaunchError(f"seed {SEED_RULE}, got {req.seed}")
        args += ["--seed", str(req.seed)]
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
    for wanted, flag in (
        (req.require_devices, "--require-devices"),
        (req.strict, "--strict"),
        (req.float64, "--reference-float64"),
    ):
        if wanted:
            args.append(flag)
    return args


def _writable(req: Request, workspace: Path, args: list[str]) -> dict[Path, str]:
    """The folders the container may write (the report's, the summary's, the baseline), each with the option that
    asked for it; their options added to `args`."""
    flags: dict[Path, str] = {}
    files = (("--report", req.report), ("--summary", req.summary), ("--junit", req.junit), ("--html", req.html))
    for flag, value in files:
        if value:
            path = inside_workspace(workspace, flag.lstrip("-"), value)
            if path == workspace or path.is_dir():
                raise LaunchError(f"{flag.lstrip('-')} {value!r} is a folder; give a file name")
            if path.parent == workspace:  # it would need the whole workspace writable
                raise LaunchError(
                    f"{flag.lstrip('-')} {value!r} is in the workspace's top folder, which the container gets "
                    f"read-only; put it in a folder inside it, e.g. reprocheck/{path.name}"
                )
            flags[path.parent] = flag.lstrip("-")
            args += [flag, str(path)]
    if req.trace:
        flags[_pictures_folder(workspace, req.trace)] = "trace"
        args += ["--keep", str(_pictures_folder(workspace, req.trace)), "--trace-ops"]
    if req.pictures:
        flags[_pictures_folder(workspace, req.pictures)] = "pictures"
        args += ["--pictures", str(_pictures_folder(workspace, req.pictures))]
    if req.missing_baseline not in ("error", "write"):
        raise LaunchError(f"missing-baseline must be error or write, got {req.missing_baseline!r}")
    if req.baseline:
        path = inside_workspace(workspace, "baseline", req.baseline)
        if path == workspace:
            raise LaunchError(
                "baseline is the workspace itself, which the container gets read-only; use a folder inside it"
            )
        flags[path] = "baseline"
        args += ["--baseline", str(path), "--baseline-root", str(workspace)]
        if req.update_baseline:
            args.append("--update-baseline")
        if req.missing_baseline == "write":
            args += ["--missing-baseline", "write"]
    elif req.update_baseline:
        raise LaunchError("update-baseline needs a baseline folder (where to write the goldens)")
    elif req.missing_baseline == "write":
        raise LaunchError("missing-baseline: write needs a baseline folder (where to write the goldens)")
    return flags


def _pictures_folder(workspace: Path, value: str) -> Path:
    """The pictures folder: inside the workspace, not the workspace itself, never a symlink or a file."""
    given = workspace / value
    if os.path.islink(given) or (os.path.lexists(given) and not os.path.isdir(given)):
        raise LaunchError(f"pictures {value!r} is not a folder (a symlink or a file is never written through)")
    path = inside_workspace(workspace, "pictures", value)
    if path == workspace:
        raise LaunchError(
            "pictures is the workspace itself, which the container gets read-only; use a folder inside it"
        )
    return path


def _github(req: Request, workspace: Path, env: dict[str, str]) -> list[Mount]:
    """The runner's output and summary files, each mounted alone (not its folder), and the variables naming them."""
    env["GITHUB_ACTIONS"] = "true"
    env["GITHUB_WORKSPACE"] = str(workspace)
    mounts = []
    for var, value in (("GITHUB_OUTPUT", req.github_output), ("GITHUB_STEP_SUMMARY", req.github_summary)):
        if value:
            file = mountable(f"${var}", os.path.realpath(no_option(var, value)))
            if not os.path.isfile(file):
                raise LaunchError(f"${var} {value!r} is not a file")
            mounts.append(Mount(file, writable=True))
            env[var] = file
    return mounts


def prepare(p: Plan) -> None:
    """Create the writable folders on the host (they must exist to be mounted)."""
    for folder in p.outputs:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LaunchError(f"cannot create {folder} ({exc.strerror or exc})") from None
