"""The mounts: a model cache reaches the container read-only, and only where the threat model allows. Never `/`, a
system folder or one above it (a socket under /run is the Docker engine: root on the host), the runner's own folders
(home, temporary files, tools, file commands, fetched actions), the workspace's parents, nor a folder holding a
socket, device, FIFO or credentials; outside the workspace only with the workflow's explicit opt-in. Tried through the
Action's step (with a stand-in docker that records what would run), `reprocheck docker` and native runs."""

import os
import socket
from pathlib import Path

import pytest

from helpers import reprocheck, write_spec
from stand_in import action, calls, mounts


@pytest.mark.parametrize("folder", ["/", "/run", "/var/run", "/var", "/proc", "/sys", "/dev", "/etc", "/run/docker"])
def test_a_system_folder_is_never_a_model_cache(fake, folder):
    r = action(fake, model_cache=folder, model_cache_outside_workspace="true")
    assert r.returncode == 1 and "::error" in r.stdout, r.stdout
    assert "system folder" in r.stdout or "the whole host" in r.stdout, r.stdout
    assert calls(fake) == []  # nothing ran


def test_an_absolute_model_cache_needs_the_workflows_opt_in(fake, tmp_path):
    outside = tmp_path / "weights"
    outside.mkdir()
    r = action(fake, model_cache=str(outside))
    assert r.returncode == 1 and "model-cache-outside-workspace: true" in r.stdout and calls(fake) == []
    r = action(fake, model_cache=str(outside), model_cache_outside_workspace="yes")
    assert r.returncode == 1 and "must be true or false" in r.stdout
    r = action(fake, model_cache=str(outside), model_cache_outside_workspace="true")
    assert r.returncode == 0, r.stdout
    assert mounts(calls(fake)[-1])[str(outside)] is False  # read-only


@pytest.mark.parametrize("which", ["RUNNER_TEMP", "RUNNER_TOOL_CACHE", "file-commands", "_actions", "HOME"])
def test_the_runners_own_folders_are_never_a_model_cache(fake, tmp_path, which):
    runner = tmp_path / "runner"
    folders = {
        "RUNNER_TEMP": runner / "_work" / "_temp",
        "RUNNER_TOOL_CACHE": runner / "_work" / "_tool",
        "_actions": runner / "_work" / "_actions" / "owner" / "reprocheck" / "v1",
        "HOME": tmp_path / "home",
    }
    for folder in folders.values():
        folder.mkdir(parents=True)
    extra = {k: str(v) for k, v in folders.items() if k != "_actions"}
    extra["GITHUB_ACTION_PATH"] = str(folders["_actions"])
    target = {
        "file-commands": fake.files,
        "_actions": runner / "_work" / "_actions",
        "HOME": folders["HOME"],
    }.get(which, folders.get(which))
    fake.env.update(extra)
    r = action(fake, model_cache=str(target), model_cache_outside_workspace="true")
    assert r.returncode == 1 and "::error" in r.stdout and calls(fake) == [], r.stdout
    assert "runner's own folder" in r.stdout or "home folder" in r.stdout, r.stdout
    # A folder inside the home that holds only weights is fine.
    if which == "HOME":
        (folders["HOME"] / "models").mkdir()
        r = action(fake, model_cache=str(folders["HOME"] / "models"), model_cache_outside_workspace="true")
        assert r.returncode == 0, r.stdout


def test_a_parent_of_the_workspace_is_never_a_model_cache(fake):
    r = action(fake, model_cache=str(fake.ws.parent), model_cache_outside_workspace="true")
    assert r.returncode == 1 and calls(fake) == []
    assert "holds the workspace" in r.stdout or "runner's own folder" in r.stdout, r.stdout


def _socket_in(folder: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(folder / "engine.sock"))
    return sock


@pytest.mark.parametrize("kind", ["socket", "fifo", "credentials", "hubconf"])
def test_a_folder_holding_a_socket_fifo_or_credentials_is_refused(fake, kind):
    cache = fake.ws / "models" / "hub"
    cache.mkdir(parents=True)
    sock = None
    if kind == "socket":
        sock = _socket_in(cache)
    elif kind == "fifo":
        os.mkfifo(cache / "pipe")
    elif kind == "hubconf":  # torch.hub.load runs it: code, not weights
        (cache / "owner_repo_main").mkdir()
        (cache / "owner_repo_main" / "hubconf.py").write_text("import os\n")
    else:
        (cache / ".docker").mkdir()
        (cache / ".docker" / "config.json").write_text("{}")
    try:
        r = action(fake, model_cache="models")
        assert r.returncode == 1 and calls(fake) == [], r.stdout
        expected = {"credentials": "credentials", "hubconf": "torch.hub code"}.get(kind, "socket, device or FIFO")
        assert expected in r.stdout, r.stdout
    finally:
        if sock:
            sock.close()


def test_reprocheck_docker_refuses_a_system_folder_and_a_socket(fake, tmp_path):
    r = reprocheck("docker", "specs/model.yaml", "--image", "reprocheck:test", "--model-cache", "/var/run", cwd=fake.ws,
                   env=fake.env)  # fmt: skip
    assert r.code == 2 and "system folder" in r.err and calls(fake) == [], r
    cache = tmp_path / "weights"
    cache.mkdir()
    sock = _socket_in(cache)
    try:
        r = reprocheck("docker", "specs/model.yaml", "--image", "reprocheck:test", "--model-cache", str(cache),
                       cwd=fake.ws, env=fake.env)  # fmt: skip
        assert r.code == 2 and "socket" in r.err and calls(fake) == [], r
    finally:
        sock.close()


@pytest.mark.parametrize("folder", ["/", "/run", "/proc"])
def test_native_runs_refuse_a_system_folder_as_model_cache(tmp_path, folder):
    spec = write_spec(tmp_path, "version: 1\nmodel: {torchvision: resnet18}\ninput: {random: {shape: [1, 3, 8, 8]}}\n")
    r = reprocheck("run", str(spec), "--model-cache", folder)
    assert r.code == 2 and "Traceback" not in r.err, r
    assert len(r.err.strip().splitlines()) == 1 and "model-cache" in r.err, r


def test_the_container_gets_nothing_of_the_steps_environment(fake):
    fake.env.update({"AWS_SECRET_ACCESS_KEY": "s3cr3t", "ACTIONS_RUNTIME_TOKEN": "t0ken", "NPM_TOKEN": "n9m"})
    (fake.ws / "models").mkdir()
    r = action(fake, model_cache="models", report="out/report.json")
    assert r.returncode == 0, r.stdout
    (argv,) = calls(fake)
    assert not [a for a in argv if "s3cr3t" in a or "t0ken" in a or "n9m" in a]
    env = [argv[i + 1] for i, a in enumerate(argv) if a in ("--env", "-e")]
    assert all("=" in e for e in env), env  # `--env NAME` alone would copy the step's value in
    assert not [a for a in argv if a.startswith("--env-file")]
    allowed = {"HOME", "NO_COLOR", "TORCH_HOME", "HF_HOME", "HF_HUB_OFFLINE", "REPROCHECK_WRITABLE", "GITHUB_ACTIONS"}
    allowed |= {"GITHUB_WORKSPACE", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"}
    assert {e.split("=", 1)[0] for e in env} <= allowed, env
