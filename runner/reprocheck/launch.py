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
    `--` ends the options before the image and before the spec paths, and nothing is glob-expanded.

Standard library only: the Action runs this file on a runner where reprocheck is not installed,
    python3 runner/reprocheck/launch.py action
which reads the action's INPUT_* variables, runs the container and maps its exit code.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__:
    from . import github as gh
else:  # run as a file by the Action
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import github as gh  # type: ignore[import-not-found, no-redef]

CHECK_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|auto)$")
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@\-]*$")
NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
ISOLATIONS = ("auto", "fork", "spawn")
CONTAINER_ENV = {"HOME": "/tmp", "NO_COLOR": "1"}


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
    github: bool = False
    github_output: str | None = None  # the runner's file-command files (only with github)
    github_summary: str | None = None


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
        for key, value in self.env.items():
            argv += ["--env", f"{key}={value}"]
        return argv + ["--", self.image, *self.args]


def _no_option(name: str, value: str) -> str:
    if value.startswith("-"):
        raise LaunchError(f"{name} {value!r} starts with '-': a value can never be an option (rename it)")
    if any(c in value for c in "\r\n\0"):
        raise LaunchError(f"{name} contains a line break or NUL; give one value per line")
    return value


def _inside(workspace: Path, name: str, value: str, must_exist: bool = False) -> Path:
    """An absolute, symlink-resolved path that must lie inside the workspace."""
    _no_option(name, value)
    path = Path(os.path.realpath(workspace / value))
    if path != workspace and workspace not in path.parents:
        raise LaunchError(f"{name} {value!r} is outside the workspace {workspace}; give a path inside it")
    if must_exist and not path.is_file():
        raise LaunchError(f"{name} {value!r}: no such file in the workspace (check the path)")
    return path


def _gpus(value: str) -> str:
    if value in ("none", "all") or (value.isdigit() and int(value) > 0):
        return value
    raise LaunchError(f"gpus must be none, all or a positive count, got {value!r}")


def plan(req: Request) -> Plan:
    """Check every value of the request and lay out the container. Raises LaunchError."""
    workspace = Path(os.path.realpath(req.workspace))
    if not workspace.is_dir():
        raise LaunchError(f"workspace {req.workspace} is not a folder")
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
        if not 2 <= req.runs <= 100:
            raise LaunchError(f"runs must be a whole number from 2 to 100, got {req.runs}")
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

    mounts = [Mount(str(workspace), writable=False)]
    writable: list[Path] = []
    for flag, value in (("--report", req.report), ("--summary", req.summary)):
        if value:
            path = _inside(workspace, flag.lstrip("-"), value)
            if path == workspace or path.is_dir():
                raise LaunchError(f"{flag.lstrip('-')} {value!r} is a folder; give a file name")
            writable.append(path.parent)
            args += [flag, str(path)]
    if req.baseline:
        path = _inside(workspace, "baseline", req.baseline)
        writable.append(path)
        args += ["--baseline", str(path), "--baseline-root", str(workspace)]
        if req.update_baseline:
            args.append("--update-baseline")
    elif req.update_baseline:
        raise LaunchError("update-baseline needs a baseline folder (where to write the goldens)")
    for folder in dict.fromkeys(writable):
        mounts.append(Mount(str(folder), writable=True))

    env = dict(CONTAINER_ENV)
    if req.github:
        args.append("--github")
        env["GITHUB_ACTIONS"] = "true"
        env["GITHUB_WORKSPACE"] = str(workspace)
        for var, value in (("GITHUB_OUTPUT", req.github_output), ("GITHUB_STEP_SUMMARY", req.github_summary)):
            if value:
                file = os.path.realpath(_no_option(var, value))
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
        outputs=tuple(dict.fromkeys(writable)),
    )


def prepare(p: Plan) -> None:
    """Create the writable folders on the host (they must exist to be mounted)."""
    for folder in p.outputs:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LaunchError(f"cannot create {folder} ({exc.strerror or exc})") from None


# --- the Action ---------------------------------------------------------------------------------------

RESULT_ERROR = {"result": "error", "failed-checks": "", "max-abs-diff": "0", "report": ""}


