"""A stand-in `docker` that records its arguments, in a workspace with the runner's file-command files, and the
Action's step run as the runner runs it: the launch policy's tests read the command lines it was given."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, write_spec

STAND_IN = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
if args[:1] == ["run"]:
    with open(os.environ["STAND_IN_LOG"], "a") as f:
        f.write(json.dumps(args) + "\n")
    sys.exit(int(os.environ.get("STAND_IN_EXIT", "0")))
sys.exit(0)  # version, image inspect: an engine and an image are there
"""


def make_fake(tmp_path: Path):
    """A workspace with a spec, the runner's file-command files, and a stand-in docker first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(STAND_IN)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    ws = tmp_path / "ws"
    (ws / "specs").mkdir(parents=True)
    write_spec(ws / "specs", "version: 1\n", "model.yaml")
    files = tmp_path / "runner-files"
    files.mkdir()
    for name in ("output", "summary", "env", "path"):
        (files / name).write_text("")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "STAND_IN_LOG": str(tmp_path / "calls"),
        "GITHUB_WORKSPACE": str(ws),
        "GITHUB_OUTPUT": str(files / "output"),
        "GITHUB_STEP_SUMMARY": str(files / "summary"),
        "GITHUB_ACTIONS": "true",
    }
    return type("Fake", (), {"ws": ws, "env": env, "files": files, "calls": tmp_path / "calls", "root": tmp_path})


ACTION_STEP = ROOT / "runner" / "reprocheck" / "host" / "launcher" / "action.py"


def action(fake, exit_code: int = 0, **inputs: str) -> subprocess.CompletedProcess:
    env = {
        **fake.env,
        "STAND_IN_EXIT": str(exit_code),
        "INPUT_SPEC": "specs/model.yaml",
        "INPUT_IMAGE": "reprocheck:test",
    }
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    # -S: no site-packages, as on a runner where reprocheck is not installed (the step is standard library only).
    return subprocess.run(
        [sys.executable, "-S", str(ACTION_STEP)],
        cwd=fake.ws,
        env=env,
        capture_output=True,
        text=True,
    )


def calls(fake) -> list[list[str]]:
    return [json.loads(line) for line in fake.calls.read_text().splitlines()] if fake.calls.exists() else []


def mounts(argv: list[str]) -> dict[str, bool]:
    """target -> writable."""
    out = {}
    for i, a in enumerate(argv):
        if a == "--mount":
            parts = dict(p.split("=", 1) if "=" in p else (p, "") for p in argv[i + 1].split(","))
            out[parts["target"]] = "readonly" not in parts
    return out


def outputs(fake) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (fake.files / "output").read_text().splitlines() if "=" in line)
