"""One launch policy for the Action and `reprocheck docker`, tried with a stand-in `docker` that records its
arguments (only the command line matters here; the real engine runs the same lines in test_docker/test_action)."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, reprocheck, write_spec
from reprocheck import github, launch
from reprocheck.report import markdown

STAND_IN = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
if args[:1] == ["run"]:
    with open(os.environ["STAND_IN_LOG"], "a") as f:
        f.write(json.dumps(args) + "\n")
    sys.exit(int(os.environ.get("STAND_IN_EXIT", "0")))
sys.exit(0)  # version, image inspect: an engine and an image are there
"""


@pytest.fixture
def fake(tmp_path: Path):
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


def action(fake, exit_code: int = 0, **inputs: str) -> subprocess.CompletedProcess:
    env = {
        **fake.env,
        "STAND_IN_EXIT": str(exit_code),
        "INPUT_SPEC": "specs/model.yaml",
        "INPUT_IMAGE": "reprocheck:test",
    }
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    return subprocess.run(
        [sys.executable, str(ROOT / "runner" / "reprocheck" / "action.py")],
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


def test_the_action_and_reprocheck_docker_launch_the_same_container(fake):
    r = action(fake, report="out/r.json", baseline="goldens", checks="a,b", runs="3", device="cpu")
    assert r.returncode == 0, r.stderr
    d = reprocheck(
        "docker",
        "specs/model.yaml",
        "--image",
        "reprocheck:test",
        "--report",
        "out/r.json",
        "--baseline",
        "goldens",
        "--check",
        "a",
        "--check",
        "b",
        "--runs",
        "3",
        "--device",
        "cpu",
        "--github",
        cwd=fake.ws,
        env=fake.env,
    )
    assert d.code == 0, d
    from_action, from_docker = calls(fake)
    assert from_action == from_docker


def test_the_container_gets_least_privilege(fake):
    assert action(fake, report="out/r.json", baseline="goldens").returncode == 0
    (argv,) = calls(fake)
    m = mounts(argv)
    ws = str(fake.ws.resolve())
    assert m == {
        ws: False,
        f"{ws}/out": True,
        f"{ws}/goldens": True,
        str(fake.files / "output"): True,
        str(fake.files / "summary"): True,
    }  # the files, not their folder
    assert str(fake.files) not in m
    assert argv[argv.index("--network") + 1] == "none"
    assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert "--privileged" not in argv and "--cap-drop" in argv and "no-new-privileges" in argv and "--read-only" in argv
    # `--` before the image, and before the spec paths inside the container.
    image_at = argv.index("reprocheck:test")
    assert argv[image_at - 1] == "--"
    assert argv[-2:] == ["--", f"{ws}/specs/model.yaml"]
    assert (fake.ws / "out").is_dir() and (fake.ws / "goldens").is_dir()


@pytest.mark.parametrize(
    "inputs,fragment",
    [
        ({"report": "../../../../root/x/report.json"}, "outside the workspace"),
        ({"report": "/run/docker/report.json"}, "outside the workspace"),
        ({"baseline": "../elsewhere"}, "outside the workspace"),
        ({"image": "--privileged"}, "is not an image reference"),
        ({"spec": "--help"}, "starts with '-'"),
        ({"checks": "*"}, "is not a check name"),
        ({"checks": "a,-x"}, "is not a check name"),
        ({"fail_on_mismatch": "yes"}, "fail-on-mismatch must be true or false, got 'yes'"),
        ({"build": "1"}, "build must be true or false"),
        ({"runs": "3; rm -rf /"}, "runs must be a whole number"),
        ({"network": "host"}, "never host"),
        ({"gpus": "-1"}, "gpus must be none, all or a positive count"),
        ({"device": "cuda --privileged"}, "device must be cpu"),
        ({"update_baseline": "true"}, "update-baseline needs a baseline folder"),
        ({"spec": "specs/missing.yaml"}, "no such file"),
    ],
)
def test_bad_inputs_fail_the_step_with_the_message_in_the_log(fake, inputs, fragment):
    r = action(fake, **inputs)
    assert r.returncode == 1, r
    assert calls(fake) == []  # no container ran
    assert fragment in r.stdout and r.stdout.startswith("::error title=reprocheck::"), r.stdout
    assert outputs(fake)["result"] == "error"


def test_a_symlink_cannot_carry_a_path_out_of_the_workspace(fake, tmp_path):
    (fake.ws / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    r = action(fake, report="link/report.json")
    assert r.returncode == 1 and "outside the workspace" in r.stdout


def test_an_input_with_a_newline_cannot_print_a_workflow_command(fake):
    r = action(fake, image="x\n::add-mask::secret\n##[error]forged")
    assert r.returncode == 1
    for line in (r.stdout + r.stderr).splitlines():
        assert not line.lstrip().startswith("::add-mask") and "##[error]" not in line, line
    (line,) = r.stdout.splitlines()  # one command, the input inside its data
    assert line.startswith("::error title=reprocheck::image ") and "#\\#[error]forged" in line


@pytest.mark.parametrize(
    "code,fail_on_mismatch,step,result",
    [
        (0, "true", 0, None),
        (1, "true", 1, None),
        (1, "false", 0, None),
        (2, "false", 2, "error"),
        (3, "false", 3, "error"),
        (4, "false", 4, "error"),
        (125, "false", 1, "error"),
        (137, "false", 1, "error"),
        (2, "true", 2, "error"),
    ],
)
def test_every_error_fails_the_step_whatever_fail_on_mismatch_says(fake, code, fail_on_mismatch, step, result):
    r = action(fake, code, fail_on_mismatch=fail_on_mismatch)
    assert r.returncode == step, r
    if result:
        assert outputs(fake)["result"] == result
    if code == 1 and fail_on_mismatch == "false":
        assert "::warning title=reprocheck::outputs differ, but fail-on-mismatch is false" in r.stdout
    if code >= 125:
        assert "the container could not run (docker exit" in r.stdout


def test_reprocheck_docker_refuses_outputs_outside_the_workspace(fake, tmp_path):
    d = reprocheck(
        "docker",
        "specs/model.yaml",
        "--image",
        "reprocheck:test",
        "--report",
        str(tmp_path / "r.json"),
        cwd=fake.ws,
        env=fake.env,
    )
    assert d.code == 2 and "outside the workspace" in d.err, d
    assert calls(fake) == []


def test_reprocheck_docker_creates_missing_output_folders(fake):
    d = reprocheck(
        "docker",
        "specs/model.yaml",
        "--image",
        "reprocheck:test",
        "--report",
        "out/deep/r.json",
        "--summary",
        "out/s.md",
        cwd=fake.ws,
        env=fake.env,
    )
    assert d.code == 0, d
    assert (fake.ws / "out" / "deep").is_dir()


# --- neutralising ----------------------------------------------------------------------------------


def test_neutralise_breaks_commands_at_line_starts_and_legacy_anywhere():
    text = "ok\n::add-mask::x\n   ::error::y\nsee ##[command]z"
    out = github.neutralise(text)
    assert out == "ok\n\\::add-mask::x\n   \\::error::y\nsee #\\#[command]z"
    assert github.escape_data("a%b\r\nc ##[x]") == "a%25b%0D%0Ac #\\#[x]"


def test_model_text_under_github_never_becomes_a_command(spec_dir, tmp_path):
    write_spec(
        spec_dir,
        """import torch
from torch import nn
class M(nn.Module):
    def forward(self, x):
        raise ValueError("boom <img src=x onerror=alert(1)> [x](http://evil)\\n::add-mask::leaked\\n##[error]forged")
def build():
    return M()
""",
        "evil.py",
    )
    spec = write_spec(spec_dir, 'version: 1\nmodel: {factory: "evil:build"}\ninput: {random: {shape: [2]}}\n')
    summary = tmp_path / "summary.md"
    r = reprocheck(
        "run",
        "--github",
        str(spec),
        "--summary",
        str(tmp_path / "s.md"),
        env={"GITHUB_OUTPUT": str(tmp_path / "o"), "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert r.code == 3, r
    for line in (r.out + r.err).splitlines():
        assert not line.lstrip().startswith("::add-mask") and "##[error]" not in line, line
    assert any(line.startswith("::error file=") for line in r.out.splitlines())  # our own annotation still works
    md = summary.read_text()
    # Outside fenced code blocks (where nothing renders), no raw HTML and no link survive.
    prose = "".join(part for i, part in enumerate(md.split("\n```")) if i % 2 == 0)
    assert "<img" not in prose and "[x](http" not in prose and "&lt;img" in prose and "\\[x\\](http" in prose
    assert "```\n```" not in md


def test_markdown_code_spans_cannot_be_closed_from_inside():
    assert markdown._code("a`b") == "`` a`b ``"
    assert markdown._md("<b>[x](y)</b> | *z*") == "&lt;b&gt;\\[x\\](y)&lt;/b&gt; \\| \\*z\\*"


def test_the_plan_is_refused_for_a_request_that_would_mount_the_runner_folder(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    write_spec(ws, "version: 1\n", "s.yaml")
    req = launch.Request(
        specs=("s.yaml",), image="i:t", workspace=ws, github=True, github_output=str(tmp_path / "no-such-file")
    )
    with pytest.raises(launch.LaunchError, match="is not a file"):
        launch.plan(req)


def test_the_invariance_input_selects_kinds(fake):
    assert action(fake, invariance="threads").returncode == 0
    (argv,) = calls(fake)
    assert argv[argv.index("--invariance") + 1] == "threads"
    r = action(fake, invariance="gpu")
    assert r.returncode == 1 and "invariance 'gpu' is not one of all, none, batch, threads, device" in r.stdout


def test_require_devices_reaches_the_container(fake):
    assert action(fake, require_devices="true").returncode == 0
    (argv,) = calls(fake)
    assert "--require-devices" in argv
    assert action(fake, require_devices="yes").returncode == 1  # strict booleans


def test_outputs_in_the_workspace_top_folder_are_refused_with_the_fix(fake):
    # The top folder is mounted read-only; a second, writable mount of the same folder is impossible.
    r = action(fake, report="report.json")
    assert r.returncode == 1 and "put it in a folder inside it, e.g. reprocheck/report.json" in r.stdout
    d = reprocheck(
        "docker", "specs/model.yaml", "--image", "reprocheck:test", "--summary", "s.md", cwd=fake.ws, env=fake.env
    )
    assert d.code == 2 and "e.g. reprocheck/s.md" in d.err
    assert action(fake).returncode == 0  # the default report, reprocheck/report.json, is in a folder
