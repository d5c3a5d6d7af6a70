"""One launch policy for the Action and `reprocheck docker`, tried with a stand-in `docker` that records its
arguments (only the command line matters here; the real engine runs the same lines in test_docker/test_action)."""

import csv
import json
import os
import re
from pathlib import Path

import pytest

from helpers import ROOT, reprocheck, write_spec
from reprocheck.host import github
from reprocheck.host.launcher import launch
from reprocheck.host.report import markdown
from stand_in import action, calls, mounts, outputs


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
        "--html",  # the Action's defaults
        "reprocheck/report.html",
        "--pictures",
        "reprocheck/pictures",
        "--github",
        cwd=fake.ws,
        env=fake.env,
    )
    assert d.code == 0, d
    from_action, from_docker = calls(fake)
    assert from_action == from_docker


def test_the_container_gets_least_privilege(fake):
    assert action(fake, report="out/r.json", baseline="goldens", html="", pictures="").returncode == 0
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
        ({"missing_baseline": "write"}, "missing-baseline: write needs a baseline folder"),
        ({"missing_baseline": "yes", "baseline": "goldens"}, "missing-baseline must be error or write, got 'yes'"),
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


def docker_mount_fields(value: str) -> list[tuple[str, str]]:
    """A --mount value read the way the Docker CLI reads it: one CSV record of key=value fields."""
    (record,) = list(csv.reader([value]))
    return [tuple(f.split("=", 1)) if "=" in f else (f, "") for f in record]  # type: ignore[misc]


def assert_mounts_stay_put(argv: list[str], allowed: list[Path]) -> None:
    for i, a in enumerate(argv):
        if a != "--mount":
            continue
        fields = docker_mount_fields(argv[i + 1])
        sources = [v for k, v in fields if k in ("source", "src")]
        targets = [v for k, v in fields if k in ("target", "dst", "destination")]
        assert len(sources) == 1 and len(targets) == 1, argv[i + 1]
        for path in (sources[0], targets[0]):
            assert any(Path(path) == p or p in Path(path).parents for p in allowed), (path, allowed)


HOSTILE_PATHS = [
    "out/x,source=/etc,target=/etc/r.json",
    "out/x,readonly/r.json",
    'out/"x/r.json',
    "out/x\nsource=/etc/r.json",
]


@pytest.mark.parametrize("value", HOSTILE_PATHS)
@pytest.mark.parametrize("input_name", ["report", "baseline"])
def test_a_path_cannot_rewrite_a_mount(fake, tmp_path, value, input_name):
    r = action(fake, **{input_name: value})
    assert r.returncode == 1 and "error" in outputs(fake)["result"], r.stdout
    assert ("Docker's --mount syntax" in r.stdout) or ("line break" in r.stdout), r.stdout
    assert calls(fake) == []  # nothing was launched
    flag = "--report" if input_name == "report" else "--baseline"
    d = reprocheck("docker", "specs/model.yaml", "--image", "reprocheck:test", flag, value, cwd=fake.ws, env=fake.env)
    assert d.code == 2 and d.err.count("\n") == 1 and "Traceback" not in d.err, d


def test_every_mount_of_an_accepted_plan_parses_to_one_source_and_target_inside(fake):
    # `=` inside a field's value is harmless (Docker splits at the first one); the plan passes it through.
    r = action(fake, report="out/a=b/r.json", baseline="gold=en", summary="")
    assert r.returncode == 0, r.stdout
    (argv,) = calls(fake)
    assert_mounts_stay_put(argv, [fake.ws.resolve(), fake.files.resolve()])
    assert mounts(argv)[f"{fake.ws.resolve()}/out/a=b"] is True


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"report": ".git/hooks/r.json"}, "inside .git"),
        ({"report": ".github/workflows/r.json"}, "inside .github"),
        ({"baseline": ".git"}, "inside .git"),
        ({"baseline": "sub"}, "holds"),  # sub/.git: a nested checkout
        ({"report": "specs/r.json"}, "holds the spec model.yaml"),
        ({"baseline": "specs"}, "holds the spec model.yaml"),
    ],
)
def test_writable_folders_are_dedicated_output_folders(fake, inputs, fragment):
    (fake.ws / ".git" / "hooks").mkdir(parents=True)
    (fake.ws / ".github" / "workflows").mkdir(parents=True)
    (fake.ws / "sub" / "deeper" / ".git").mkdir(parents=True)
    r = action(fake, **inputs)
    assert r.returncode == 1 and fragment in r.stdout and "dedicated output folder" in r.stdout, r.stdout
    assert calls(fake) == []


