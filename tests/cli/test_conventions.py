"""What every neighbouring tool has, through the real CLI: -V; --model-cache and --seed on every command that runs
models; a folder of specs and SPEC:NAME; every error of a spec at once; JUnit XML."""

import json
import sys
from xml.etree import ElementTree

import pytest

from helpers import ROOT, reprocheck, write_spec

# A model that needs its weights folder: it builds only when TORCH_HOME is the cache's torch/ and holds the file.
CACHED = """
import os, torch

def build():
    home = os.environ.get("TORCH_HOME", "")
    if not os.path.isfile(os.path.join(home, "weights.txt")):
        raise RuntimeError(f"no weights under TORCH_HOME={home!r}")
    torch.manual_seed(0)
    return torch.nn.Linear(8, 2)
"""


def _cached_spec(folder):
    (folder / "cached.py").write_text(CACHED)
    spec = write_spec(
        folder,
        'version: 1\nmodel: {factory: "cached:build"}\ninput: {random: {shape: [2, 8]}}\nrecipe: {threads: 1}\n',
    )
    cache = folder / "models"
    (cache / "torch").mkdir(parents=True)
    (cache / "torch" / "weights.txt").write_text("w")
    return spec, cache


def test_dash_capital_v_is_the_version():
    r = reprocheck("-V")
    assert r.code == 0 and r.out.startswith("reprocheck "), r


@pytest.mark.parametrize("command", ["run", "diagnose", "calibrate"])
def test_every_command_that_runs_models_takes_the_model_cache(tmp_path, command):
    spec, cache = _cached_spec(tmp_path)
    extra = ["--runs", "2"] if command == "calibrate" else []
    r = reprocheck(command, str(spec), "--model-cache", str(cache), *extra)
    assert r.code == 0, r
    without = reprocheck(command, str(spec), *extra)  # the same model without it cannot build
    assert without.code == 3 and "no weights under TORCH_HOME" in without.out + without.err, without


@pytest.mark.parametrize("command", ["diagnose", "calibrate"])
def test_a_bad_model_cache_is_refused_before_anything_runs(tmp_path, command):
    spec, _ = _cached_spec(tmp_path)
    r = reprocheck(command, str(spec), "--model-cache", str(tmp_path / "nowhere"))
    assert r.code == 2 and "--model-cache" in r.err and "no such folder" in r.err, r
    r = reprocheck(command, str(spec), "--model-cache", "/proc")  # the host's own folders never become the cache
    assert r.code == 2 and "--model-cache" in r.err and "Traceback" not in r.err, r


# ---- --seed


def test_seed_overrides_every_checks_seed_and_reaches_the_runs(spec_dir, tmp_path):
    spec = write_spec(
        spec_dir, "version: 1\nmodel: {factory: 'planted:seeded_init'}\ninput: {random: {shape: [2, 8]}}\n"
    )
    r = reprocheck("run", str(spec), "--seed", "11", "--report", str(tmp_path / "r.json"), "-q")
    assert r.code == 0, r
    (check,) = json.loads((tmp_path / "r.json").read_text())["checks"]
    assert check["seed"] == 11 and check["recipe"]["PYTHONHASHSEED"] == "11", check["recipe"]


def test_a_golden_written_with_another_seed_is_an_error_naming_both_seeds_never_drift(spec_dir):
    spec = write_spec(
        spec_dir, "version: 1\nmodel: {factory: 'planted:seeded_init'}\ninput: {random: {shape: [2, 8]}}\n"
    )
    golden = ["--baseline", "goldens"]
    assert reprocheck("run", "spec.yaml", *golden, "--seed", "5", "--update-baseline", cwd=spec_dir).code == 0
    r = reprocheck("run", "spec.yaml", *golden, cwd=spec_dir)
    assert r.code == 2, r
    assert "written with seed 5" in r.err and "uses seed 3407" in r.err and "--seed 5" in r.err, r
    assert reprocheck("run", "spec.yaml", *golden, "--seed", "5", cwd=spec_dir).code == 0
    assert spec.exists()


