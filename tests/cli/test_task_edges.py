"""Task comparison at its edges, through the real CLI: a rule compares everything it claims (keys of forms it
cannot read stay elementwise), dtypes inside a detection are structure, NaN follows the elementwise rule in every
task, keypoint visibility counts, and a classification glob takes class scores only. One multi-check spec per
expectation: each check is one case of tests/fixtures/edges.py (run 1 one output, run 2 another)."""

import json
import shutil

import pytest

from helpers import FIXTURES, reprocheck, write_spec

DETECTION = '{outputs: {"*": {as: detection}}}'
CLASSIFY = "{outputs: {logits: {as: classification}}}"
BINARY = "{outputs: {score: {as: classification}}}"
GLOB = '{outputs: {"*": {as: classification}}}'
SEGMENT = "{outputs: {output: {as: segmentation}}}"

MUST_FAIL = {
    "labels_as_strings": DETECTION,
    "scores_as_list": DETECTION,
    "masks_as_list": DETECTION,
    "labels_dtype": DETECTION,
    "scores_dtype": DETECTION,
    "mask_to_nan": DETECTION,
    "keypoint_visibility": DETECTION,
    "box_to_nan": DETECTION,
    "logits_to_nan": CLASSIFY,
    "binary_to_nan": BINARY,
    "glob_heads": GLOB,
    "glob_embedding": GLOB,
    "seg_to_nan": SEGMENT,
}
MUST_PASS = {
    "same_nan_box": DETECTION,
    "same_nan_score": DETECTION,
    "same_nan_keypoints": DETECTION,
    "same_nan_logits": CLASSIFY,
    "same_nan_seg": SEGMENT,
    "logits_scaled": CLASSIFY,  # the classes agree; the values are reported (score_atol bounds them, below)
}


def _spec(folder, cases: dict[str, str], name: str):
    entries = "".join(
        f"  - name: {case}\n    model: {{factory: 'edges:build', kwargs: {{case: {case}}}}}\n    compare: {rule}\n"
        for case, rule in cases.items()
    )
    return write_spec(
        folder,
        f"version: 1\nruns: 2\nrecipe: {{threads: 1}}\ninput: {{random: {{shape: [2]}}}}\nchecks:\n{entries}",
        name,
    )


@pytest.fixture
def edges(spec_dir):
    shutil.copy(FIXTURES / "edges.py", spec_dir / "edges.py")  # beside planted.py, whose run counter it uses
    return spec_dir


def _statuses(folder, spec) -> tuple[dict[str, dict], str]:
    r = reprocheck("run", str(spec), "--report", str(folder / "r.json"), cwd=folder)
    assert r.code in (0, 1), r
    report = json.loads((folder / "r.json").read_text())
    return {c["name"]: c for c in report["checks"]}, r.out


def test_every_claimed_difference_is_found(edges):
    checks, out = _statuses(edges, _spec(edges, MUST_FAIL, "fail.yaml"))
    passed = [name for name, c in checks.items() if c["status"] != "fail"]
    assert passed == [], out
    # A claimed key of a form the rule cannot read is left elementwise, and found there.
    assert "labels" in json.dumps(checks["labels_as_strings"]["outputs"])
    assert "int32" in out and "float64" in out  # dtype changes inside a detection are named
    assert "changed visibility" in out
    assert "NaN in one run only" in out
    assert "leaves reg elementwise" in out and "leaves pooled_embedding elementwise" in out


def test_nan_at_the_same_places_is_equal_in_every_task(edges):
    checks, out = _statuses(edges, _spec(edges, MUST_PASS, "pass.yaml"))
    failed = [name for name, c in checks.items() if c["status"] != "pass"]
    assert failed == [], out
    scaled = next(o for o in checks["logits_scaled"]["outputs"] if o["path"] == "logits")
    assert scaled["task"]["stats"]["max_score_diff"] == 999.0  # the values are reported even when classes agree
    assert "logits: the classification agrees, but its scores differ by up to 999" in out


def test_classification_score_atol_bounds_the_values(edges):
    rule = "{outputs: {logits: {as: classification, score_atol: 0.5}}}"
    checks, out = _statuses(edges, _spec(edges, {"logits_scaled": rule}, "atol.yaml"))
    assert checks["logits_scaled"]["status"] == "fail", out
    assert "same classes, scores moved by 999" in out