def test_the_page_and_the_pictures_are_written_by_default_and_a_symlinked_pictures_folder_is_refused(fake):
    assert action(fake, report="out/r.json").returncode == 0
    (argv,) = calls(fake)
    ws = str(fake.ws.resolve())
    assert argv[argv.index("--html") + 1] == f"{ws}/reprocheck/report.html"
    assert argv[argv.index("--pictures") + 1] == f"{ws}/reprocheck/pictures"
    m = mounts(argv)
    assert m[f"{ws}/reprocheck"] is True and m[f"{ws}/reprocheck/pictures"] is True
    (fake.ws / "elsewhere").mkdir()
    (fake.ws / "pics").symlink_to(fake.ws / "elsewhere")
    r = action(fake, pictures="pics")
    assert r.returncode != 0 and "pictures 'pics' is not a folder" in r.stdout + r.stderr
    r = action(fake, pictures=".")
    assert r.returncode != 0 and "pictures is the workspace itself" in r.stdout + r.stderr


def test_the_container_is_told_its_writable_folders(fake):
    assert action(fake, report="out/r.json", baseline="goldens", html="", pictures="").returncode == 0
    (argv,) = calls(fake)
    env = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--env")
    ws = fake.ws.resolve()
    assert json.loads(env["REPROCHECK_WRITABLE"]) == [f"{ws}/out", f"{ws}/goldens"]


def test_a_check_loading_a_file_from_a_writable_folder_is_refused(spec_dir):
    # What the container does with REPROCHECK_WRITABLE (the engine runs the same line in test_docker).
    (spec_dir / "out").mkdir()
    torch_file = spec_dir / "out" / "x.npy"
    import numpy

    numpy.save(torch_file, numpy.zeros((2, 3), dtype="float32"))
    write_spec(spec_dir, "version: 1\nmodel: {factory: 'planted:loaded_weights'}\ninput: {tensor: out/x.npy}\n")
    r = reprocheck("run", "spec.yaml", cwd=spec_dir, env={"REPROCHECK_WRITABLE": json.dumps([str(spec_dir / "out")])})
    assert r.code == 2 and "writable output folder" in r.err and "x.npy" in r.err, r
    (spec_dir / "out" / "evil.py").write_text("import torch\ndef build():\n    return torch.nn.Identity()\n")
    write_spec(spec_dir, "version: 1\nmodel: {factory: 'out.evil:build'}\ninput: {random: {shape: [2]}}\n")
    r = reprocheck("run", "spec.yaml", cwd=spec_dir, env={"REPROCHECK_WRITABLE": json.dumps([str(spec_dir / "out")])})
    assert r.code == 2 and "writable output folder" in r.err, r
    # a keyword input's file counts too
    write_spec(
        spec_dir, "version: 1\nmodel: {factory: 'planted:loaded_weights'}\ninput: {kwargs: {x: {tensor: out/x.npy}}}\n"
    )
    r = reprocheck("run", "spec.yaml", cwd=spec_dir, env={"REPROCHECK_WRITABLE": json.dumps([str(spec_dir / "out")])})
    assert r.code == 2 and "x.npy" in r.err, r


