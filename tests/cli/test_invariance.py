"""Invariance across CPU thread counts: run-to-run deterministic models that a different machine would change."""

import json

import jsonschema
import pytest

from helpers import EXAMPLES, FIXTURES, ROOT, planted_spec, reprocheck, write_spec
from reprocheck.host.checks import invariance
from reprocheck.host.launcher import launch

INVARIANT = "recipe: {threads: 2}\ninvariance: {threads: [1, 4]}\n"


def test_a_thread_dependent_model_passes_run_to_run_and_fails_when_asked(spec_dir, tmp_path):
    plain = planted_spec(spec_dir, "thread_dependent", "recipe: {threads: 2}\n", name="plain.yaml")
    assert reprocheck("run", str(plain)).code == 0  # deterministic at one thread count
    spec = planted_spec(spec_dir, "thread_dependent", INVARIANT)
    keep = tmp_path / "kept"
    r = reprocheck(
        "run", str(spec), "--report", str(tmp_path / "r.json"), "--summary", str(tmp_path / "s.md"), "--keep", str(keep)
    )  # fmt: skip
    assert r.code == 1, r
    assert "invariance: threads=1, threads=4 differ" in r.out
    assert "invariance threads=1: 1 of 2 outputs differ between run 1 (2 threads) and 1 thread" in r.out
    assert "remedy: the outputs depend on the CPU thread count" in r.out
    # Down to the op: a traced run at 2 threads and one at each variant's count, compared position by position.
    # The planted sum is computed outside torch: the first op whose output differs is the tensor made of it.
    line = next(i for i, t in enumerate((FIXTURES / "planted.py").read_text().splitlines(), 1) if "np.cumsum(np.a" in t)
    op = "first differing op: aten::lift_fresh in the model's own forward, its 7th op (op 7 of the forward) at "
    for n in (1, 4):
        said = r.out.split(f"invariance threads={n}:", 1)[1].split("remedy:", 1)[0]
        assert op in said and f"planted.py:{line} (out0: norm " in said, r
    report = json.loads((tmp_path / "r.json").read_text())
    schema = json.loads(reprocheck("schema", "--report").out)
    jsonschema.validate(report, schema)
    variants = report["checks"][0]["invariance"]
    assert [(v["variant"], v["reference"], v["status"]) for v in variants] == [("1", "2", "fail"), ("4", "2", "fail")]
    outs = {o["path"]: o["status"] for o in variants[0]["outputs"]}
    assert outs == {"total": "values", "scaled": "match"}
    change = variants[1]["first_change"]
    assert change["op"]["op"] == "aten::lift_fresh" and change["op"]["location"].endswith(f"planted.py:{line}")
    assert "bits differ" in change["op"]["detail"] and variants[1]["first_change_note"] == ""
    md = (tmp_path / "s.md").read_text()
    assert "aten::lift\\_fresh" in md and "**Invariance**" in md
    # The traces are evidence read once: no trace file is left, even in a kept folder.
    assert keep.is_dir() and not list(keep.rglob("trace*"))


def test_a_thread_independent_model_passes(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "thread_independent", INVARIANT)))
    assert r.code == 0, r
    assert "invariance threads=1: matches run 1 (2 threads) (2 outputs compared)" in r.out


def test_the_invariance_tolerance_decides(spec_dir):
    loose = INVARIANT.replace("[1, 4]}", "[1, 4], tolerance: {rtol: 1.0e-5}}")
    r = reprocheck("run", str(planted_spec(spec_dir, "thread_dependent", loose)))
    assert r.code == 0, r  # the sums differ by a few ulp: 1e-5 relative accepts them
    # ... because both variants ran and matched within it (the same variants differ without it, test above).
    for n in (1, 4):
        assert f"invariance threads={n}: matches run 1 (2 threads) (2 outputs compared)" in r.out, r


def test_invariance_none_skips_and_a_kind_selects(spec_dir):
    spec = planted_spec(spec_dir, "thread_dependent", INVARIANT)
    r = reprocheck("run", str(spec), "--invariance", "none")
    assert r.code == 0 and "invariance" not in r.out, r
    assert reprocheck("run", str(spec), "--invariance", "threads").code == 1
    assert reprocheck("run", str(spec), "--invariance", "batch").code == 0  # declares no batch variant
    r = reprocheck("run", str(spec), "--invariance", "gpu")
    assert r.code == 2 and "invalid choice" in r.err


