"""Models from the two big zoos, built inside the worker like any source: timm (`timm:`) and transformers
(`huggingface:` from a config), with keyword inputs (`input.kwargs`), Hugging Face caches compared as their
per-layer tensors, `ignore:`, and checks that cannot see (constant outputs). All through the real CLI, random init:
with the recipe every architecture must pass, with `seed_rngs: false` every one must fail."""

import json
import os
from pathlib import Path

import pytest

from helpers import ROOT, ZOOS, fill_model_cache, planted_spec, reprocheck, write_spec


def _run(spec: Path, tmp_path: Path, *extra: str):
    report = tmp_path / f"{spec.stem}.json"
    r = reprocheck("run", "-q", str(spec), "--report", str(report), *extra, cwd=spec.parent)
    return r, {c["name"]: c for c in json.loads(report.read_text())["checks"]} if report.exists() else {}


@pytest.mark.parametrize("zoo", ["timm", "transformers"])
def test_every_architecture_passes_with_the_recipe_and_fails_without_seeding(zoo, tmp_path):
    spec = ZOOS / f"{zoo}.yaml"
    r, checks = _run(spec, tmp_path)
    assert r.code == 0, r
    assert len(checks) >= 6 and {c["status"] for c in checks.values()} == {"pass"}
    unseeded = write_spec(
        tmp_path, spec.read_text().replace("recipe: {threads: 1}", "recipe: {threads: 1, seed_rngs: false}"), spec.name
    )
    r, checks = _run(unseeded, tmp_path)
    assert r.code == 1, r
    assert [n for n, c in checks.items() if c["status"] != "fail"] == [], r.out


def test_hugging_face_caches_are_compared_as_their_layer_tensors(tmp_path):
    r, checks = _run(ZOOS / "transformers.yaml", tmp_path, "--check", "gpt2", "--check", "t5", "--check", "bert")
    assert r.code == 0, r
    gpt2 = [o["path"] for o in checks["gpt2"]["outputs"]]
    assert "cache.layers.0.keys" in gpt2 and "cache.layers.1.values" in gpt2
    t5 = [o["path"] for o in checks["t5"]["outputs"]]
    assert "cache.cross_attention_cache.layers.0.keys" in t5
    # batch invariance over keyword inputs: input_ids and attention_mask cut and extended together
    assert {v["status"] for v in checks["bert"]["invariance"]} == {"pass"}
    assert len(checks["bert"]["invariance"]) == 2


def test_ignore_leaves_outputs_out_and_says_so(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "logits_and_cache", "ignore: [cache]\n")
    assert reprocheck("run", str(planted_spec(spec_dir, "logits_and_cache", name="plain.yaml"))).code == 1
    r = reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"), "--summary", str(tmp_path / "s.md"))
    assert r.code == 0, r
    assert "ignored (left out of every comparison): cache" in r.out
    assert json.loads((tmp_path / "r.json").read_text())["checks"][0]["ignored"] == ["cache"]
    assert "ignored (left out of every comparison): cache" in (tmp_path / "s.md").read_text()
    # goldens leave it out too
    golden = ("--baseline", str(spec_dir / "bl"))
    assert reprocheck("run", str(spec), *golden, "--update-baseline", cwd=spec_dir).code == 0
    assert reprocheck("run", str(spec), *golden, cwd=spec_dir).code == 0


def test_an_ignore_pattern_matching_nothing_is_an_error_at_its_line(spec_dir):
    spec = planted_spec(spec_dir, "logits_and_cache", "ignore: [past_key_values.*]\n")
    r = reprocheck("run", str(spec))
    assert r.code == 3 and "spec.yaml:6: ignore pattern 'past_key_values.*' matches no output" in r.out, r