@pytest.mark.parametrize("runs", ["²", "٣", "1_0", "+3", " 3x"])
def test_counts_are_ascii_digits_only(fake, runs):
    r = action(fake, runs=runs)
    assert r.returncode == 1 and "digits 0-9" in r.stdout and "Traceback" not in r.stdout + r.stderr, r
    assert outputs(fake)["result"] == "error"
    d = reprocheck(
        "docker", "specs/model.yaml", "--image", "reprocheck:test", "--gpus", runs, cwd=fake.ws, env=fake.env
    )
    assert d.code == 2 and "digits 0-9" in d.err and "Traceback" not in d.err, d
    d = reprocheck("run", "specs/model.yaml", "--runs", runs, cwd=fake.ws)
    assert d.code == 2 and "digits 0-9" in d.err, d


def test_the_model_cache_is_mounted_read_only_with_the_weights_env(fake, tmp_path):
    (fake.ws / "models").mkdir()
    assert action(fake, model_cache="models").returncode == 0
    (argv,) = calls(fake)
    env = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--env")
    cache = str(fake.ws.resolve() / "models")
    assert env["TORCH_HOME"] == f"{cache}/torch" and env["HF_HOME"] == f"{cache}/huggingface"
    assert env["HF_HUB_OFFLINE"] == "1" and "--model-cache" in argv
    outside = tmp_path / "shared-models"
    outside.mkdir()
    r = action(fake, model_cache="../shared-models")
    assert r.returncode == 1 and "outside the workspace" in r.stdout
    # An absolute path only when the workflow opts in (a self-hosted runner's own folder): read-only, said in the log.
    r = action(fake, model_cache=str(outside))
    assert r.returncode == 1 and "model-cache-outside-workspace: true" in r.stdout and calls(fake)[-1:] == [argv]
    r = action(fake, model_cache=str(outside), model_cache_outside_workspace="true")
    assert r.returncode == 0 and f"model cache {outside} mounted read-only" in r.stdout, r.stdout
    assert mounts(calls(fake)[-1])[str(outside)] is False
    (fake.ws / "out").mkdir()
    r = action(fake, model_cache="out", report="out/r.json")
    assert r.returncode == 1 and "overlaps a writable output folder" in r.stdout


def test_requirements_outside_the_workspace_are_refused(fake, tmp_path):
    (tmp_path / "req.txt").write_text("timm\n")
    r = action(fake, requirements="../req.txt")
    assert r.returncode == 1 and "outside the workspace" in r.stdout and calls(fake) == []
    (fake.ws / "req.txt").write_text("torch==1.0\n")
    r = action(fake, requirements="req.txt")
    assert r.returncode == 1 and "would change the image's pinned torch" in r.stdout and calls(fake) == []


def test_requirement_files_keep_the_pinned_stack(tmp_path):
    from reprocheck.host.launcher import derived

    pins = {"torch": "2.14.1", "torchvision": "0.29.1"}
    ok = tmp_path / "ok.txt"
    ok.write_text(
        "# a pip-compile'd file with hashes\n"
        "timm==1.0.31 \\\n    --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\n"
        "torch==2.14.1 --hash=sha256:00  # the image's own pin is fine\n"
        "Pillow>=10; python_version >= '3.10'\n"
    )
    derived.check_requirements(ok, pins)
    for line, fragment in [
        ("torch>=2.15", "would change the image's pinned torch==2.14.1"),
        ("TorchVision==0.20.0", "would change the image's pinned torchvision==0.29.1"),
        ("--extra-index-url https://example.invalid", "--extra-index-url is not taken"),
        ("-e ./pkg", "-e is not taken"),
    ]:
        bad = tmp_path / "bad.txt"
        bad.write_text(f"timm\n{line}\n")
        with pytest.raises(derived.DerivedError, match=re.escape(fragment)):
            derived.check_requirements(bad, pins)


