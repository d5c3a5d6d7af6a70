"""The model as it is deployed: compile, dtype and autocast variants, graded against the check's own run 1 with the
float64 reference (as `upgrade` grades stacks), through the real CLI on real torch.compile (inductor and aot_eager).
The inductor cases compile for real (about 10-15 s each on this machine's CPU)."""

import json

import jsonschema

from helpers import planted_spec, reprocheck

CLASSIFY = "compare:\n  outputs:\n    logits: {as: classification}\n"


def _report(tmp_path, *args, env=None):
    path = tmp_path / "r.json"
    r = reprocheck("run", *args, "--report", str(path), env=env)
    report = json.loads(path.read_text()) if path.exists() else None
    if report is not None:
        jsonschema.validate(report, json.loads(reprocheck("schema", "--report").out))
    return r, report


def test_a_small_model_compiled_with_inductor_passes_and_its_compiled_runs_agree(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "small_mlp", "invariance: {compile: true}\n")
    temp = tmp_path / "system-temp"  # inductor's caches and precompiled headers must stay in the runs' folders
    temp.mkdir()
    r, report = _report(tmp_path, str(spec), env={"TMPDIR": str(temp)})
    # importing torch._dynamo makes an empty torchinductor_<user> there in any run; nothing may be written in it
    assert not [str(p) for p in temp.rglob("*") if not p.is_dir()]
    assert r.code == 0, r
    assert "invariance compile=inductor: reaches require noise against run 1 (eager): 1 identical" in r.out
    assert "its 2 compiled runs agree" in r.out and "inductor deterministic and fallback_random set" in r.out
    v = report["checks"][0]["invariance"][0]
    assert (v["kind"], v["variant"], v["status"], v["require"]) == ("compile", "inductor", "pass", "noise")
    assert v["compiled_reproducible"] is True and len(v["compiled_runs"]) == 1
    assert v["compiled"]["settings"] == {"compile_threads": 1, "deterministic": True, "fallback_random": True}
    assert v["compiled"]["graph_breaks"] == 0 and v["compiled"]["seconds"] > 0
    assert [g["grade"] for g in v["grades"]] == ["identical"]
    # each compiled run compiled afresh, into its own cache inside its own run folder (kept with --keep)
    assert "compiling" in r.err


def test_a_model_whose_compiled_path_computes_something_else_fails_as_changed(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "compiled_differs", "invariance: {compile: {backend: aot_eager}}\n")
    r, report = _report(tmp_path, str(spec), "--summary", str(tmp_path / "s.md"), "--junit", str(tmp_path / "j.xml"))
    assert r.code == 1, r
    assert "invariance: compile=aot_eager differ" in r.out
    assert (
        "invariance compile=aot_eager: 1 of 1 output below require noise against run 1 (eager): output (changed)"
        in r.out
    )
    assert "max abs diff 0.5" in r.out and "farther from the float64 reference than run 1 (eager)" in r.out
    assert "remedy: the compiled model computes something else than eager" in r.out
    v = report["checks"][0]["invariance"][0]
    assert v["status"] == "fail" and v["grades"][0]["grade"] == "changed" and v["grades"][0]["accepted"] is False
    assert v["compiled_reproducible"] is True  # it is reproducible, only not what eager computes
    assert "invariance compile=aot\\_eager: 1 of 1 output below require noise" in (tmp_path / "s.md").read_text()
    assert 'name="spec [compile=aot_eager]"' in (tmp_path / "j.xml").read_text()