def _boolean(name: str, value: str) -> bool:
    # Strict: anything but true/false is a mistake, not "true".
    if value in ("true", "false"):
        return value == "true"
    raise LaunchError(f"input {name} must be true or false, got {value!r}")


def _split(text: str, separators: str) -> list[str]:
    return [v.strip() for v in re.split(f"[{re.escape(separators)}]", text) if v.strip()]


def action_request(env: dict[str, str]) -> tuple[Request, bool, bool]:
    """The Action's inputs (INPUT_*) -> (request, fail_on_mismatch, build)."""

    def get(name: str, default: str = "") -> str:
        return env.get(f"INPUT_{name}", default)

    fail_on_mismatch = _boolean("fail-on-mismatch", get("FAIL_ON_MISMATCH", "true"))
    build = _boolean("build", get("BUILD", "false"))
    update = _boolean("update-baseline", get("UPDATE_BASELINE", "false"))
    runs = get("RUNS").strip()
    if runs and not runs.isdigit():
        raise LaunchError(f"input runs must be a whole number from 2 to 100, got {runs!r}")
    image = get("IMAGE").strip()
    if not image and not build:
        repo, ref = env.get("ACTION_REPOSITORY", ""), env.get("ACTION_REF", "")
        if not repo or not ref:
            raise LaunchError(
                "no image to run: set the image input or build: true (a local `uses: ./` has no released image)"
            )
        image = f"ghcr.io/{repo.lower()}:{ref}"
    workspace = env.get("GITHUB_WORKSPACE") or os.getcwd()
    request = Request(
        specs=tuple(_split(get("SPEC"), "\n")),
        image=image or "reprocheck:unbuilt",
        workspace=Path(workspace),
        checks=tuple(_split(get("CHECKS"), ",\n")),
        runs=int(runs) if runs else None,
        device=get("DEVICE").strip() or None,
        gpus=get("GPUS", "none").strip() or "none",
        network=get("NETWORK", "none").strip() or "none",
        report=get("REPORT", "reprocheck-report.json").strip() or None,
        baseline=get("BASELINE").strip() or None,
        update_baseline=update,
        github=True,
        github_output=env.get("GITHUB_OUTPUT"),
        github_summary=env.get("GITHUB_STEP_SUMMARY"),
    )
    return request, fail_on_mismatch, build


def _die(message: str) -> int:
    print(gh.command("error", message, title="reprocheck"), flush=True)
    print(f"reprocheck: error: {gh.neutralise(message)}", file=sys.stderr, flush=True)
    with contextlib.suppress(OSError):
        gh.write_outputs(RESULT_ERROR)
    return 1


def _build(action_path: Path) -> str:
    script = action_path / "docker" / "build.sh"
    args = ["bash", str(script)] + (["--local"] if os.environ.get("REPROCHECK_LOCAL_BASE") else [])
    proc = subprocess.run(args, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise LaunchError(f"building the image from {script.parent / 'Dockerfile'} failed (exit {proc.returncode})")
    return proc.stdout.strip().splitlines()[-1]


def run_action(env: dict[str, str]) -> int:
    """The Action's one step. The step fails for every error (exit 2, 3, 4, docker failing), whatever
    fail-on-mismatch says; with fail-on-mismatch false only differing outputs (exit 1) leave it green."""
    try:
        request, fail_on_mismatch, build = action_request(env)
        if build:
            from dataclasses import replace

            request = replace(request, image=_build(Path(env.get("GITHUB_ACTION_PATH", "."))))
        p = plan(request)
        prepare(p)
    except LaunchError as exc:
        return _die(str(exc))
    rc = subprocess.run(p.docker_argv()).returncode
    if rc == 0:
        return 0
    if rc == 1:
        if fail_on_mismatch:
            return 1
        print(gh.command("warning", "outputs differ, but fail-on-mismatch is false", title="reprocheck"), flush=True)
        return 0
    if rc in (2, 3, 4):
        gh.write_outputs({"result": "error"})  # whatever the container wrote before it failed
        return rc
    return _die(
        f"the container could not run (docker exit {rc}): is the image {request.image} available here? "
        "Pull or build it, or set the image input"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["action"]:
        print("usage: python3 launch.py action   (reads the Action's INPUT_* variables)", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_action(dict(os.environ)))