def test_the_derived_tag_follows_the_files_contents(tmp_path):
    from reprocheck.host.launcher import derived

    req = tmp_path / "r.txt"
    req.write_text("timm\n")
    d = derived.Derivation("base:1", (req,))
    first = derived.tag_for("sha256:abc", d)
    assert first == derived.tag_for("sha256:abc", d) and first.startswith("reprocheck-derived:")
    assert derived.tag_for("sha256:def", d) != first  # another base image
    req.write_text("timm\ntransformers\n")
    assert derived.tag_for("sha256:abc", d) != first  # another file content


def test_seed_junit_folders_and_spec_checks_reach_the_container_from_both_launchers(fake):
    (fake.ws / "specs" / "more").mkdir()
    r = action(fake, seed="7", junit="out/junit.xml", spec="specs", checks="specs/model.yaml:model")
    assert r.returncode == 0, r.stdout + r.stderr
    d = reprocheck(
        "docker",
        "specs",
        "--image",
        "reprocheck:test",
        "--seed",
        "7",
        "--junit",
        "out/junit.xml",
        "--check",
        "specs/model.yaml:model",
        "--github",
        "--report",
        "reprocheck/report.json",
        "--html",
        "reprocheck/report.html",
        "--pictures",
        "reprocheck/pictures",
        cwd=fake.ws,
        env=fake.env,
    )
    assert d.code == 0, d
    from_action, from_docker = calls(fake)
    assert from_action == from_docker
    argv = from_action
    ws = os.path.realpath(fake.ws)
    assert argv[argv.index("--seed") + 1] == "7"
    assert argv[argv.index("--junit") + 1] == f"{ws}/out/junit.xml"
    assert argv[argv.index("--check") + 1] == f"{ws}/specs/model.yaml:model"
    assert argv[-1] == f"{ws}/specs"  # the folder, expanded inside
    envs = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--env")
    assert f"{ws}/out" in json.loads(envs["REPROCHECK_WRITABLE"])  # the JUnit file's folder, writable


@pytest.mark.parametrize("seed", ["-1", "4294967296", "٣", "1e3", "0x10"])
def test_a_seed_is_ascii_digits_within_numpys_range(fake, seed):
    r = action(fake, seed=seed)
    assert r.returncode == 1 and "input seed must be a whole number from 0 to 4294967295" in r.stdout, r
    d = reprocheck("run", "specs/model.yaml", f"--seed={seed}", cwd=fake.ws)
    assert d.code == 2 and "--seed" in d.err and "Traceback" not in d.err, d


def test_a_spec_check_outside_the_workspace_is_refused(fake, tmp_path):
    r = action(fake, checks="../elsewhere.yaml:model")
    assert r.returncode == 1 and "outside the workspace" in r.stdout, r


@pytest.mark.parametrize("ref", ["0123456789abcdef0123456789abcdef01234567", "v0", "main"])
def test_the_default_image_follows_the_version_files_never_the_ref(fake, tmp_path, ref):
    from reprocheck.host.launcher.container import read_versions, stack_tag

    action_path = tmp_path / "runner" / "_work" / "_actions" / "Owner" / "Repo" / ref
    fake.env.update(ACTION_REPOSITORY="Owner/Repo", GITHUB_ACTION_PATH=str(action_path))
    r = action(fake, image="")
    assert r.returncode == 0, r.stdout + r.stderr
    (argv,) = calls(fake)
    image = argv[argv.index("--") + 1]
    assert image == f"ghcr.io/owner/repo:{stack_tag(read_versions())}" and ref not in image
    # without github.action_repository, the action's own path names it
    fake.env["ACTION_REPOSITORY"] = ""
    r = action(fake, image="")
    assert r.returncode == 0 and calls(fake)[-1][argv.index("--") + 1] == image, r.stdout