def test_a_compiled_nudge_within_the_compile_tolerance_passes_only_with_require_task(spec_dir, tmp_path):
    base = "invariance:\n  compile: {backend: aot_eager}\n  tolerance: {compile: {atol: 1.0e-3}}\n"
    r = reprocheck("run", str(planted_spec(spec_dir, "compiled_nudged", base)))
    # require noise: the kind's tolerance makes it task-equivalent, which only `require: task` accepts
    assert r.code == 1 and "below require noise against run 1 (eager): output (task-equivalent)" in r.out, r
    r = reprocheck("run", str(planted_spec(spec_dir, "compiled_nudged", base + "  require: task\n", name="t.yaml")))
    assert r.code == 0, r
    assert "reaches require task against run 1 (eager): 1 task-equivalent" in r.out
    assert "within the compile tolerance (atol=0.001, rtol=0)" in r.out
    # the tolerance of another kind does not accept it
    other = base.replace("{compile: {atol", "{dtype: {atol") + "  require: task\n"
    assert reprocheck("run", str(planted_spec(spec_dir, "compiled_nudged", other, name="o.yaml"))).code == 1


def test_bfloat16_and_autocast_pass_under_a_classification_rule_and_fail_without_saying_what_to_set(spec_dir, tmp_path):
    inv = "invariance: {dtype: [bfloat16], autocast: [bfloat16]}\n"
    r, _ = _report(tmp_path, str(planted_spec(spec_dir, "wide_margin_classifier", inv)))
    assert r.code == 1, r
    for label in ("dtype=bfloat16", "autocast=bfloat16"):
        assert f"invariance {label}: 1 of 1 output below require noise against run 1 (eager): logits (changed)" in r.out
    assert "a `compare:` rule (classification, detection, segmentation)" in r.out
    assert "`require: task` with a tolerance for this kind (`invariance.tolerance.dtype: {atol: ...}`)" in r.out
    assert "`invariance.tolerance.autocast: {atol: ...}`" in r.out
    r = reprocheck("run", str(planted_spec(spec_dir, "wide_margin_classifier", inv + CLASSIFY, name="c.yaml")))
    assert r.code == 0, r
    assert "invariance dtype=bfloat16: reaches require noise against run 1 (eager): 1 task-equivalent" in r.out
    assert "invariance autocast=bfloat16: reaches require noise against run 1 (eager): 1 task-equivalent" in r.out
    # require: identical accepts only bitwise: the rule no longer helps
    strict = inv.replace("}\n", ", require: identical}\n") + CLASSIFY
    assert reprocheck("run", str(planted_spec(spec_dir, "wide_margin_classifier", strict, name="i.yaml"))).code == 1


def test_float64_is_within_noise_of_the_check(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "small_mlp", "invariance: {dtype: [float64]}\n")))
    assert r.code == 0, r
    assert "invariance dtype=float64: reaches require noise against run 1 (eager): 1 within noise" in r.out


def test_graph_breaks_are_counted_not_errors_and_fullgraph_makes_them_one(spec_dir, tmp_path):
    r, report = _report(
        tmp_path, str(planted_spec(spec_dir, "graph_break", "invariance: {compile: {backend: aot_eager}}\n"))
    )
    assert r.code == 0, r
    v = report["checks"][0]["invariance"][0]
    assert v["compiled"]["graph_breaks"] >= 1 and v["compiled"]["graphs"] >= 2
    assert "1 graph break" in r.out or "graph breaks" in r.out
    full = "invariance: {compile: {backend: aot_eager, fullgraph: true}}\n"
    r = reprocheck("run", str(planted_spec(spec_dir, "graph_break", full, name="f.yaml")))
    assert r.code == 3, r
    assert "raised while compiling the model" in r.out and "fullgraph: true makes a graph break an error" in r.out


def test_a_compile_that_cannot_run_is_exit_3_with_the_fix(spec_dir):
    spec = planted_spec(spec_dir, "small_mlp", "invariance: {compile: true}\n")
    r = reprocheck("run", str(spec), env={"CXX": "/nonexistent/g++"})
    assert r.code == 3, r
    failed = "invariance compile=inductor: the variant's run failed: raised while compiling the model"
    assert f"{failed}: torch.compile(backend='inductor') failed" in r.out
    assert "install a C++ compiler (g++)" in r.out and "backend: aot_eager" in r.out
    assert "Traceback" not in r.out + r.err
    r = reprocheck(
        "run", str(planted_spec(spec_dir, "small_mlp", "invariance: {compile: {backend: nosuch}}\n", name="b.yaml"))
    )
    assert r.code == 3, r
    assert "torch.compile(backend='nosuch') failed" in r.out


