"""True numbers for task outputs, through the real CLI: counts in the task's unit (detections, samples, pixels) with
`mismatched` never above `total`, the largest difference between matched items (null where nothing matched, never a
0 standing in for it), remedies that never propose a tolerance as large as the values, the same in JSON, console,
Markdown and the Action's `max-abs-diff`. Each check is one case of tests/fixtures/edges.py (run 1 one output, run 2
another)."""

import json
import shutil

import jsonschema
import pytest

from helpers import FIXTURES, reprocheck, write_spec

DETECTION = '{outputs: {"*": {as: detection}}}'
CASES = {
    "dets_all_moved": DETECTION,
    "dets_empty_both": DETECTION,
    "dets_none_then_two": DETECTION,
    "dets_score_nan": DETECTION,
    "dets_scores_moved": DETECTION,
    "dets_shifted": DETECTION,
    "dets_score_and_mask": DETECTION,
    "logits_per_sample": "{outputs: {logits: {as: classification}}}",
    "seg_labels": "{outputs: {output: {as: segmentation}}}",
    "boxes_jump": None,  # no rule: compared elementwise
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    folder = tmp_path_factory.mktemp("numbers")
    shutil.copy(FIXTURES / "edges.py", folder / "edges.py")
    shutil.copy(FIXTURES / "planted.py", folder / "planted.py")
    entries = "".join(
        f"  - name: {case}\n    model: {{factory: 'edges:build', kwargs: {{case: {case}}}}}\n"
        + (f"    compare: {rule}\n" if rule else "")
        for case, rule in CASES.items()
    )
    spec = write_spec(
        folder,
        f"version: 1\nruns: 2\nrecipe: {{threads: 1}}\ninput: {{random: {{shape: [2]}}}}\nchecks:\n{entries}",
        "numbers.yaml",
    )
    r = reprocheck("run", str(spec), "--report", str(folder / "r.json"), "--summary", str(folder / "s.md"), cwd=folder)
    assert r.code == 1, r
    report = json.loads((folder / "r.json").read_text())
    jsonschema.validate(report, json.loads(reprocheck("schema", "--report").out))
    checks = {c["name"]: c for c in report["checks"]}
    return checks, r.out, (folder / "s.md").read_text(), folder


def _out(checks, name, path=None):
    outs = checks[name]["outputs"]
    return outs[0] if path is None else next(o for o in outs if o["path"] == path)


def _numbers(o):
    return (o["unit"], o["mismatched"], o["total"], o["max_matched_diff"])


def _remedy(out, check):
    """The console's remedy line of one check."""
    return next(x for x in out.split(f"\n\n{check} ", 1)[1].splitlines() if "remedy:" in x)


def test_the_report_is_schema_version_2_and_mismatched_never_exceeds_total(ran):
    checks, _, _, folder = ran
    assert json.loads((folder / "r.json").read_text())["schema_version"] == 2
    for c in checks.values():
        for o in c["outputs"]:
            assert o["mismatched"] <= o["total"], (c["name"], o)
            assert 0 <= o["mismatch_percent"] <= 100


def test_detections_that_all_moved_count_each_detection_once_and_measure_nothing(ran):
    checks, out, md, _ = ran
    o = _out(checks, "dets_all_moved")
    # 2 missing + 2 extra of 4 detections in either run (it was "4 of 2, 200%, max abs diff 0")
    assert checks["dets_all_moved"]["status"] == "fail"
    assert _numbers(o) == ("detections", 4, 4, None) and o["mismatch_percent"] == 100.0
    assert o["max_abs_diff"] is None and o["max_rel_diff"] is None and o["mean_abs_diff"] is None
    assert "0: 4 of 4 detections differ between run 1 and run 2" in out
    assert "no detection matched, so no value difference to measure" in out
    row = next(x for x in md.splitlines() if x.startswith("| `dets_all_moved` |"))
    assert "max abs diff 0" not in out and "| 3407 | 0 |" not in row
    assert "output 0: 4 of 4 detections differ; largest difference none measured" in md


def test_no_detections_in_either_run_pass_with_nothing_measured(ran):
    checks, _, _, _ = ran
    o = _out(checks, "dets_empty_both")
    assert checks["dets_empty_both"]["status"] == "pass"
    assert _numbers(o) == ("detections", 0, 0, None) and o["mismatch_percent"] == 0


def test_none_then_two_detections_are_two_extra(ran):
    checks, _, _, _ = ran
    o = _out(checks, "dets_none_then_two")
    assert _numbers(o) == ("detections", 2, 2, None)
    assert o["task"]["stats"]["extra_count"] == 2 and o["task"]["stats"]["max_score_diff"] is None


def test_a_nan_score_is_an_unbounded_difference_no_tolerance_fixes(ran):
    checks, out, _, _ = ran
    o = _out(checks, "dets_score_nan")
    assert _numbers(o) == ("detections", 1, 2, "inf")
    assert "0: 1 of 2 detections differ" in out and "largest difference between matched detections inf" in out
    remedy = _remedy(out, "dets_score_nan")
    assert "no tolerance can honestly fix it (scores change by up to inf" in remedy


def test_moved_scores_propose_the_rules_score_atol_rounded_up(ran):
    checks, out, md, _ = ran
    o = _out(checks, "dets_scores_moved")
    unit, mismatched, total, diff = _numbers(o)
    assert (unit, mismatched, total) == ("detections", 2, 2) and diff == pytest.approx(0.01, rel=1e-5)
    assert "largest difference between matched detections 0.01 (a score)" in out
    proposed = float(out.split("would pass with score_atol: ", 1)[1].split(" ", 1)[0])
    assert diff <= proposed < 1.02 * diff  # rounded up: it passes what was seen, and no more than that
    assert "in its compare rule ('*'), if differences that large are acceptable" in out
    assert "output 0: 2 of 2 detections differ; largest difference 0.01" in md


def test_boxes_shifted_below_the_iou_propose_the_iou_at_which_they_match(ran):
    checks, out, _, _ = ran
    o = _out(checks, "dets_shifted")
    assert _numbers(o) == ("detections", 4, 4, None)
    assert o["task"]["stats"]["iou_needed"] == 0.905
    assert "would pass with iou: 0.905 (their scores are then compared too)" in out


def test_a_pair_that_changed_twice_counts_once(ran):
    checks, out, _, _ = ran
    o = _out(checks, "dets_score_and_mask")
    stats = o["task"]["stats"]
    # pair 0: its score and its mask changed; pair 1: its mask. Two detections, not three.
    assert (stats["score_change_count"], stats["masks"]["changed"], stats["changed_pair_count"]) == (1, 2, 2)
    assert _numbers(o)[:3] == ("detections", 2, 2)
    remedy = _remedy(out, "dets_score_and_mask")
    assert "no tolerance can honestly fix it (" in remedy and "masks overlap at IoU down to 0.375" in remedy
    assert "scores change by up to 0.4 (largest |score| 0.9)" in remedy  # a score_atol of 0.4 is no bound


def test_a_classification_counts_samples(ran):
    checks, out, md, _ = ran
    o = _out(checks, "logits_per_sample", "logits")
    assert _numbers(o) == ("samples", 1, 2, 5.0) and o["shape"] == [2, 1000]
    assert "logits: 1 of 2 samples changed top-1 class" in out
    assert "1/2 samples" in out and "matched: 5" in out  # the table: counts in their unit, the matched difference
    remedy = _remedy(out, "logits_per_sample")
    assert "no tolerance can honestly fix it (1 sample changed class" in remedy
    assert "output logits: 1 of 2 samples differ; largest difference 5" in md


def test_a_label_map_counts_pixels_and_has_no_scores_to_measure(ran):
    checks, out, _, _ = ran
    o = _out(checks, "seg_labels")
    assert _numbers(o) == ("pixels", 4, 16, None)
    assert o["task"]["stats"]["max_score_diff"] is None
    assert "an integer label map: no scores to measure" in out
    assert "no tolerance can honestly fix it (25% of the pixels change class)" in out


def test_an_elementwise_difference_as_large_as_the_values_gets_no_tolerance(ran):
    checks, out, _, _ = ran
    o = _out(checks, "boxes_jump", "boxes")
    assert (o["unit"], o["mismatched"], o["total"], o["max_abs_diff"]) == ("values", 4, 8, 111.0)
    assert o["max_matched_diff"] is None
    remedy = _remedy(out, "boxes_jump")
    assert "no tolerance can honestly fix it: boxes differs by up to 111 while its largest |value| is 120" in remedy
    assert "atol: 111" not in out and "none (blind)" in out


def test_the_actions_max_abs_diff_is_the_matched_difference_or_none(ran):
    _, _, _, folder = ran
    for case, expected in (("dets_all_moved", "none"), ("dets_scores_moved", "0.01")):
        spec = write_spec(
            folder,
            f"version: 1\nruns: 2\ninput: {{random: {{shape: [2]}}}}\nmodel: {{factory: 'edges:build', kwargs: "
            f"{{case: {case}}}}}\ncompare: {DETECTION}\n",
            f"{case}.yaml",
        )
        (folder / f".edges-{case}-counter").unlink(missing_ok=True)
        outputs = folder / f"{case}.out"
        env = {"GITHUB_OUTPUT": str(outputs), "GITHUB_WORKSPACE": str(folder)}
        r = reprocheck("run", str(spec), "--github", cwd=folder, env=env)
        assert r.code == 1, r
        lines = outputs.read_text().splitlines()
        assert "result=fail" in lines and f"max-abs-diff={expected}" in lines, lines