def test_a_recorded_release_digest_pins_the_default_image(tmp_path):
    from reprocheck.host.launcher.container import released_image

    versions = tmp_path / "versions.env"
    base = "REPROCHECK_VERSION=1.2.0\nTORCH_VERSION=2.14.1\nFLAVOURS=cu130,cpu\nDEFAULT_FLAVOUR=cu130\n"
    versions.write_text(base + "RELEASE_DIGEST_CU130=sha256:" + "a" * 64 + "\n")
    assert released_image("o/r", versions) == "ghcr.io/o/r:1.2.0-torch2.14.1-cu130@sha256:" + "a" * 64
    versions.write_text(base + "RELEASE_DIGEST_CU130=latest\n")
    with pytest.raises(ValueError, match=r"RELEASE_DIGEST_CU130 .* sha256"):
        released_image("o/r", versions)
    with pytest.raises(ValueError, match="OWNER/REPO"):
        released_image("o/r;rm -rf /", versions)


# --- flavours of the image (docker/versions.env: FLAVOURS, <FLAVOUR>_*, RELEASED_FLAVOURS) -------------------------


def _released_action(fake, tmp_path, **inputs):
    """The Action's step naming the released image (no image input), as a workflow using owner/repo@ref runs it."""
    action_path = tmp_path / "runner" / "_work" / "_actions" / "Owner" / "Repo" / "v0"
    fake.env.update(ACTION_REPOSITORY="Owner/Repo", GITHUB_ACTION_PATH=str(action_path))
    return action(fake, image="", **inputs)


def _image_of(argv: list[str]) -> str:
    return argv[argv.index("--") + 1]


def _versions_copy(tmp_path: Path, **changes: str) -> Path:
    """docker/versions.env copied, with some lines changed: the repository's file is never edited."""
    lines = (ROOT / "docker" / "versions.env").read_text().splitlines()
    for key, value in changes.items():
        assert any(line.startswith(f"{key}=") for line in lines), key
        lines = [f"{key}={value}" if line.startswith(f"{key}=") else line for line in lines]
    path = tmp_path / f"versions-{len(list(tmp_path.glob('versions-*.env')))}.env"  # a new file each time
    path.write_text("\n".join(lines) + "\n")
    return path


def test_each_flavour_names_its_own_tag_and_the_default_tag_is_unchanged(fake, tmp_path):
    from reprocheck.host.launcher.container import read_versions

    v = read_versions()
    stack = f"{v['REPROCHECK_VERSION']}-torch{v['TORCH_VERSION']}"
    assert v["DEFAULT_FLAVOUR"] == "cu130" and v["FLAVOURS"].split(",") == ["cu130", "cu126", "cpu"]
    for flavour, gpus, tag in [
        ("", "none", "cu130"),  # today's tag: cpu is not released yet
        ("", "all", "cu130"),
        ("cu130", "all", "cu130"),
        ("cu126", "1", "cu126"),
        ("cpu", "none", "cpu"),
    ]:
        r = _released_action(fake, tmp_path, flavour=flavour, gpus=gpus)
        assert r.returncode == 0, r.stdout + r.stderr
        assert _image_of(calls(fake)[-1]) == f"ghcr.io/owner/repo:{stack}-{tag}", (flavour, gpus)
    # reprocheck docker chooses the same way, its images being local builds (docker/build.sh --flavour F)
    for flags, tag in [((), "cu130"), (("--flavour", "cu126"), "cu126"), (("--flavour=cpu",), "cpu")]:
        d = reprocheck("docker", "specs/model.yaml", *flags, cwd=fake.ws, env=fake.env)
        assert d.code == 0, d
        assert _image_of(calls(fake)[-1]) == f"reprocheck:{stack}-{tag}"


def test_the_action_wires_the_flavour_input_through_the_environment():
    import yaml

    action_yml = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action_yml["inputs"]["flavour"]["default"] == ""
    assert action_yml["runs"]["steps"][0]["env"]["INPUT_FLAVOUR"] == "${{ inputs.flavour }}"