def test_a_constant_output_is_called_blind_and_strict_fails_it(spec_dir, tmp_path):
    r = reprocheck("run", str(planted_spec(spec_dir, "zero_head")), "--report", str(tmp_path / "r.json"))
    assert r.code == 0, r
    assert "output is constant 0 in every run: this check cannot detect a change there" in r.out
    assert json.loads((tmp_path / "r.json").read_text())["checks"][0]["blind"]
    r = reprocheck("run", str(planted_spec(spec_dir, "zero_head", "strict: true\n", name="strict.yaml")))
    assert r.code == 1 and "blind (strict: true)" in r.out, r
    ok = reprocheck("run", str(planted_spec(spec_dir, "seeded_init", "strict: true\n", name="fine.yaml")))
    assert ok.code == 0 and "blind" not in ok.out, ok
    r = reprocheck("run", str(ZOOS / "vit-zero-head.yaml"))  # a real zoo model with a zero-initialised head
    assert r.code == 0 and "output is constant 0 in every run" in r.out, r


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("{timm: convnxt_atto}", "model.timm: unknown timm model 'convnxt_atto' (did you mean convnext_atto"),
        (
            "{timm: resnet18.a1_in1kk}",
            "unknown pretrained tag of resnet18 'resnet18.a1_in1kk' (did you mean resnet18.a1_in1k",
        ),
        (
            "{huggingface: {class: GPT2LMHeadModl, config: {model_type: gpt2}}}",
            "model.huggingface.class: unknown transformers class 'GPT2LMHeadModl' (did you mean GPT2LMHeadModel",
        ),
        (
            "{huggingface: {class: GPT2LMHeadModel, config: {model_type: gtp2}}}",
            "unknown model_type 'gtp2' (did you mean gpt2",
        ),
        ("{huggingface: {class: GPT2LMHeadModel}}", "give exactly one of config"),
        ("{huggingface: {class: GPT2LMHeadModel, config: {n_embd: 32}}}", "config needs model_type"),
    ],
)
def test_zoo_names_are_checked_before_anything_runs(tmp_path, model, fragment):
    spec = write_spec(tmp_path, f"version: 1\nmodel: {model}\ninput: {{random: {{shape: [1, 3, 8, 8]}}}}\n")
    r = reprocheck("validate", "--deep", str(spec))
    assert r.code == 2 and fragment in r.err and "Traceback" not in r.err, r


def test_a_timm_name_with_a_pretrained_tag_is_an_architecture(tmp_path):
    spec = write_spec(tmp_path, "version: 1\nmodel: {timm: resnet18.a1_in1k}\ninput: {random: {shape: [1, 3, 8, 8]}}\n")
    r = reprocheck("validate", str(spec))
    assert r.code == 0, r


def test_a_missing_zoo_library_is_a_one_line_install_hint(tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['timm'] = None\n")
    spec = write_spec(tmp_path, "version: 1\nmodel: {timm: resnet18}\ninput: {random: {shape: [1, 3, 8, 8]}}\n")
    r = reprocheck("run", str(spec), env={"PYTHONPATH": f"{ROOT / 'runner'}{os.pathsep}{hide}"})
    assert r.code == 2 and "timm is not installed where the runs are: pip install timm" in r.err, r


def test_pretrained_weights_come_from_the_model_cache_without_a_network(tmp_path):
    spec = ZOOS / "retinanet-default.yaml"
    r = reprocheck("run", "-q", str(spec), env={"TORCH_HOME": str(tmp_path / "empty")})
    assert r.code == 3, r  # no cache, no network: the weights cannot be had
    cache = fill_model_cache(tmp_path / "models")
    r = reprocheck("run", str(spec), "--model-cache", str(cache), "--report", str(tmp_path / "r.json"))
    assert r.code == 0, r
    dets = json.loads((tmp_path / "r.json").read_text())["checks"][0]["outputs"][0]["task"]["stats"]
    assert dets["expected"] > 0  # the weights' own transforms and a low threshold: there are detections
    r = reprocheck("run", str(spec), "--model-cache", str(tmp_path / "nowhere"))
    assert r.code == 2 and "--model-cache" in r.err and "no such folder" in r.err, r


def test_strict_on_the_command_line_and_the_blind_annotation(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "zero_head")
    r = reprocheck("run", str(spec), "--strict")
    assert r.code == 1 and "blind (strict: true)" in r.out, r
    out, summary = tmp_path / "out", tmp_path / "summary"
    out.write_text("")
    summary.write_text("")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    r = reprocheck("run", str(spec), "--github", env=env)
    assert r.code == 0, r
    assert "::warning file=" in r.out and "cannot see a change (constant outputs)" in r.out, r.out


def test_a_hugging_face_model_from_a_local_folder(tmp_path):
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(
        "bert", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100
    )
    transformers.BertModel(config).save_pretrained(tmp_path / "tiny-bert")
    spec = write_spec(
        tmp_path,
        "version: 1\nmodel: {huggingface: {class: AutoModel, path: tiny-bert}}\n"
        "input: {kwargs: {input_ids: {random: {shape: [2, 8], dtype: int64, low: 0, high: 100}}}}\n",
    )
    r = reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"))
    assert r.code == 0, r
    paths = [o["path"] for o in json.loads((tmp_path / "r.json").read_text())["checks"][0]["outputs"]]
    assert "last_hidden_state" in paths
    missing = write_spec(
        tmp_path,
        "version: 1\nmodel: {huggingface: {class: AutoModel, path: nowhere}}\ninput: {random: {shape: [2]}}\n",
        "m.yaml",
    )
    r = reprocheck("validate", str(missing))
    assert r.code == 2 and "folder not found" in r.err, r
