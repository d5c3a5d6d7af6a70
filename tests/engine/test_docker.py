"""The pinned image on a real Docker engine (built from docker/Dockerfile on a local base; no registry here).

Skips without an engine, except under CI=true where a missing engine is a failure."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import EXAMPLES, FIXTURES, ROOT, reprocheck, write_spec

pytestmark = [pytest.mark.docker]


def docker_run(image, *args, mount=ROOT, workdir="/work"):
    # The README's verification line: docker run --rm -v "$PWD:/work" -w /work IMAGE run SPEC
    cmd = ["docker", "run", "--rm", "-v", f"{mount}:/work", "-w", workdir, image, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def versions():
    return dict(
        line.split("=", 1)
        for line in (ROOT / "docker/versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )


def python_in(image: str, code: str) -> list[str]:
    """What `python -c code` prints inside the image, split on white space."""
    cmd = ["docker", "run", "--rm", "--entrypoint", "python", image, "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()


def test_tag_encodes_the_stack(image):
    # The tag read back from what is installed inside the image, not from the file it was built from.
    reprocheck_version, torch_version, cuda = python_in(
        image,
        "import importlib.metadata as m, torch; "
        "print(m.version('reprocheck'), torch.__version__.split('+')[0], torch.version.cuda)",
    )
    assert image == f"reprocheck:{reprocheck_version}-torch{torch_version}-cu{cuda.replace('.', '')}"


def test_labels_carry_the_versions(image):
    labels = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    v = versions()
    flavour = v["DEFAULT_FLAVOUR"]  # what docker/build.sh builds unless told
    assert labels["io.reprocheck.torch.version"] == v["TORCH_VERSION"]
    assert labels["io.reprocheck.torchvision.version"] == v["TORCHVISION_VERSION"]
    assert labels["io.reprocheck.cuda.version"] == v[f"{flavour.upper()}_CUDA_VERSION"]
    assert labels["io.reprocheck.cudnn.version"] == v[f"{flavour.upper()}_CUDNN_VERSION"]
    assert labels["io.reprocheck.driver.min"] == v[f"{flavour.upper()}_MIN_DRIVER"]
    assert labels["io.reprocheck.flavour"] == flavour
    # the same, as the processes inside see it (the CUDA preflight names the driver the image needs)
    env = python_in(
        image, "import os; print(*(os.environ[f'REPROCHECK_{k}'] for k in ('FLAVOUR', 'CUDA', 'MIN_DRIVER')))"
    )
    assert env == [flavour, v[f"{flavour.upper()}_CUDA_VERSION"], v[f"{flavour.upper()}_MIN_DRIVER"]]
    assert labels["org.opencontainers.image.version"] == v["REPROCHECK_VERSION"]


def test_installed_stack_matches_the_labels(image):
    out = python_in(
        image,
        "import torch, torchvision; "
        "print(torch.__version__, torchvision.__version__, torch.version.cuda, torch.backends.cudnn.version())",
    )
    v = versions()
    assert (
        out[0].startswith(v["TORCH_VERSION"])
        and out[1].startswith(v["TORCHVISION_VERSION"])
        and out[2] == v[f"{v['DEFAULT_FLAVOUR'].upper()}_CUDA_VERSION"]
    )


def test_runs_as_non_root_with_the_env_for_gpus(image):
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            image,
            "-c",
            "id -u; echo $NVIDIA_VISIBLE_DEVICES $NVIDIA_DRIVER_CAPABILITIES; pwd",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] != "0" and out[1:] == ["all", "compute,utility", "/work"]


def test_no_ca_bundle_in_the_image(image):
    r = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", image, "-c", "ls /build 2>&1; echo $PIP_CERT"],
        capture_output=True,
        text=True,
    )
    assert "No such file" in r.stdout


def test_retinanet_passes_in_the_container(image):
    r = docker_run(image, "run", "examples/retinanet.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS  retinanet" in r.stdout


def test_the_readmes_plain_docker_run_writes_a_report_as_the_host_user(image, tmp_path):
    # The README's line for reports in a host folder: --user "$(id -u):$(id -g)", the folder mounted writable.
    shutil.copy(EXAMPLES / "models.py", tmp_path / "models.py")
    shutil.copy(EXAMPLES / "nondeterministic.yaml", tmp_path / "spec.yaml")
    os.chmod(tmp_path, 0o755)
    user = f"{os.getuid()}:{os.getgid()}"
    cmd = ["docker", "run", "--rm", "--user", user, "-v", f"{tmp_path}:/work", "-w", "/work", image]
    r = subprocess.run([*cmd, "run", "spec.yaml", "--report", "out/report.json"], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    report = tmp_path / "out" / "report.json"
    assert report.stat().st_uid == os.getuid() and json.loads(report.read_text())["checks"], r.stdout


def test_nondeterministic_fails_in_the_container(image):
    r = docker_run(image, "run", "examples/nondeterministic.yaml")
    assert r.returncode == 1, r.stdout + r.stderr


def test_bad_spec_is_exit_2_in_the_container(image, tmp_path):
    write_spec(tmp_path, "version: 1\nsead: 3\n", "bad.yaml")
    os.chmod(tmp_path, 0o755)
    r = docker_run(image, "validate", "bad.yaml", mount=tmp_path)
    assert r.returncode == 2
    assert "bad.yaml:2: sead: unknown key (did you mean 'seed'?)" in r.stderr and "Traceback" not in r.stderr


def _net_spec(folder):
    shutil.copy(FIXTURES / "planted.py", folder / "planted.py")
    (folder / "netprobe.py").write_text(
        "import os, torch\n"
        "def build():\n"
        "    ifaces = sorted(i for i in os.listdir('/sys/class/net') if i != 'lo')\n"
        "    if ifaces:\n"
        "        raise RuntimeError(f'network interfaces present: {ifaces}')\n"
        "    return torch.nn.Identity()\n"
    )
    return write_spec(
        folder, "version: 1\nmodel: {factory: 'netprobe:build'}\ninput: {random: {shape: [2]}}\n", "net.yaml"
    )


def test_reprocheck_docker_passes_exit_codes_and_writes_reports(image, tmp_path):
    spec = _net_spec(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    r = reprocheck(
        "docker",
        str(spec),
        "--image",
        image,
        "--report",
        str(out / "r.json"),
        "--summary",
        str(out / "s.md"),
        cwd=tmp_path,
    )
    assert r.code == 0, r  # no network interfaces: the probe model passed
    report = json.loads((out / "r.json").read_text())
    assert report["checks"][0]["status"] == "pass"
    assert (out / "s.md").read_text().startswith("## reprocheck")
    assert (out / "r.json").stat().st_uid == os.getuid()

    r = reprocheck("docker", str(spec), "--image", image, "--network", "bridge", cwd=tmp_path)
    assert r.code == 3 and "network interfaces present" in r.out, r

    assert reprocheck("docker", str(EXAMPLES / "nondeterministic.yaml"), "--image", image, cwd=ROOT).code == 1
    bad = write_spec(tmp_path, "version: 1\nruns: 1\n", "bad.yaml")
    r = reprocheck("docker", str(bad), "--image", image, cwd=tmp_path)
    assert r.code == 2 and "runs:" in r.err  # the container's stderr reaches ours


def test_the_container_cannot_write_outside_its_output_folders(image, tmp_path):
    # The workspace is read-only, the root file system too; only the report folder and /tmp take writes.
    (tmp_path / "writer.py").write_text(
        "import os, torch\n"
        "def build():\n"
        "    denied = []\n"
        "    for target in (os.path.join(os.path.dirname(os.path.abspath(__file__)), 'x'), '/usr/x', '/work/x'):\n"
        "        try:\n"
        "            open(target, 'w').close()\n"
        "        except OSError:\n"
        "            denied.append(target)\n"
        "    open('/tmp/ok', 'w').close()\n"
        "    assert len(denied) == 3, denied\n"
        "    return torch.nn.Identity()\n"
    )
    spec = write_spec(
        tmp_path, "version: 1\nmodel: {factory: 'writer:build'}\ninput: {random: {shape: [2]}}\n", "w.yaml"
    )
    r = reprocheck("docker", str(spec), "--image", image, "--report", str(tmp_path / "out" / "r.json"), cwd=tmp_path)
    assert r.code == 0, r
    assert not (tmp_path / "x").exists() and (tmp_path / "out" / "r.json").is_file()


def test_the_readme_launcher_line_works_verbatim(image):
    readme = (ROOT / "README.md").read_text()
    (line,) = [
        x.strip() for x in readme.splitlines() if x.strip().startswith("reprocheck docker examples/retinanet.yaml")
    ]
    out = ROOT / "out"
    shutil.rmtree(out, ignore_errors=True)
    try:
        proc = subprocess.run(
            line,
            shell=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            env={
                **os.environ,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "PYTHONPATH": str(ROOT / "runner"),
            },
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert json.loads((out / "report.json").read_text())["checks"][0]["status"] == "pass"
        assert (out / "summary.md").is_file()
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_engine_and_image_problems_are_one_line_exit_2(image, tmp_path):
    spec = EXAMPLES / "nondeterministic.yaml"
    r = reprocheck("docker", str(spec), "--image", "reprocheck:does-not-exist")
    assert r.code == 2 and "is not here" in r.err and "Traceback" not in r.err
    r = reprocheck("docker", str(spec), env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert r.code == 2 and "cannot reach the Docker engine" in r.err and len(r.err.strip().splitlines()) == 1
    r = reprocheck("docker", str(spec), "--image", image, "--gpus", "lots")
    assert r.code == 2 and "gpus must be none, all or a positive count" in r.err


def test_base_image_is_recorded(image):
    labels = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert labels["org.opencontainers.image.base.name"]  # the local stand-in here, the pinned tag in releases


def _image_id(ref):
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True
    ).stdout.strip()


def test_rebuilding_reuses_the_cache_and_leaves_nothing_dangling(image):
    stage = _image_id("reprocheck-build-stage:latest")
    proc = subprocess.run(["bash", "docker/build.sh", "--local"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _image_id("reprocheck-build-stage:latest") == stage  # the torch layers came from the cache
    dangling = subprocess.run(
        [
            "docker",
            "images",
            "-q",
            "--filter",
            "dangling=true",
            "--filter",
            "label=org.opencontainers.image.title=reprocheck",
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert dangling.strip() == ""


def test_plan_mounts_and_user_without_an_engine(tmp_path):
    # Pure planning: what the container would get (no engine needed).
    from reprocheck.host.launcher import launch

    write_spec(tmp_path, "version: 1\n", "s.yaml")
    p = launch.plan(
        launch.Request(
            specs=("s.yaml",),
            image="i:t",
            workspace=tmp_path,
            runs=3,
            report="out/r.json",
            baseline="golden",
            update_baseline=True,
            gpus="2",
        )
    )
    ws = str(tmp_path.resolve())
    assert [(m.path, m.writable) for m in p.mounts] == [(ws, False), (f"{ws}/out", True), (f"{ws}/golden", True)]
    assert p.args == (
        "run",
        "--runs",
        "3",
        "--isolation",
        "auto",
        "--report",
        f"{ws}/out/r.json",
        "--baseline",
        f"{ws}/golden",
        "--baseline-root",
        ws,
        "--update-baseline",
        "--",
        f"{ws}/s.yaml",
    )
    assert p.user == f"{os.getuid()}:{os.getgid()}"
    argv = p.docker_argv()
    assert argv[argv.index("--gpus") + 1] == "2" and argv[argv.index("--network") + 1] == "none"


def test_invariance_runs_in_the_container(image, tmp_path):
    # The container's read-only root and private /tmp hold the variants' runs as well as the check's own.
    shutil.copy(FIXTURES / "planted.py", tmp_path / "planted.py")
    spec = write_spec(
        tmp_path,
        'version: 1\nmodel: {factory: "planted:thread_dependent"}\ninput: {random: {shape: [2, 8]}}\n'
        "recipe: {threads: 2}\ninvariance: {threads: [1]}\n",
        "inv.yaml",
    )
    r = reprocheck("docker", str(spec), "--image", image, "--report", "out/r.json", cwd=tmp_path)
    assert r.code == 1, r
    (v,) = json.loads((tmp_path / "out" / "r.json").read_text())["checks"][0]["invariance"]
    assert (v["kind"], v["status"]) == ("threads", "fail")
    # Its traced runs, too, run in the container: the first op that differs, at the planted file's line.
    assert v["first_change"]["op"]["op"] == "aten::lift_fresh" and "planted.py:" in v["first_change"]["op"]["location"]
    assert reprocheck("docker", str(spec), "--image", image, "--invariance", "none", cwd=tmp_path).code == 0


def test_a_compiled_variant_runs_in_the_container_with_its_compiler(image, tmp_path):
    # The image carries g++ for inductor; the container's root is read-only, so the compile caches must live in the
    # runs' own folders (a cache in ~/.cache or /tmp/torchinductor_* elsewhere would fail or leak between runs).
    shutil.copy(FIXTURES / "planted.py", tmp_path / "planted.py")
    spec = write_spec(
        tmp_path,
        'version: 1\nmodel: {factory: "planted:small_mlp"}\ninput: {random: {shape: [4, 8]}}\n'
        "invariance: {compile: true}\n",
        "compiled.yaml",
    )
    r = reprocheck("docker", str(spec), "--image", image, "--report", "out/r.json", cwd=tmp_path)
    assert r.code == 0, r
    check = json.loads((tmp_path / "out" / "r.json").read_text())["checks"][0]
    (v,) = check["invariance"]
    assert (v["kind"], v["status"], v["compiled_reproducible"]) == ("compile", "pass", True), v
    assert check["fingerprint"]["cxx"].startswith("g++")


def test_task_comparison_runs_in_the_container(image, tmp_path):
    # Deterministic detections on the edge (the workspace is read-only in the container: nothing may be written
    # beside the model): compared as detections, fragile warnings, then fragile: fail, then a rule that fits nothing.
    shutil.copy(FIXTURES / "planted.py", tmp_path / "planted.py")
    head = 'version: 1\nmodel: {factory: "planted:dets_on_the_edge"}\ninput: {random: {shape: [1, 8]}}\n'
    rules = 'compare:\n  outputs:\n    "*": {as: detection}\n'
    spec = write_spec(tmp_path, head + rules, "edge.yaml")
    r = reprocheck("docker", str(spec), "--image", image, "--report", "out/r.json", cwd=tmp_path)
    assert r.code == 0, r
    check = json.loads((tmp_path / "out" / "r.json").read_text())["checks"][0]
    assert check["outputs"][0]["task"]["stats"]["matched"] == 8
    assert [f["reason"] for f in check["fragile"]] == ["score-threshold", "nms"]
    strict = write_spec(tmp_path, head + rules + "  fragile: fail\n", "strict.yaml")
    assert reprocheck("docker", str(strict), "--image", image, cwd=tmp_path).code == 1
    wrong = write_spec(tmp_path, head + "compare:\n  outputs:\n    logits: {as: classification}\n", "wrong.yaml")
    r = reprocheck("docker", str(wrong), "--image", image, cwd=tmp_path)
    assert r.code == 3 and "wrong.yaml:6: compare pattern 'logits' matches no output" in r.out, r


def test_a_path_cannot_rewrite_a_mount_on_the_real_engine(image, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws / "writer.py").write_text(
        "import os, torch\n"
        "def build():\n"
        f"    for d in ({str(outside)!r}, os.path.join({str(ws)!r}, 'out')):\n"
        "        try:\n"
        "            open(os.path.join(d, 'planted'), 'w').close()\n"
        "        except OSError:\n"
        "            pass\n"
        "    return torch.nn.Identity()\n"
    )
    spec = write_spec(ws, "version: 1\nmodel: {factory: 'writer:build'}\ninput: {random: {shape: [2]}}\n", "w.yaml")
    hostile = f"out/x,source={outside},target={ws}/out/x/r.json"
    r = reprocheck("docker", str(spec), "--image", image, "--report", hostile, cwd=ws)
    assert r.code == 2 and "--mount syntax" in r.err, r
    assert list(outside.iterdir()) == []
    # A path with '=' is passed through unchanged and lands where it says.
    r = reprocheck("docker", str(spec), "--image", image, "--report", "out/a=b/r.json", cwd=ws)
    assert r.code == 0, r
    assert (ws / "out" / "a=b" / "r.json").is_file() and list(outside.iterdir()) == []
    # The container refuses a check whose input lies in a writable folder.
    import numpy

    numpy.save(ws / "out" / "x.npy", numpy.zeros(2, dtype="float32"))
    bad = write_spec(ws, "version: 1\nmodel: {factory: 'writer:build'}\ninput: {tensor: out/x.npy}\n", "b.yaml")
    r = reprocheck("docker", str(bad), "--image", image, "--report", "out/r.json", cwd=ws)
    assert r.code == 2 and "writable output folder" in r.err, r


CA = {"REPROCHECK_PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}  # pip in a local build needs the host's CA


def test_requirements_build_a_derived_image_once_and_reuse_it(image, tmp_path):
    zoos = ROOT / "tests" / "zoos"
    shutil.copy(zoos / "timm-in-image.yaml", tmp_path / "t.yaml")
    shutil.copy(zoos / "requirements-timm.txt", tmp_path / "req.txt")
    r = reprocheck("docker", "t.yaml", "--image", image, cwd=tmp_path)
    assert r.code == 2 and "timm is not installed where the runs are" in r.err and "--requirements" in r.err, r
    first = reprocheck("docker", "t.yaml", "--image", image, "--requirements", "req.txt", cwd=tmp_path, env=CA)
    assert first.code == 0, first
    assert "using cached image reprocheck-derived:" in first.err or "building reprocheck-derived:" in first.err
    again = reprocheck("docker", "t.yaml", "--image", image, "--requirements", "req.txt", cwd=tmp_path, env=CA)
    assert again.code == 0 and "using cached image reprocheck-derived:" in again.err, again
    # The derived image keeps the pinned stack.
    tag = again.err.split("using cached image ")[1].split()[0]
    versions = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "python", tag, "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
    )
    assert versions.stdout.strip().startswith(_versions()["TORCH_VERSION"]), versions


def _versions():
    from reprocheck.host.launcher.container import read_versions

    return read_versions(ROOT / "docker" / "versions.env")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("torch==2.0.0", "would change the image's pinned torch=="),
        ("torchvision>=0.30", "would change the image's pinned torchvision=="),
        ("--index-url https://example.invalid/simple", "--index-url is not taken for the image"),
        ("-r other.txt", "-r is not taken for the image"),
    ],
)
def test_a_requirement_that_would_change_the_stack_is_refused_before_any_build(image, tmp_path, line, fragment):
    shutil.copy(ROOT / "tests" / "zoos" / "timm-in-image.yaml", tmp_path / "t.yaml")
    (tmp_path / "req.txt").write_text(f"timm\n{line}\n")
    r = reprocheck("docker", "t.yaml", "--image", image, "--requirements", "req.txt", cwd=tmp_path, env=CA)
    assert r.code == 2 and fragment in r.err and "req.txt:2" in r.err and "building" not in r.err, r


def test_pretrained_weights_from_a_read_only_model_cache_in_the_container(image, tmp_path):
    from helpers import fill_model_cache

    cache = fill_model_cache(tmp_path / "models")
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    shutil.copy(EXAMPLES / "data" / "chelsea.png", ws / "data" / "chelsea.png")
    text = (ROOT / "tests" / "zoos" / "retinanet-default.yaml").read_text()
    write_spec(ws, text.replace("../../examples/data/chelsea.png", "data/chelsea.png"), "r.yaml")
    r = reprocheck("docker", "r.yaml", "--image", image, cwd=ws)
    assert r.code == 3, r  # no network in the container: without the cache the weights cannot be had
    r = reprocheck("docker", "r.yaml", "--image", image, "--model-cache", str(cache), "--report", "out/r.json", cwd=ws)
    assert r.code == 0, r
    assert json.loads((ws / "out" / "r.json").read_text())["checks"][0]["status"] == "pass"