def test_the_cpu_flavour_with_gpus_is_refused(fake, tmp_path):
    r = _released_action(fake, tmp_path, flavour="cpu", gpus="all")
    assert r.returncode == 1 and calls(fake) == [], r
    assert "flavour cpu has no CUDA, so it cannot use gpus 'all'" in r.stdout and outputs(fake)["result"] == "error"
    d = reprocheck("docker", "specs/model.yaml", "--flavour", "cpu", "--gpus", "2", cwd=fake.ws, env=fake.env)
    assert d.code == 2 and "--flavour cpu has no CUDA" in d.err and "Traceback" not in d.err, d
    assert calls(fake) == []


@pytest.mark.parametrize(
    "value", ["cu999", "CPU", "Cu130", "-cpu", "--privileged", "cpu --privileged", "cu130,cpu", "cu130;id", "../cpu"]
)
def test_a_bad_flavour_is_refused_before_anything_runs(fake, tmp_path, value):
    r = _released_action(fake, tmp_path, flavour=value)
    assert r.returncode == 1 and calls(fake) == [], r
    assert (
        r.stdout.startswith("::error title=reprocheck::input flavour") and "is not one of cu130, cu126, cpu" in r.stdout
    )
    d = reprocheck("docker", "specs/model.yaml", f"--flavour={value}", cwd=fake.ws, env=fake.env)
    assert d.code == 2 and "--flavour" in d.err and "Traceback" not in d.err, d
    assert calls(fake) == []


def test_a_flavour_and_an_image_together_are_refused(fake, tmp_path):
    r = action(fake, image="reprocheck:test", flavour="cu126")
    assert r.returncode == 1 and calls(fake) == [] and "not both" in r.stdout, r
    d = reprocheck("docker", "specs/model.yaml", "--image", "x:y", "--flavour", "cu126", cwd=fake.ws, env=fake.env)
    assert d.code == 2 and "--image and --flavour" in d.err, d


def test_gpus_none_stays_on_cu130_until_a_release_publishes_cpu(tmp_path):
    from reprocheck.host.launcher.container import choose_flavour, read_versions, released_image

    today = read_versions(_versions_copy(tmp_path))
    assert choose_flavour(today, None, "none") == "cu130" and choose_flavour(today, None, "all") == "cu130"
    released = _versions_copy(tmp_path, RELEASED_FLAVOURS="cu130,cpu")
    assert choose_flavour(read_versions(released), None, "none") == "cpu"
    assert choose_flavour(read_versions(released), None, "1") == "cu130"  # GPUs asked for: a CUDA flavour
    assert choose_flavour(read_versions(released), "cu126", "none") == "cu126"  # asked for: what was asked
    assert released_image("o/r", released).endswith("-cpu")
    assert released_image("o/r", released, gpus="all").endswith("-cu130")
    # a recorded digest is a release too, and pins that flavour's image
    digest = "sha256:" + "b" * 64
    pinned = _versions_copy(tmp_path, RELEASE_DIGEST_CPU=digest)
    assert released_image("o/r", pinned) == f"{released_image('o/r', released)}@{digest}"
    assert "@" not in released_image("o/r", pinned, flavour="cu126")


def _docker_copy(tmp_path: Path) -> Path:
    """docker/ (scripts, pins, locks) in a scratch tree: build.sh and lock.sh work from their folder's parent."""
    import shutil

    shutil.copytree(ROOT / "docker", tmp_path / "tree" / "docker")
    return tmp_path / "tree" / "docker"