@pytest.mark.parametrize("command", ["diagnose", "calibrate", "upgrade"])
def test_every_command_that_runs_checks_takes_the_seed(spec_dir, command):
    write_spec(spec_dir, "version: 1\nmodel: {factory: 'planted:seeded_init'}\ninput: {random: {shape: [2, 8]}}\n")
    extra = {
        "calibrate": ["--runs", "2"],
        "upgrade": ["--from", f"python:{sys.executable}", "--to", f"python:{sys.executable}"],
    }
    r = reprocheck(command, "spec.yaml", "--seed", "9", *extra.get(command, []), "--report", "r.json", cwd=spec_dir)
    assert r.code == 0, r
    assert '"seed": 9' in (spec_dir / "r.json").read_text()
    bad = reprocheck(command, "spec.yaml", "--seed", "x", *extra.get(command, []), cwd=spec_dir)
    assert bad.code == 2 and "--seed" in bad.err, bad


# ---- a folder of specs, SPEC:NAME


LINEAR = "import torch\ndef build():\n    torch.manual_seed(0)\n    return torch.nn.Linear(4, 2)\n"
LINEAR_SPEC = "version: 1\nmodel: {factory: 'm:build'}\ninput: {random: {shape: [2, 4]}}\n"


def test_a_folder_runs_every_spec_under_it_in_path_order(tmp_path):
    for folder in ("specs", "specs/b", "specs/.github"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.py").write_text(LINEAR)
    for rel in ("specs/z.yaml", "specs/b/model.yml", "specs/a.yaml"):
        (tmp_path / rel).write_text(LINEAR_SPEC)
    (tmp_path / "specs" / ".github" / "ci.yml").write_text("on: push\n")  # hidden folders are left out
    (tmp_path / "specs" / "notes.txt").write_text("not yaml")
    r = reprocheck("matrix", "specs", cwd=tmp_path)
    assert r.code == 0, r
    assert [e["spec"] for e in json.loads(r.out)["include"]] == ["specs/a.yaml", "specs/b/model.yml", "specs/z.yaml"]
    r = reprocheck("run", "specs", "-q", "--check", "specs/b/model.yml:model", "--report", "r.json", cwd=tmp_path)
    assert r.code == 0, r
    assert [c["name"] for c in json.loads((tmp_path / "r.json").read_text())["checks"]] == ["model"]


def test_a_yaml_file_in_a_folder_that_is_not_a_spec_is_named_and_refused(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.yaml").write_text(
        "version: 1\nmodel: {torchvision: resnet18}\ninput: {random: {shape: [1, 3, 8, 8]}}\n"
    )
    (tmp_path / "specs" / "labels.yaml").write_text("cat: 0\ndog: 1\n")
    r = reprocheck("validate", "specs", cwd=tmp_path)
    assert r.code == 2 and "specs/labels.yaml:1: not a reprocheck spec" in r.err and "Traceback" not in r.err, r
    empty = tmp_path / "empty"
    empty.mkdir()
    r = reprocheck("run", str(empty))
    assert r.code == 2 and "a folder without spec files" in r.err, r


def test_check_by_name_and_by_spec_and_name(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.py").write_text(LINEAR)
        (tmp_path / folder / "model.yaml").write_text(LINEAR_SPEC)
    both = json.loads(reprocheck("matrix", "a", "b", "--check", "model", cwd=tmp_path).out)["include"]
    assert len(both) == 2  # a bare name selects it in every spec
    one = json.loads(reprocheck("matrix", "a", "b", "--check", "b/model.yaml:model", cwd=tmp_path).out)["include"]
    assert [e["spec"] for e in one] == ["b/model.yaml"]
    r = reprocheck("matrix", "a", "b", "--check", "c/model.yaml:model", cwd=tmp_path)
    assert r.code == 2 and "no check named 'c/model.yaml:model'" in r.err, r


# ---- every error of a spec at once


def test_an_unknown_key_does_not_hide_the_files_other_errors(tmp_path):
    spec = write_spec(
        tmp_path,
        "version: 1\nrunz: 3\ndevice: tpu\nmodel: {torchvision: resnet18}\ninput: {random: {shape: [1, 3, 8, 8]}}\n"
        "tolerance: {atol: -1}\n",
    )
    r = reprocheck("validate", str(spec))
    assert r.code == 2, r
    assert "runz: unknown key (did you mean 'runs'?)" in r.err and "device" in r.err and "tolerance.atol" in r.err, r


def test_a_bad_default_and_a_bad_entry_are_both_reported(tmp_path):
    spec = write_spec(
        tmp_path,
        "version: 1\nrecipe: {threads: 0}\ninput: {random: {shape: [1, 4]}}\n"
        "checks:\n  - name: a\n    model: {factory: 'x:y'}\n    runz: 2\n",
    )
    r = reprocheck("validate", str(spec))
    assert r.code == 2 and "recipe.threads" in r.err and "checks.0.runz" in r.err, r
    assert r.err.count("recipe.threads") == 1, r  # once, not once per entry that inherits it


# ---- JUnit XML


def test_junit_has_a_case_per_check_and_variant_with_failures_and_errors(spec_dir, tmp_path):
    write_spec(
        spec_dir,
        """version: 1
input: {random: {shape: [4, 8]}}
checks:
  - name: good
    model: {factory: "planted:seeded_init"}
    invariance: {batch: [4]}
  - name: entropy
    model: {factory: "planted:os_entropy"}
  - name: broken
    model: {factory: "planted:raises"}
""",
    )
    junit = tmp_path / "out" / "junit.xml"
    r = reprocheck("run", "spec.yaml", "--junit", str(junit), "-q", cwd=spec_dir)
    assert r.code == 3, r
    suites = ElementTree.parse(junit).getroot()
    assert suites.tag == "testsuites" and suites.get("tests") == "4"
    assert (suites.get("failures"), suites.get("errors"), suites.get("skipped")) == ("1", "1", "0")
    cases = {c.get("name"): c for c in suites.iter("testcase")}
    assert list(cases) == ["good", "good [batch=4]", "entropy", "broken"]
    assert all(c.get("classname") == "spec.yaml" for c in cases.values())
    assert cases["good"].find("failure") is None and cases["good [batch=4]"].find("failure") is None
    failure = cases["entropy"].find("failure")
    assert failure is not None and "is not reproducible" in failure.get("message")
    assert "differ between run 1 and run 2" in failure.text
    error = cases["broken"].find("error")
    assert error is not None and "planted failure in forward" in error.text


def test_junit_holds_no_character_xml_forbids(spec_dir, tmp_path):
    (spec_dir / "noisy.py").write_text(
        "import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
        "        raise ValueError('bell \\x07 and nul \\x00 and esc \\x1b[31m')\n"
        "def build():\n    return M()\n"
    )
    write_spec(spec_dir, "version: 1\nmodel: {factory: 'noisy:build'}\ninput: {random: {shape: [1, 2]}}\n")
    junit = tmp_path / "j.xml"
    r = reprocheck("run", "spec.yaml", "--junit", str(junit), "-q", cwd=spec_dir)
    assert r.code == 3, r
    error = ElementTree.parse(junit).getroot().find(".//error")  # parses: nothing XML 1.0 forbids
    assert error is not None and "bell" in error.text


def test_a_junit_target_that_is_a_symlink_is_refused_before_anything_runs(spec_dir, tmp_path):
    (tmp_path / "secret").write_text("keep")
    (tmp_path / "j.xml").symlink_to(tmp_path / "secret")
    r = reprocheck("run", "spec.yaml", "--junit", str(tmp_path / "j.xml"), cwd=spec_dir)
    assert r.code == 2 and "--junit" in r.err, r
    assert (tmp_path / "secret").read_text() == "keep"


# ---- validate fast and --deep; Hugging Face options, config keys and keyword inputs

GPT2 = """version: 1
model:
  huggingface:
    class: {cls}
    config: {{model_type: gpt2, {width}: 32, n_layer: 2, n_head: 2, vocab_size: 100}}
  kwargs: {kwargs}
input:
  kwargs:
    {name}: {{random: {{shape: [1, 8], dtype: int64, low: 0, high: 100}}}}
recipe: {{threads: 1}}
"""


def _gpt2(folder, cls="GPT2LMHeadModel", width="n_embd", kwargs="{attn_implementation: eager}", name="input_ids"):
    return write_spec(folder, GPT2.format(cls=cls, width=width, kwargs=kwargs, name=name))


def test_validate_is_fast_by_default_it_never_imports_torch(tmp_path):
    _gpt2(tmp_path, width="n_embed")
    poisoned = tmp_path / "poison"
    for name in ("torch", "transformers", "torchvision"):
        (poisoned / name).mkdir(parents=True)
        (poisoned / name / "__init__.py").write_text("raise SystemExit('imported ' + __name__)\n")
    env = {"PYTHONPATH": f"{poisoned}:{ROOT / 'runner'}"}
    r = reprocheck("validate", "spec.yaml", cwd=tmp_path, env=env)
    assert r.code == 0 and "ok  spec" in r.out and "validate --deep" in r.out, r


def test_validate_deep_and_run_catch_a_misspelt_config_key_and_keyword_input_with_their_lines(tmp_path):
    _gpt2(tmp_path, width="n_embed", name="input_idz")
    for command in (["validate", "--deep"], ["run"]):
        r = reprocheck(*command, "spec.yaml", cwd=tmp_path)
        assert r.code == 2, r
        assert (
            "spec.yaml:5: model.huggingface.config.n_embed: unknown key for GPT2Config (did you mean 'n_embd'?)"
            in r.err
        )
        assert "spec.yaml:9: input.kwargs.input_idz: GPT2LMHeadModel.forward takes no parameter 'input_idz'" in r.err
        assert "did you mean 'input_ids'?" in r.err and "[1/1]" not in r.err, r  # nothing ran


def test_an_auto_class_is_checked_against_its_concrete_model(tmp_path):
    _gpt2(tmp_path, cls="AutoModelForCausalLM", name="input_idz")
    r = reprocheck("validate", "--deep", "spec.yaml", cwd=tmp_path)
    assert r.code == 2 and "GPT2LMHeadModel.forward takes no parameter 'input_idz'" in r.err, r


def test_hugging_face_kwargs_reach_the_model_and_remote_code_is_refused(tmp_path):
    _gpt2(tmp_path)
    r = reprocheck("run", "spec.yaml", "-q", cwd=tmp_path)
    assert r.code == 0, r
    _gpt2(tmp_path, kwargs="{attn_implementation: no-such-attention}")  # it reaches from_config, which refuses it
    r = reprocheck("run", "spec.yaml", "-q", cwd=tmp_path)
    assert r.code == 3 and "no-such-attention" in r.out + r.err, r
    for kwargs in ("{trust_remote_code: true}", "{local_files_only: false}"):
        _gpt2(tmp_path, kwargs=kwargs)
        r = reprocheck("validate", "spec.yaml", cwd=tmp_path)
        key = kwargs[1:].split(":")[0]
        assert r.code == 2 and f"kwargs.{key} is refused" in r.err, r


def test_a_factory_models_keyword_inputs_are_checked_before_its_forward(tmp_path):
    (tmp_path / "kw.py").write_text(
        "import torch\nclass M(torch.nn.Module):\n    def forward(self, image, mask=None):\n"
        "        raise AssertionError('the forward must not be reached')\ndef build():\n    return M()\n"
    )
    write_spec(
        tmp_path, "version: 1\nmodel: {factory: 'kw:build'}\ninput: {kwargs: {imagee: {random: {shape: [2]}}}}\n"
    )
    r = reprocheck("run", "spec.yaml", cwd=tmp_path)
    assert r.code == 3, r
    assert (
        "input.kwargs.imagee: M.forward takes no parameter 'imagee' (did you mean 'image'? it takes: image, mask)"
        in r.out
    )
    assert "must not be reached" not in r.out + r.err, r


# ---- weights the model cache lacks, without a network

WEIGHTS = (
    "version: 1\nmodel: {torchvision: resnet18, kwargs: {weights: DEFAULT}}\ninput: {random: {shape: [1, 3, 16, 16]}}\n"
)
NO_NETWORK = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": ""}


def test_weights_not_in_the_cache_name_the_file_the_folder_and_the_fix(tmp_path):
    write_spec(tmp_path, WEIGHTS)
    (tmp_path / "models").mkdir()
    r = reprocheck("run", "spec.yaml", "--model-cache", "models", cwd=tmp_path, env=NO_NETWORK)
    assert r.code == 3, r
    line = next(x for x in r.out.splitlines() if "WeightsNotCached" in x)
    assert (
        f"resnet18-f37072fd.pth (ResNet18_Weights.IMAGENET1K_V1) is not in {tmp_path}/models/torch/hub/checkpoints"
        in line
    )
    assert "no network reaches the download" in line and "--model-cache DIR" in line and "weights: null" in line
    assert "Traceback" not in r.out + r.err and "| " not in r.out, r  # one line, no urllib traceback


def test_a_model_cache_one_folder_too_deep_is_named(tmp_path):
    write_spec(tmp_path, WEIGHTS)
    checkpoints = tmp_path / "models" / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "resnet18-f37072fd.pth").write_bytes(b"")
    r = reprocheck("run", "spec.yaml", "--model-cache", "models/torch", cwd=tmp_path, env=NO_NETWORK)
    assert r.code == 3, r
    assert f"(it is in {checkpoints}: give --model-cache the folder that holds torch/, not torch/ itself)" in r.out, r