def test_bad_values_are_exit_2_at_their_line(spec_dir):
    for extra, words in (
        ("invariance: {dtype: [float8]}\n", "invariance.dtype.0"),
        ("invariance: {autocast: [float64]}\n", "invariance.autocast.0"),
        ("invariance: {compile: true, require: exact}\n", "invariance.require"),
        ("invariance: {compile: {mode: fastest}}\n", "invariance.compile.mode"),
        ("invariance: {compile: {backend: 'rm -rf'}}\n", "invariance.compile.backend"),
        ("invariance: {compile: true, reference: none}\n", "reference: none"),
        ("invariance: {dtype: [bfloat16, bfloat16]}\n", "each dtype once"),
        ("invariance: {compile: true, tolerance: {gpu: {atol: 1}}}\n", "invariance.tolerance.gpu"),
    ):
        r = reprocheck("validate", str(planted_spec(spec_dir, "small_mlp", extra)))
        assert r.code == 2, (extra, r)
        assert words in r.err and "spec.yaml:" in r.err and "Traceback" not in r.err, (extra, r.err)


def test_invariance_selects_the_new_kinds(spec_dir):
    spec = planted_spec(spec_dir, "compiled_differs", "invariance: {compile: {backend: aot_eager}, dtype: [float64]}\n")
    r = reprocheck("run", str(spec), "--invariance", "dtype")
    assert r.code == 0 and "compile=" not in r.out and "dtype=float64" in r.out, r
    assert reprocheck("run", str(spec), "--invariance", "compile").code == 1


def test_a_model_that_poisons_its_float64_reference_is_not_within_noise(spec_dir):
    # A bound relative to the reference would excuse anything if the model computed something else in float64.
    r = reprocheck(
        "run", str(planted_spec(spec_dir, "poisons_its_reference", "invariance: {compile: {backend: aot_eager}}\n"))
    )
    assert r.code == 1, r
    assert "the float64 reference is far from run 1 (eager) as well" in r.out
    r = reprocheck(
        "run", str(planted_spec(spec_dir, "poisons_its_reference", "invariance: {dtype: [float64]}\n", name="d.yaml"))
    )
    assert r.code == 1, r  # the float64 variant is that very computation: it cannot pass by agreeing with it


def test_a_model_that_never_compiles_cannot_pass_the_compile_variant(spec_dir):
    r = reprocheck(
        "run", str(planted_spec(spec_dir, "never_compiles", "invariance: {compile: {backend: aot_eager}}\n"))
    )
    assert r.code == 3, r
    assert "the compiled model ran no compiled graph" in r.out and "Traceback" not in r.out


def test_a_float8_output_is_graded_not_a_crash(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "float8_output", "invariance: {compile: {backend: aot_eager}}\n")))
    assert r.code == 1, r
    assert "output (changed)" in r.out


def test_a_kinds_own_tolerance_applies_to_batch_and_the_checks_is_the_fallback(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "batch_dependent", "invariance: {batch: [2]}\n")))
    assert r.code == 1, r
    own = "invariance: {batch: [2], tolerance: {batch: {atol: 100}}}\n"
    assert reprocheck("run", str(planted_spec(spec_dir, "batch_dependent", own, name="o.yaml"))).code == 0
    # an entry for another kind only: the check's own tolerance still holds for this one
    other = "tolerance: {atol: 100}\ninvariance: {batch: [2], tolerance: {dtype: {atol: 1.0e-3}}}\n"
    assert reprocheck("run", str(planted_spec(spec_dir, "batch_dependent", other, name="c.yaml"))).code == 0
