"""`reprocheck init`, through the real CLI: the spec it writes runs as written (and passes) for each model source,
its input fitted to the model; bad requests are exit 2 with the fix, and nothing is overwritten."""

import re
import shlex
import shutil

import pytest

from helpers import FIXTURES, ROOT, reprocheck

SOURCES = {
    "torchvision-classifier": ["--torchvision", "resnet18"],
    "torchvision-detector": ["--torchvision", "fasterrcnn_mobilenet_v3_large_320_fpn"],
    "timm": ["--timm", "resnet10t"],
    "huggingface-config": [
        "--huggingface",
        "AutoModelForCausalLM",
        *("--config", "model_type=gpt2", "--config", "n_embd=32", "--config", "n_layer=2"),
        *("--config", "n_head=2", "--config", "vocab_size=100"),
    ],
    "factory": ["--factory", "planted:seeded_init"],
}


@pytest.mark.parametrize("source", SOURCES)
def test_the_written_spec_runs_as_written_and_passes(tmp_path, source):
    shutil.copy(FIXTURES / "planted.py", tmp_path / "planted.py")
    r = reprocheck("init", *SOURCES[source], "-o", "spec.yaml", cwd=tmp_path)
    assert r.code == 0 and "wrote spec.yaml" in r.out, r
    text = (tmp_path / "spec.yaml").read_text()
    assert "deterministic_algorithms: true" in text and "# Written by `reprocheck init" in text
    run = reprocheck("run", "spec.yaml", "-q", cwd=tmp_path)
    assert run.code == 0 and "PASS" in run.out, (text, run)


def test_the_input_fits_the_model(tmp_path):
    r = reprocheck("init", "--torchvision", "vit_b_16", cwd=tmp_path)  # printed when no -o
    assert r.code == 0 and "random: {shape: [1, 3, 224, 224]}" in r.out, r
    r = reprocheck(
        "init", "--huggingface", "ViTModel", "--config", "model_type=vit", "--config", "image_size=32", cwd=tmp_path
    )
    assert r.code == 0 and "pixel_values: {random: {shape: [1, 3, 32, 32]}}" in r.out, r


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--torchvision", "resnet5"], "unknown torchvision model 'resnet5' (did you mean resnet50"),
        (["--huggingface", "GPT2Model"], "needs exactly one of --config"),
        (["--huggingface", "GPT2Model", "--config", "n_embd=32"], "--config needs model_type="),
        (["--huggingface", "GPT2Model", "--config", "n_embd"], "write KEY=VALUE"),
        (["--timm", "resnet10t", "--config", "a=1"], "go with --huggingface only"),
        (["--factory", "nowhere:build"], "No module named 'nowhere'"),
    ],
)
def test_bad_requests_are_exit_2_with_the_fix(tmp_path, args, fragment):
    r = reprocheck("init", *args, "-o", "spec.yaml", cwd=tmp_path)
    assert r.code == 2 and fragment in r.err and "Traceback" not in r.err, r
    assert not (tmp_path / "spec.yaml").exists()


def test_an_existing_file_is_never_overwritten_without_force(tmp_path):
    (tmp_path / "spec.yaml").write_text("mine\n")
    r = reprocheck("init", "--torchvision", "resnet18", "-o", "spec.yaml", cwd=tmp_path)
    assert r.code == 2 and "--force" in r.err, r
    assert (tmp_path / "spec.yaml").read_text() == "mine\n"
    assert reprocheck("init", "--torchvision", "resnet18", "-o", "spec.yaml", "--force", cwd=tmp_path).code == 0
    assert (tmp_path / "spec.yaml").read_text().startswith("# Written by")


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("Then, with the venv's `reprocheck`") :].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("reprocheck ")]


def test_every_concrete_quick_start_command_does_what_its_comment_says(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    ran = 0
    for line in _readme_commands():
        command, _, comment = line.partition("#")
        args = shlex.split(command)[1:]
        if any(a.isupper() or "..." in a or a.startswith("[") for a in args) or ">" in args:
            continue  # a placeholder (SPEC, ENV, [--check NAME]) or a redirection: a form, not a command
        r = reprocheck(*args, cwd=tmp_path)
        expected = 1 if "exit 1" in comment else 0
        assert r.code == expected, (line, r)
        ran += 1
    assert ran >= 5, _readme_commands()


def test_the_walkthrough_runs_as_the_readme_says(tmp_path):
    (tmp_path / "my_models.py").write_text(
        "import torch\n\ndef build():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())\n"
    )
    text = (ROOT / "README.md").read_text()
    steps = text[text.index("### Check your own model") :].split("\n\n")[0:5]
    commands = [c for s in steps for c in re.findall(r"`(reprocheck (?:init --factory|validate|run) [^`]*)`", s)]
    assert commands[:3] == [
        "reprocheck init --factory my_models:build -o my-model.yaml",
        "reprocheck validate --deep my-model.yaml",
        "reprocheck run my-model.yaml",
    ], commands
    for command in commands[:3]:
        r = reprocheck(*shlex.split(command)[1:], cwd=tmp_path)
        assert r.code == 0, (command, r)
    assert "random: {shape: [1, 3, 224, 224]}" in (tmp_path / "my-model.yaml").read_text()


def test_an_output_that_is_a_symlink_is_never_written_through(tmp_path):
    (tmp_path / "spec.yaml").symlink_to(tmp_path / "elsewhere.yaml")  # dangling: exists() says no
    r = reprocheck("init", "--torchvision", "resnet18", "-o", "spec.yaml", cwd=tmp_path)
    assert r.code == 2 and "symbolic link" in r.err, r
    assert not (tmp_path / "elsewhere.yaml").exists()
