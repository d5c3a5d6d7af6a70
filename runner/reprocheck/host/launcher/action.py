"""The GitHub Action's one step (action.yml runs `python3 runner/reprocheck/host/launcher/action.py`), on a runner where
reprocheck is not installed: standard library only. It reads the INPUT_* variables, lays out the container with
the one launch policy (launch.py), runs it, and maps the exit code: the step fails for every error (exit 2, 3,
4, docker failing) whatever fail-on-mismatch says; with fail-on-mismatch false only differing outputs (exit 1)
leave it green. Everything it prints is a workflow command it built, or neutralised text."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

if __package__:
    from .. import github as gh
    from ..exitcodes import ExitCode
    from .container import build_args, choose_flavour, read_versions, released_image
    from .derived import Derivation, DerivedError, ensure, plan_exclude
    from .launch import LaunchError, Request, plan, prepare
    from .launch_checks import OUTSIDE_INPUT, ascii_count, ascii_seed
else:  # run as a file by the Action, reprocheck not installed: `host` from this checkout (standard library only)
    sys.path[0] = str(Path(__file__).resolve().parents[2])  # not this folder: its modules are not top-level names
    from host import github as gh  # type: ignore[import-not-found, no-redef]
    from host.exitcodes import ExitCode  # type: ignore[import-not-found, no-redef]
    from host.launcher.container import build_args, choose_flavour, read_versions, released_image  # type: ignore[import-not-found, no-redef]
    from host.launcher.derived import Derivation, DerivedError, ensure, plan_exclude  # type: ignore[import-not-found, no-redef]
    from host.launcher.launch import LaunchError, Request, plan, prepare  # type: ignore[import-not-found, no-redef]
    from host.launcher.launch_checks import OUTSIDE_INPUT, ascii_count, ascii_seed  # type: ignore[import-not-found, no-redef]

ERRORS = (ExitCode.USAGE, ExitCode.RUN_FAILED, ExitCode.INTERNAL)
VERSIONS = Path(__file__).resolve().parent / "versions.env"  # the image's pins at the action's own commit


def _boolean(name: str, value: str) -> bool:
    # Strict: anything but true/false is a mistake, not "true".
    if value in ("true", "false"):
        return value == "true"
    raise LaunchError(f"input {name} must be true or false, got {value!r}")


def _split(text: str, separators: str) -> list[str]:
    return [v.strip() for v in re.split(f"[{re.escape(separators)}]", text) if v.strip()]


def action_request(env: dict[str, str]) -> tuple[Request, bool, str | None]:
    """The Action's inputs (INPUT_*) -> (request, fail_on_mismatch, the flavour to build or None to pull)."""

    def get(name: str, default: str = "") -> str:
        return env.get(f"INPUT_{name}", default)

    fail_on_mismatch = _boolean("fail-on-mismatch", get("FAIL_ON_MISMATCH", "true"))
    build = _boolean("build", get("BUILD", "false"))
    update = _boolean("update-baseline", get("UPDATE_BASELINE", "false"))
    require_devices = _boolean("require-devices", get("REQUIRE_DEVICES", "false"))
    runs = get("RUNS").strip()
    seed = get("SEED").strip()
    image = get("IMAGE").strip()
    gpus = get("GPUS", "none").strip() or "none"
    flavour = _flavour(get("FLAVOUR").strip(), gpus, image)
    if not image and not build:
        image = _released(env, flavour, gpus)
    workspace = env.get("GITHUB_WORKSPACE") or os.getcwd()
    request = Request(
        specs=tuple(_split(get("SPEC"), "\n")),
        image=image or "reprocheck:unbuilt",
        workspace=Path(workspace),
        checks=tuple(_split(get("CHECKS"), ",\n")),
        runs=ascii_count("input runs", runs) if runs else None,
        seed=ascii_seed("input seed", seed) if seed else None,
        device=get("DEVICE").strip() or None,
        gpus=gpus,
        network=get("NETWORK", "none").strip() or "none",
        report=get("REPORT", "reprocheck/report.json").strip() or None,
        junit=get("JUNIT").strip() or None,
        html=get("HTML", "reprocheck/report.html").strip() or None,
        pictures=get("PICTURES", "reprocheck/pictures").strip() or None,
        baseline=get("BASELINE").strip() or None,
        # "all" is what reprocheck does by default: no flag, so both launchers give the same command line.
        invariance=tuple(k for k in _split(get("INVARIANCE", "all"), ",\n") if k != "all"),
        update_baseline=update,
        missing_baseline=get("MISSING_BASELINE", "error").strip() or "error",
        require_devices=require_devices,
        model_cache=get("MODEL_CACHE").strip() or None,
        # Outside the workspace only when the workflow says so (a self-hosted runner's own weights folder).
        allow_outside_cache=_boolean(OUTSIDE_INPUT, get("MODEL_CACHE_OUTSIDE_WORKSPACE", "false")),
        runner_folders=runner_folders(env),
        homes=tuple(h for h in (env.get("HOME"), os.path.expanduser("~")) if h),
        github=True,
        github_output=env.get("GITHUB_OUTPUT"),
        github_summary=env.get("GITHUB_STEP_SUMMARY"),
    )
    return request, fail_on_mismatch, flavour if build else None


