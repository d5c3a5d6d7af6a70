"""Golden baselines: round trip, drift with a named cause, the missing-baseline lifecycle, atomic writes."""

import json
import signal
import subprocess
import sys

import torch

from helpers import ROOT, planted_spec, reprocheck
from reprocheck import golden_result
from reprocheck.worker import goldens
from reprocheck.worker.outputs import flatten


def run(spec, bl, *extra, env=None, report=None):
    # From the spec's folder: goldens are laid out by the spec's path relative to the current folder.
    args = ["run", str(spec), "--baseline", str(bl), *extra]
    if report:
        args += ["--report", str(report)]
    return reprocheck(*args, env=env, cwd=spec.parent)


def test_round_trip_keeps_structure_dtypes_and_metadata(tmp_path):
    out = flatten(
        {
            "boxes": torch.rand(3, 4),
            "labels": torch.tensor([1, 2, 3]),
            "mask": torch.tensor([True, False]),
            "half": torch.ones(2, dtype=torch.bfloat16),
            "name": "cat",
            "nested": [torch.zeros(1), 2.5],
        }
    )
    path = tmp_path / "g.safetensors"
    goldens.save(out, path, check="c", config_hash="abc", fingerprint={"torch": "x", "gpus": [{"name": "A"}]})
    back, info = goldens.load(path)
    assert back.tree == out.tree
    assert all(torch.equal(back.tensors[k], v) and back.tensors[k].dtype == v.dtype for k, v in out.tensors.items())
    assert info["config_hash"] == "abc" and info["fingerprint"]["gpus"][0]["name"] == "A" and info["created"]
    assert path.read_bytes()[8:9] == b"{"  # safetensors: a JSON header, no pickle


def test_missing_baseline_is_exit_2_before_any_run_with_the_command_that_writes_it(spec_dir):
    spec = planted_spec(spec_dir, "loaded_weights")
    r = run(spec, spec_dir / "bl")
    assert r.code == 2, r  # never exit 1: with fail-on-mismatch false a missing golden would read as green
    assert "has no golden at" in r.err and "--update-baseline" in r.err and "[1/1]" not in r.err + r.out
    assert not (spec_dir / "bl" / "spec.yaml").exists()


def test_update_then_match(spec_dir):
    spec = planted_spec(spec_dir, "loaded_weights")
    assert run(spec, spec_dir / "bl", "--update-baseline").code == 0
    golden = spec_dir / "bl" / "spec.yaml" / "spec.safetensors"
    assert golden.exists() and not (spec_dir / "bl" / "spec.yaml" / "spec.obtained.safetensors").exists()
    r = run(spec, spec_dir / "bl", report=spec_dir / "r.json")
    assert r.code == 0, r
    assert json.loads((spec_dir / "r.json").read_text())["checks"][0]["baseline"]["status"] == "match"


def test_nondeterministic_check_never_becomes_a_baseline(spec_dir):
    spec = planted_spec(spec_dir, "os_entropy")
    r = run(spec, spec_dir / "bl", "--update-baseline")
    assert r.code == 1 and "baseline not written" in r.out
    assert not (spec_dir / "bl" / "spec.yaml" / "spec.safetensors").exists()


def test_drift_from_a_nudged_weight_is_caught_and_the_obtained_file_kept(spec_dir):
    spec = planted_spec(spec_dir, "nudged")
    assert run(spec, spec_dir / "bl", "--update-baseline").code == 0
    r = run(spec, spec_dir / "bl", env={"PLANTED_NUDGE": "1e-3"}, report=spec_dir / "r.json")
    assert r.code == 1, r
    assert "drifted from the baseline" in r.out and "the baseline and run 1" in r.out
    b = json.loads((spec_dir / "r.json").read_text())["checks"][0]["baseline"]
    assert b["status"] == "drift" and b["config_changed"] is False
    assert b["outputs"][0]["max_abs_diff"] > 0
    assert (spec_dir / "bl" / "spec.yaml" / "spec.obtained.safetensors").exists()
    # A per-check baseline tolerance accepts the nudge without loosening run-to-run checks.
    tolerant = planted_spec(spec_dir, "nudged", "baseline: {atol: 0.1}\n")
    assert run(tolerant, spec_dir / "bl", env={"PLANTED_NUDGE": "1e-3"}).code == 0


def test_fingerprint_diff_names_the_changed_fields(spec_dir):
    spec = planted_spec(spec_dir, "nudged")
    assert run(spec, spec_dir / "bl", "--update-baseline").code == 0
    golden = spec_dir / "bl" / "spec.yaml" / "spec.safetensors"
    # Simulated: rewrite the stored fingerprint as if the golden came from another stack and GPU
    # (no second machine here). Only the metadata changes; the tensors stay.
    outs, info = goldens.load(golden)
    fp = dict(info["fingerprint"], torch="2.13.0+cu128", cudnn=91002, gpus=[{"name": "NVIDIA A100-SXM4-80GB"}])
    goldens.save(outs, golden, check="spec", config_hash=info["config_hash"], fingerprint=fp)
    r = run(
        spec,
        spec_dir / "bl",
        env={"PLANTED_NUDGE": "1e-3"},
        report=spec_dir / "r.json",
    )
    assert r.code == 1, r
    fields = [
        d["field"] for d in json.loads((spec_dir / "r.json").read_text())["checks"][0]["baseline"]["fingerprint_diff"]
    ]
    assert fields[:3] == ["torch", "cudnn", "gpus"]  # likeliest causes first
    assert "likely causes): torch, cudnn, gpus" in r.out
    # The Markdown report lists them too.
    r = run(spec, spec_dir / "bl", "--summary", str(spec_dir / "s.md"), env={"PLANTED_NUDGE": "1e-3"})
    assert r.code == 1, r
    assert "| torch | 2.13.0+cu128 |" in (spec_dir / "s.md").read_text()


def test_fingerprint_diff_orders_causes():
    diff = golden_result.fingerprint_diff(
        {"platform": "a", "driver": "1", "flags": {"tf32_matmul": False}},
        {"platform": "b", "driver": "2", "flags": {"tf32_matmul": True}},
    )
    assert [d.field for d in diff] == ["driver", "flags.tf32_matmul", "platform"]


WRITER = r"""
import os, sys, torch
sys.path.insert(0, sys.argv[2])
import safetensors.torch
from reprocheck.worker import goldens
from reprocheck.worker.outputs import flatten

def half_then_die(tensors, filename, metadata=None):
    # Fail the write part-way, deterministically: half the bytes reach the temporary file, then the process dies.
    data = safetensors.torch.save(tensors, metadata=metadata)
    with open(filename, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
    os.kill(os.getpid(), 9)

goldens.save_file = half_then_die  # the writer goldens.save calls
goldens.save(flatten({"big": torch.ones(1000)}), __import__("pathlib").Path(sys.argv[1]),
              check="c", config_hash="new", fingerprint={})
"""


def test_a_killed_writer_leaves_the_old_golden_intact(tmp_path):
    golden = tmp_path / "g.safetensors"
    goldens.save(flatten(torch.arange(4.0)), golden, check="c", config_hash="old", fingerprint={})
    before = golden.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(golden), str(ROOT / "runner")], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert golden.read_bytes() == before
    outs, info = goldens.load(golden)
    assert info["config_hash"] == "old" and outs.tensors["output"].tolist() == [0, 1, 2, 3]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "g.safetensors"]
    assert all(name.startswith(".g.safetensors.") for name in leftovers)  # only the dead writer's temporary file