def test_build_sh_refuses_a_flavour_without_its_lock_in_one_line(tmp_path):
    import subprocess

    docker = _docker_copy(tmp_path)
    (docker / "requirements-cpu.lock").unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{tmp_path / 'no-docker'}{os.pathsep}/usr/bin:/bin"}  # no engine needed

    def build(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(docker / "build.sh"), *args], capture_output=True, text=True, env=env)

    r = build("--flavour", "cpu")  # not --print: the lock is checked before any docker command
    assert r.returncode == 1 and r.stdout == "", r
    assert r.stderr.strip().splitlines() == [
        "build.sh: no lock for flavour cpu (docker/requirements-cpu.lock); "
        "generate it with: docker/lock.sh --flavour cpu"
    ]
    r = build("--print")
    assert r.returncode == 0 and r.stdout.strip().endswith("-torch2.14.1-cu130"), r  # the default tag, unchanged
    (docker / "requirements-cpu.lock").write_text("torch==2.14.1+cpu \\\n    --hash=sha256:" + "c" * 64 + "\n")
    r = build("--print", "--flavour", "cpu")
    assert r.returncode == 0 and r.stdout.strip().endswith("-torch2.14.1-cpu"), r
    # a flavour is a listed name before it names anything: no option, no shell, no bash subscript
    for bad in ("CPU", "cu999", "-x", "a[$(touch " + str(tmp_path / "pwned") + ")]", "cpu x"):
        r = build("--print", "--flavour", bad)
        assert r.returncode == 2 and "--flavour must be one of cu130, cu126, cpu" in r.stderr, (bad, r)
    assert not (tmp_path / "pwned").exists()


def test_lock_sh_takes_each_flavours_torch_from_its_own_index(tmp_path):
    import subprocess

    docker = _docker_copy(tmp_path)

    def command(*args: str) -> str:
        r = subprocess.run(["bash", str(docker / "lock.sh"), "--print", *args], capture_output=True, text=True)
        assert r.returncode == 0, r
        return r.stdout.strip()

    default = command()
    assert "--index-url https://pypi.org/simple" in default and "--extra-index-url" not in default
    assert default.endswith("--output-file docker/requirements.lock")  # today's lock, as before
    for flavour in ("cu126", "cpu"):
        line = command("--flavour", flavour)
        assert f"--extra-index-url https://download.pytorch.org/whl/{flavour} " in line, line
        assert f"--output-file docker/requirements-{flavour}.lock" in line and "--emit-index-url" in line
        assert "--index-strategy first-index" in line  # torch only from the flavour's index, never PyPI's
    r = subprocess.run(["bash", str(docker / "lock.sh"), "--flavour", "gpu"], capture_output=True, text=True)
    assert r.returncode == 2 and "must be one of" in r.stderr


def test_build_true_builds_the_chosen_flavour_with_a_checked_argument(fake, tmp_path):
    stub = tmp_path / "action" / "docker" / "build.sh"
    stub.parent.mkdir(parents=True)
    stub.write_text('printf "%s\\n" "$@" > "$(dirname "$0")/args"; echo reprocheck:built\n')
    fake.env.update(GITHUB_ACTION_PATH=str(tmp_path / "action"))
    fake.env.pop("REPROCHECK_LOCAL_BASE", None)
    r = action(fake, image="", build="true", flavour="cu126", gpus="1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (stub.parent / "args").read_text().splitlines() == ["--flavour", "cu126"]
    assert _image_of(calls(fake)[-1]) == "reprocheck:built"
    r = action(fake, image="", build="true")
    assert r.returncode == 0 and (stub.parent / "args").read_text().splitlines() == ["--flavour", "cu130"], r


def test_the_release_workflow_builds_every_flavour():
    import yaml

    from reprocheck.host.launcher.container import flavours, read_versions

    job = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())["jobs"]["image"]
    assert job["strategy"]["matrix"]["flavour"] == list(flavours(read_versions()))
    scripts = "\n".join(step.get("run", "") for step in job["steps"])
    assert "${{" not in scripts and 'build.sh --flavour "$FLAVOUR"' in scripts  # the value through env only


def test_the_first_night_reaches_the_container_as_one_flag(fake):
    r = action(fake, report="out/r.json", baseline="goldens", missing_baseline="write")
    assert r.returncode == 0, r
    (argv,) = calls(fake)
    assert argv[argv.index("--missing-baseline") + 1] == "write" and "--update-baseline" not in argv