def _flavour(flavour: str, gpus: str, image: str) -> str:
    """The flavour input, checked against the action's versions.env before it is used anywhere; the image input
    names an image itself, so the two together are refused. Empty: the default (cpu for gpus none once released)."""
    if flavour and image:
        raise LaunchError("set either the image input or the flavour input, not both (flavour picks a released image)")
    try:
        return choose_flavour(read_versions(VERSIONS), flavour or None, gpus)
    except (OSError, KeyError, ValueError) as exc:
        raise LaunchError(f"input {exc}" if flavour else f"cannot read the image's flavours: {exc}") from None


def _released(env: dict[str, str], flavour: str, gpus: str) -> str:
    """The released image for the version files of the action's own checkout; never derived from the ref, which
    may be a SHA or a moving tag that no image carries."""
    repo = env.get("ACTION_REPOSITORY", "")
    parts = Path(env.get("GITHUB_ACTION_PATH", "")).parts
    if not repo and "_actions" in parts[:-2]:  # .../_actions/OWNER/REPO/REF
        at = len(parts) - 1 - parts[::-1].index("_actions")
        repo = "/".join(parts[at + 1 : at + 3])
    if not repo:
        raise LaunchError(
            "no image to run: set the image input or build: true (a local `uses: ./` has no released image)"
        )
    try:
        return released_image(repo, VERSIONS, flavour, gpus)
    except (OSError, ValueError, KeyError) as exc:
        raise LaunchError(f"cannot name the released image: {exc}; set the image input") from None


def runner_folders(env: dict[str, str]) -> tuple[str, ...]:
    """The runner's own folders: temporary files, tools, the file-command files' folder and the actions it fetched."""
    folders = [env.get("RUNNER_TEMP", ""), env.get("RUNNER_TOOL_CACHE", "")]
    for var in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE", "GITHUB_STEP_SUMMARY"):
        if env.get(var):
            folders.append(os.path.dirname(env[var]))
    action = Path(env.get("GITHUB_ACTION_PATH", ""))
    fetched = next((p for p in (action, *action.parents) if p.name == "_actions"), None)
    folders.append(str(fetched or (action if env.get("GITHUB_ACTION_PATH") else "")))
    return tuple(dict.fromkeys(f for f in folders if f))


def _inside_file(workspace: Path, name: str, value: str, folder: bool = False) -> Path:
    """A requirements file or install folder: inside the workspace, symlinks resolved."""
    if value.startswith("-"):
        raise LaunchError(f"{name} {value!r} starts with '-': a value can never be an option (rename it)")
    real = Path(os.path.realpath(Path(workspace) / value))
    ws = Path(os.path.realpath(workspace))
    if real != ws and ws not in real.parents:
        raise LaunchError(f"{name} {value!r} is outside the workspace {ws}; give a path inside it")
    if (folder and not real.is_dir()) or (not folder and not real.is_file()):
        raise LaunchError(f"{name} {value!r}: no such {'folder' if folder else 'file'} in the workspace")
    return real


def _die(message: str) -> int:
    print(gh.command("error", message, title="reprocheck"), flush=True)
    print(f"reprocheck: error: {gh.neutralise(message)}", file=sys.stderr, flush=True)
    with contextlib.suppress(OSError):
        gh.write_outputs(gh.ERROR_OUTPUTS)
    return 1


def _build(action_path: Path, flavour: str) -> str:
    script = action_path / "docker" / "build.sh"
    proc = subprocess.run(build_args(script, flavour), stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise LaunchError(f"building the image from {script.parent / 'Dockerfile'} failed (exit {proc.returncode})")
    return proc.stdout.strip().splitlines()[-1]


def run_action(env: dict[str, str]) -> int:
    """The Action's one step. The step fails for every error (exit 2, 3, 4, docker failing), whatever
    fail-on-mismatch says; with fail-on-mismatch false only differing outputs (exit 1) leave it green."""
    try:
        request, fail_on_mismatch, build = action_request(env)
        if build:
            request = replace(request, image=_build(Path(env.get("GITHUB_ACTION_PATH", ".")), build))
        p = plan(request)
        derivation = Derivation(
            request.image,
            tuple(
                _inside_file(request.workspace, "requirements", f)
                for f in _split(env.get("INPUT_REQUIREMENTS", ""), "\n")
            ),
            tuple(
                _inside_file(request.workspace, "install", f, folder=True)
                for f in _split(env.get("INPUT_INSTALL", ""), "\n")
            ),
            exclude=plan_exclude(p),
        )
        if derivation:
            p = replace(p, image=ensure(derivation, sys.stdout))
        prepare(p)
    except (LaunchError, DerivedError) as exc:
        return _die(str(exc))
    if request.model_cache:
        cache = os.path.realpath(os.path.join(request.workspace, request.model_cache))
        print(f"reprocheck: model cache {gh.neutralise(cache)} mounted read-only (TORCH_HOME, HF_HOME)", flush=True)
    rc = subprocess.run(p.docker_argv()).returncode
    if rc == ExitCode.OK:
        return 0
    if rc == ExitCode.MISMATCH:
        if fail_on_mismatch:
            return 1
        print(gh.command("warning", "outputs differ, but fail-on-mismatch is false", title="reprocheck"), flush=True)
        return 0
    if rc in ERRORS:
        gh.write_outputs({"result": "error"})  # whatever the container wrote before it failed
        return rc
    return _die(
        f"the container could not run (docker exit {rc}): is the image {request.image} available here? "
        "Pull or build it, or set the image input"
    )


if __name__ == "__main__":
    sys.exit(run_action(dict(os.environ)))