def test_a_variant_that_crashes_is_a_run_failure(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "fails_with_one_thread", INVARIANT)
    r = reprocheck(
        "run",
        str(spec),
        "--github",
        env={
            "GITHUB_OUTPUT": str(tmp_path / "o"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
            "GITHUB_WORKSPACE": str(spec_dir),
        },
    )
    assert r.code == 3, r
    assert "invariance threads=1: the variant's run failed: raised while running the model" in r.out
    line = next(x for x in r.out.splitlines() if x.startswith("::error "))
    assert "file=spec.yaml,line=7," in line and "could not run at threads=1" in line  # at the `invariance:` line


def test_the_launcher_knows_every_kind_and_the_runs_bounds():
    assert set(launch.INVARIANCE) == {"all", "none", *invariance.KINDS}
    from reprocheck.spec.types import MAX_RUNS

    assert launch.RUNS == (2, MAX_RUNS)  # the launcher cannot import the spec: its bounds are kept equal here
    assert "INPUT_INVARIANCE: ${{ inputs.invariance }}" in (ROOT / "action.yml").read_text()


BATCH = "invariance: {batch: [1, 8]}\n"


def test_a_batch_dependent_model_passes_run_to_run_and_fails_when_asked(spec_dir, tmp_path):
    plain = planted_spec(spec_dir, "batch_dependent", name="plain.yaml")
    assert reprocheck("run", str(plain)).code == 0
    spec = planted_spec(spec_dir, "batch_dependent", BATCH)
    r = reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"))
    assert r.code == 1, r
    assert "invariance batch=1: 1 of 1 output differ between run 1 (batch of 4) and batch of 1" in r.out
    assert "invariance batch=8: 1 of 1 output differ between run 1 (batch of 4) and batch of 8" in r.out
    assert "a sample's outputs depend on the batch it is in" in r.out
    variants = json.loads((tmp_path / "r.json").read_text())["checks"][0]["invariance"]
    assert [(v["kind"], v["variant"], v["reference"], v["status"]) for v in variants] == [
        ("batch", "1", "4", "fail"),
        ("batch", "8", "4", "fail"),
    ]
    # Compared on the samples both runs share: 1 of the check's 4 at batch 1, all 4 at batch 8.
    assert [v["outputs"][0]["shape"] for v in variants] == [[1, 8], [4, 8]]


def test_a_batch_independent_model_passes_and_names_what_was_left_out(spec_dir, tmp_path):
    r = reprocheck("run", str(planted_spec(spec_dir, "batch_independent", BATCH)), "--report", str(tmp_path / "r.json"))
    assert r.code == 0, r
    assert (
        "invariance batch=8: matches run 1 (batch of 4) (1 output compared; not per-sample, so left out: total)"
        in r.out
    )
    variants = json.loads((tmp_path / "r.json").read_text())["checks"][0]["invariance"]
    assert all(v["left_out"] == ["total"] for v in variants)


def test_padding_in_an_image_list_is_caught(spec_dir):
    # One image as a list (the detection form); at batch 2 the extra image is larger, so the first is padded.
    spec = planted_spec(spec_dir, "pads_batch", "  format: list\ninvariance: {batch: [2]}\n", shape="[1, 3, 32, 40]")
    r = reprocheck("run", str(spec))
    assert r.code == 1, r
    assert "0.mean: 1 of 1 values (100.0%) differ between run 1 (batch of 1) and batch of 2" in r.out


def test_an_input_without_a_batch_is_a_clear_variant_failure(spec_dir):
    # Keyword arguments (an .npz) whose tensors disagree on dim 0 have no batch to vary: the variant says so, exit 3.
    import numpy as np

    np.savez(spec_dir / "x.npz", x=np.ones((4, 8), dtype=np.float32), y=np.ones((3, 8), dtype=np.float32))
    text = f'version: 1\nmodel: {{factory: "planted:two_inputs"}}\ninput: {{tensor: x.npz}}\n{BATCH}'
    r = reprocheck("run", str(write_spec(spec_dir, text)))
    assert r.code == 3, r
    # Known from the check's own runs: the variant is refused before it runs, never "raised while building the input"
    assert "invariance batch=1: not run: the input has no batch to vary: batch invariance needs one tensor" in r.out


def test_the_invariance_example_runs_every_variant(tmp_path):
    # What it finds depends on the CPU's kernels (see the README); that every variant runs and any difference is a
    # kernel-sized one, not cross-sample leakage, does not.
    r = reprocheck("run", str(EXAMPLES / "invariance.yaml"), "--report", str(tmp_path / "r.json"))
    assert r.code in (0, 1), r
    variants = json.loads((tmp_path / "r.json").read_text())["checks"][0]["invariance"]
    assert [(v["kind"], v["variant"]) for v in variants] == [
        ("batch", "1"),
        ("batch", "8"),
        ("threads", "1"),
        ("threads", "4"),
    ]
    assert all(v["status"] in ("pass", "fail") for v in variants)
    assert all(o["max_abs_diff"] < 1e-4 for v in variants for o in v["outputs"])


def test_a_device_that_is_not_here_is_skipped_not_passed(spec_dir, tmp_path):
    # This machine has no GPU (the tests run on CPU); on one that has, tests/gpu/run_gpu_checks.sh runs the variant.
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the variant would run (see tests/gpu/run_gpu_checks.sh)")
    spec = planted_spec(spec_dir, "thread_independent", "invariance: {device: cuda}\n")
    r = reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"))
    assert r.code == 0, r
    assert "invariance: device=cuda skipped (not passed)" in r.out
    assert "invariance device=cuda: skipped, not passed: cuda is not available on this machine" in r.out
    (v,) = json.loads((tmp_path / "r.json").read_text())["checks"][0]["invariance"]
    assert (v["kind"], v["variant"], v["reference"], v["status"]) == ("device", "cuda", "cpu", "skipped")
    r = reprocheck("run", str(spec), "--require-devices")
    assert r.code == 3 and "invariance device=cuda: the variant's run failed" in r.out, r


def test_the_float64_reference_says_which_side_is_off(spec_dir, tmp_path):
    # The reference runs at the check's own thread count, so it agrees with run 1 and the 1-thread side is off.
    extra = "recipe: {threads: 2}\ninvariance: {threads: [1], reference: float64}\n"
    r = reprocheck("run", str(planted_spec(spec_dir, "thread_dependent", extra)), "--report", str(tmp_path / "r.json"))
    assert r.code == 1, r
    assert "total: 1 thread is 26 from the float64 reference, run 1 (2 threads) 0: the 1 thread side is off" in r.out
    (v,) = json.loads((tmp_path / "r.json").read_text())["checks"][0]["invariance"]
    assert v["reference_distances"] == [{"path": "total", "expected": 0.0, "obtained": 26.0}]
    # reference: auto (the default) runs it for device variants only.
    r = reprocheck("run", str(planted_spec(spec_dir, "thread_dependent", extra.replace("float64", "auto"))))
    assert r.code == 1 and "float64 reference" not in r.out


def test_the_float64_reference_for_a_batch_variant(spec_dir, tmp_path):
    # x - mean(x): the float64 run at the check's batch agrees with run 1 to float32 rounding; the batch of one
    # is off by the whole batch mean.
    extra = "invariance: {batch: [1], reference: float64}\n"
    r = reprocheck("run", str(planted_spec(spec_dir, "batch_dependent", extra)), "--report", str(tmp_path / "r.json"))
    assert r.code == 1, r
    assert "the batch of 1 side is off" in r.out
    (v,) = json.loads((tmp_path / "r.json").read_text())["checks"][0]["invariance"]
    (d,) = v["reference_distances"]
    assert d["path"] == "output" and d["obtained"] > 1000 * d["expected"]


@pytest.mark.parametrize("factory", ["pooled_only", "transposed"])
def test_a_batch_variant_that_compares_nothing_is_an_error_not_a_pass(spec_dir, tmp_path, factory):
    r = reprocheck("run", str(planted_spec(spec_dir, factory, BATCH)), "--report", str(tmp_path / "r.json"))
    assert r.code == 3, r
    assert "batch variant: no output is per-sample" in r.out and "nothing was compared" in r.out
    variants = json.loads((tmp_path / "r.json").read_text())["checks"][0]["invariance"]
    assert {v["status"] for v in variants} == {"error"}


def test_a_check_whose_output_holds_no_tensor_is_an_error(spec_dir, tmp_path):
    r = reprocheck("run", str(planted_spec(spec_dir, "returns_nothing")), "--summary", str(tmp_path / "s.md"))
    assert r.code == 3 and "holds no tensor to compare" in r.out, r
    assert "holds no tensor to compare" in (tmp_path / "s.md").read_text()


def test_a_batch_variant_beyond_the_input_size_limit_is_refused_before_any_run(spec_dir):
    spec = planted_spec(spec_dir, "seeded_init", "invariance: {batch: [4096]}\n", shape="[1, 3, 1024, 1024]")
    r = reprocheck("run", str(spec))
    assert r.code == 2 and "invariance.batch 4096 makes the input" in r.err and "Traceback" not in r.err, r


def test_later_runs_outputs_are_kept_only_with_keep(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "seeded_init", "runs: 3\n")
    assert reprocheck("run", str(spec), "--keep", str(tmp_path / "k")).code == 0
    assert len(list((tmp_path / "k").rglob("outputs.pt"))) == 3


WHO_RAN = """import os
from pathlib import Path

import torch


class Scale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(8))

    def forward(self, x):
        with open(Path(__file__).with_name("parents.txt"), "a") as f:
            f.write(f"{os.getppid()} {x.dtype} {x.shape[0]} {torch.get_num_threads()}\\n")
        return x * self.w + (1e-3 if x.shape[0] == 3 else 0.0)  # per sample, but off in a batch of 3


def make():
    return Scale()
"""


@pytest.mark.parametrize("isolation", ["fork", "spawn"])
def test_batch_device_and_reference_variants_fork_from_the_checks_own_worker(tmp_path, isolation):
    # Each forward records its parent process: in fork mode the check's runs, its batch variants and its float64
    # reference are all children of the check's one zygote (torch imported once); a threads variant gets a
    # fresh worker (its thread count is read from the environment when torch is imported). In spawn mode each is
    # its own interpreter under reprocheck. Either way the verdicts are the same.
    (tmp_path / "who.py").write_text(WHO_RAN)
    spec = write_spec(
        tmp_path,
        """version: 1
model: {factory: "who:make"}
input: {random: {shape: [4, 8]}}
recipe: {threads: 2}
invariance: {batch: [1, 3], threads: [1], device: cpu, reference: float64}
""",
    )
    r = reprocheck("run", str(spec), "--isolation", isolation, "--report", str(tmp_path / "r.json"))
    assert r.code == 1, r
    variants = json.loads((tmp_path / "r.json").read_text())["checks"][0]["invariance"]
    assert [(v["kind"], v["variant"], v["status"]) for v in variants] == [
        ("batch", "1", "pass"),
        ("batch", "3", "fail"),
        ("threads", "1", "pass"),
        ("device", "cpu", "pass"),
    ]
    rows = [line.split() for line in (tmp_path / "parents.txt").read_text().splitlines()]
    # runs 1-2, batch 1, batch 3 (differs: so the float64 reference runs, at the check's batch), threads 1, device cpu
    assert [(int(r[2]), r[1], int(r[3])) for r in rows] == [
        (4, "torch.float32", 2),
        (4, "torch.float32", 2),
        (1, "torch.float32", 2),
        (3, "torch.float32", 2),
        (4, "torch.float64", 2),
        (4, "torch.float32", 1),
        (4, "torch.float32", 2),
    ], rows
    parents = [r[0] for r in rows]
    if isolation == "fork":
        assert [p == parents[0] for p in parents] == [True] * 5 + [False, True], rows
    else:
        assert len(set(parents)) == 1  # every run an interpreter started by reprocheck itself
