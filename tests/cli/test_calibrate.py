"""`reprocheck calibrate`: the smallest tolerances that pass what was observed, pasted back into a real spec."""

import json

from helpers import planted_spec, reprocheck


def tolerance_block(out: str) -> str:
    """The YAML part of calibrate's output (its comment lines dropped)."""
    return "".join(line + "\n" for line in out.splitlines() if line and not line.startswith("#"))


def test_suggestions_pass_when_pasted_and_scales_get_their_own_entries(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "logits_and_boxes")
    r = reprocheck("calibrate", "-q", str(spec), "--report", str(tmp_path / "c.json"))
    assert r.code == 0, r
    assert "# reprocheck calibrate: spec (" in r.out and ": 20 runs" in r.out
    block = tolerance_block(r.out)
    # boxes jitter by ~1e-6, logits by ~1e-3: the check-wide atol fits boxes, logits get their own entry.
    assert block.startswith("tolerance:\n  atol: ") and '    "logits": {atol: ' in block
    data = json.loads((tmp_path / "c.json").read_text())["checks"][0]
    assert (
        data["possible"]
        and data["runs"] == 20
        and data["tolerance"]["atol"] < data["tolerance"]["outputs"]["logits"]["atol"]
    )
    assert all(o["atol"] >= 4 * o["max_abs_diff"] for o in data["observed"])
    pasted = planted_spec(spec_dir, "logits_and_boxes", "runs: 5\n" + block, name="pasted.yaml")
    assert reprocheck("run", str(pasted)).code == 0  # the suggestion really passes


def test_a_deterministic_check_needs_no_tolerance(spec_dir):
    r = reprocheck("calibrate", "-q", str(planted_spec(spec_dir, "seeded_init")), "--runs", "5")
    assert r.code == 0, r
    assert "# runs: bitwise identical, no tolerance needed" in r.out and "tolerance:\n  atol: 0\n" in r.out


def test_a_structure_change_cannot_be_calibrated(spec_dir):
    r = reprocheck("calibrate", "-q", str(planted_spec(spec_dir, "varying_count", shape="[3, 8, 8]")), "--runs", "4")
    assert r.code == 1, r
    assert "# no tolerance can make this check pass:" in r.out and "the structure changes (runs)" in r.out
    assert "tolerance:" not in r.out


def test_invariance_variants_get_their_own_block(spec_dir):
    extra = "recipe: {threads: 2}\ninvariance: {threads: [1, 4], tolerance: {atol: 1.0}}\n"
    r = reprocheck("calibrate", "-q", str(planted_spec(spec_dir, "thread_dependent", extra)), "--runs", "3")
    assert r.code == 0, r
    # Run to run: bitwise; across thread counts the sum differs, whatever tolerance the spec had (calibrate ignores it).
    assert "tolerance:\n  atol: 0\ninvariance:\n  tolerance:\n    atol: " in r.out
    assert "# variants: total differs by up to" in r.out
    pasted = planted_spec(
        spec_dir,
        "thread_dependent",
        "recipe: {threads: 2}\n" + tolerance_block(r.out).replace("invariance:\n", "invariance:\n  threads: [1, 4]\n"),
        name="pasted.yaml",
    )
    assert reprocheck("run", str(pasted)).code == 0


def test_runs_that_fail_are_exit_3(spec_dir):
    r = reprocheck("calibrate", "-q", str(planted_spec(spec_dir, "raises")), "--runs", "3")
    assert r.code == 3 and "planted failure in forward" in r.out, r


def test_a_tolerance_as_large_as_the_output_is_refused_as_blind(spec_dir):
    r = reprocheck("calibrate", "-q", str(planted_spec(spec_dir, "pure_noise")), "--runs", "5")
    assert r.code == 1, r
    assert "# no tolerance can make this check pass:" in r.out and "the check would be blind" in r.out
    assert "tolerance:" not in r.out


def test_a_sign_of_zero_gets_the_smallest_tolerance_that_passes_and_the_block_passes_when_pasted(spec_dir):
    r = reprocheck("calibrate", "-q", str(planted_spec(spec_dir, "zero_sign_flip")), "--runs", "4")
    assert r.code == 0, r
    assert "differs only in the sign of zero" in r.out and "bitwise identical" not in r.out
    block = tolerance_block(r.out)
    assert "atol: 0\n" not in block
    assert reprocheck("run", str(planted_spec(spec_dir, "zero_sign_flip", name="plain.yaml"))).code == 1
    pasted = planted_spec(spec_dir, "zero_sign_flip", "runs: 4\n" + block, name="pasted.yaml")
    assert reprocheck("run", str(pasted)).code == 0, block
