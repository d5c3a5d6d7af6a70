"""Task-aware comparison: detections, classifications and segmentations judged the way users judge them, fragile
outputs flagged. Planted models run through the real CLI in real processes; the matcher is checked against brute
force."""

import itertools
import json

import jsonschema
import numpy as np
import pytest
import torch
import yaml

from helpers import planted_spec, reprocheck, write_spec
from reprocheck.spec import CompareSpec, ToleranceSpec
from reprocheck.worker import compare, outputs
from reprocheck.worker.tasks.assign import match

DETECTION = 'compare:\n  outputs:\n    "*": {as: detection}\n'
CLASSIFICATION = "compare:\n  outputs:\n    logits: {as: classification, top_k: 3}\n"
SEGMENTATION = "compare:\n  outputs:\n    out: {as: segmentation}\n"


def run(spec, *extra, env=None):
    return reprocheck("run", str(spec), *extra, env=env)


def report_of(spec, tmp_path, *extra, env=None):
    path = tmp_path / "r.json"
    r = run(spec, "--report", str(path), *extra, env=env)
    data = json.loads(path.read_text())
    jsonschema.validate(data, json.loads(reprocheck("schema", "--report").out))
    return r, data


# --- the matcher --------------------------------------------------------------------------------


def _brute(iou, allowed):
    best = (0, 0.0)
    n, m = iou.shape
    for cols in itertools.permutations(range(max(n, m)), n):
        pairs = [(i, j) for i, j in enumerate(cols) if j < m and allowed[i, j]]
        score = (len(pairs), sum(iou[i, j] for i, j in pairs))
        if score[0] > best[0] or (score[0] == best[0] and score[1] > best[1] + 1e-12):
            best = score
    return best


def test_the_matching_is_optimal_against_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n, m = (int(x) for x in rng.integers(1, 6, 2))
        iou = rng.random((n, m))
        allowed = rng.random((n, m)) < 0.5
        pairs = match(iou, allowed)
        assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
        assert all(allowed[i, j] for i, j in pairs)
        count, total = _brute(iou, allowed)
        assert len(pairs) == count
        assert sum(iou[i, j] for i, j in pairs) == pytest.approx(total)


def test_a_greedy_choice_is_not_taken():
    # Greedy by IoU pairs (0, 0) and leaves row 1 without a match; the optimum matches both rows.
    iou = np.array([[0.999, 0.995], [0.996, 0.1]])
    assert match(iou, iou >= 0.99) == [(0, 1), (1, 0)]


# --- detection -----------------------------------------------------------------------------------


def test_the_same_detections_in_another_order_pass_as_detections_and_fail_elementwise(spec_dir):
    assert run(planted_spec(spec_dir, "dets_shuffled", name="plain.yaml")).code == 1
    r = run(planted_spec(spec_dir, "dets_shuffled", DETECTION))
    assert r.code == 0, r


def test_boxes_jittered_inside_the_iou_threshold_pass(spec_dir, tmp_path):
    assert run(planted_spec(spec_dir, "dets_jittered", name="plain.yaml")).code == 1
    r, data = report_of(planted_spec(spec_dir, "dets_jittered", DETECTION), tmp_path)
    assert r.code == 0, r
    (out,) = data["checks"][0]["outputs"]
    stats = out["task"]["stats"]
    assert (out["path"], out["status"], out["task"]["task"]) == ("0", "match", "detection")
    assert stats["matched"] == 6 and 0.009 < stats["max_box_shift"] < 0.011 and stats["max_score_diff"] < 2e-6
    # A tighter IoU turns the same jitter into a failure, reported as missing and extra detections.
    tight = DETECTION.replace("detection}", "detection, iou: 0.99999}")
    r = run(planted_spec(spec_dir, "dets_jittered", tight, name="tight.yaml"))
    assert r.code == 1 and "6 detections of run 1 have no match in run 2" in r.out, r


def test_a_label_that_flips_is_reported_as_a_label_change(spec_dir, tmp_path):
    r, data = report_of(
        planted_spec(spec_dir, "dets_label_flip", DETECTION), tmp_path, "--summary", str(tmp_path / "s.md")
    )
    assert r.code == 1, r
    assert (
        "0: 1 of 6 detections differ between run 1 and run 2: 1 of 6 detections changed label: "
        "3 → 17 at IoU 1 (score 0.8 at [30, 120, 90, 200]); the boxes and scores of matched detections are equal "
        "(largest difference 0)" in r.out
    )
    out = data["checks"][0]["outputs"][0]
    assert (out["unit"], out["mismatched"], out["total"], out["max_matched_diff"]) == ("detections", 1, 6, 0.0)
    stats = out["task"]["stats"]
    assert stats["label_change_count"] == 1 and stats["missing_count"] == stats["extra_count"] == 0
    change = stats["label_changes"][0]
    assert (change["label"], change["to"], change["box"]) == (3, 17, [30.0, 120.0, 90.0, 200.0])
    assert "changed label: 3 → 17" in (tmp_path / "s.md").read_text()


def test_a_detection_in_one_run_only_is_extra(spec_dir):
    r = run(planted_spec(spec_dir, "dets_extra_in_one_run", DETECTION))
    assert r.code == 1, r
    assert "1 detection of run 2 has no match in run 1 (label 9 score 0.31 at [300, 10, 340, 50])" in r.out


def test_masks_and_keypoints_of_matched_detections_are_compared():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    masks = torch.zeros(2, 1, 32, 32)
    masks[0, 0, :10, :10] = 0.9
    masks[1, 0, 20:30, 20:30] = 0.9
    keypoints = torch.tensor([[[1.0, 1.0, 1.0]], [[25.0, 25.0, 1.0]]])
    first = {"boxes": boxes, "labels": torch.tensor([1, 2]), "scores": torch.tensor([0.9, 0.8]), "masks": masks}
    first["keypoints"] = keypoints
    second = {**first, "masks": masks.clone(), "keypoints": keypoints + torch.tensor([0.0, 3.0, 0.0])}
    second["masks"][1, 0, 20:25] = 0.1  # half of mask 1 is gone
    rules = CompareSpec.model_validate({"outputs": {"*": {"as": "detection"}}})
    (result,) = compare.compare_runs(
        [outputs.flatten([first]), outputs.flatten([second])], ToleranceSpec(), rules=rules
    ).outputs
    stats = result.task.stats
    assert not result and stats["masks"] == {"min_iou": 0.5, "threshold": 0.99, "changed": 1}
    assert stats["keypoints"]["max_shift"] == pytest.approx(3.0) and stats["keypoints"]["changed"] == 2


def test_a_drift_from_the_golden_is_in_task_words(spec_dir):
    spec = planted_spec(spec_dir, "dets_from_variant", DETECTION)
    bl = spec_dir / "bl"
    assert reprocheck("run", str(spec), "--baseline", str(bl), "--update-baseline", cwd=spec_dir).code == 0
    assert reprocheck("run", str(spec), "--baseline", str(bl), cwd=spec_dir).code == 0
    r = reprocheck("run", str(spec), "--baseline", str(bl), cwd=spec_dir, env={"PLANTED_VARIANT": "drop"})
    assert r.code == 1, r
    assert (
        "0: since the baseline, 1 of 6 detections differ: 1 detection disappeared (label 5 score 0.5 at [140, " in r.out
    )


def test_task_rules_apply_to_invariance_variants(spec_dir):
    # Each variant's run comes later by the counter, so its detections are in another order: as detections, equal.
    variant = "recipe: {threads: 2}\ninvariance: {threads: [1]}\n"
    assert run(planted_spec(spec_dir, "dets_shuffled", variant + DETECTION)).code == 0
    r = run(planted_spec(spec_dir, "dets_shuffled", variant, name="plain.yaml"))
    assert r.code == 1 and "invariance threads=1:" in r.out, r


# --- classification and segmentation -------------------------------------------------------------


def test_logits_that_jitter_without_changing_the_ranking_pass(spec_dir):
    assert run(planted_spec(spec_dir, "cls_jitter", name="plain.yaml")).code == 1
    r = run(planted_spec(spec_dir, "cls_jitter", CLASSIFICATION))
    assert r.code == 0, r


def test_a_top1_flip_fails_naming_the_sample_and_the_classes(spec_dir):
    r = run(planted_spec(spec_dir, "cls_top1_flip", CLASSIFICATION))
    assert r.code == 1, r
    assert (
        "logits: 1 of 3 samples changed top-3 class between run 1 and run 2: sample 1: class 2 → 4 at rank 1" in r.out
    )
    assert "(run 1's margin there 1.5)" in r.out
    assert "features: matches" not in r.out  # the other output stays elementwise and passes quietly


def test_a_binary_score_is_a_decision_at_zero():
    rules = CompareSpec.model_validate({"outputs": {"output": {"as": "classification"}}})
    a, b = torch.tensor([[0.5], [-0.2]]), torch.tensor([[0.4], [0.1]])
    (result,) = compare.compare_runs([outputs.flatten(a), outputs.flatten(b)], ToleranceSpec(), rules=rules).outputs
    assert result.task.stats["changed"][0]["sample"] == [1] and (
        result.task.stats["changed"][0]["from"],
        result.task.stats["changed"][0]["to"],
    ) == (0, 1)


def test_one_changed_pixel_fails_at_full_agreement_and_passes_at_99_percent(spec_dir, tmp_path):
    r = run(planted_spec(spec_dir, "seg_one_pixel", SEGMENTATION))
    assert r.code == 1, r
    assert "out: 1 of 256 pixels changed class between run 1 and run 2" in r.out
    assert "changed region: sample 0 rows 7–7, cols 12–12" in r.out
    loose = SEGMENTATION.replace("segmentation}", "segmentation, min_agreement: 0.99}")
    (spec_dir / ".planted-counter").unlink()  # run 2 changes the pixel again
    r, data = report_of(planted_spec(spec_dir, "seg_one_pixel", loose, name="loose.yaml"), tmp_path)
    assert r.code == 0, r
    stats = data["checks"][0]["outputs"][0]["task"]["stats"]
    assert stats["changed_pixels"] == 1 and stats["class_iou"][0]["class"] == 2


# --- fragility -------------------------------------------------------------------------------------


def test_detections_on_the_edge_warn_fail_or_stay_quiet(spec_dir, tmp_path):
    env = {
        "GITHUB_OUTPUT": str(tmp_path / "o"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
        "GITHUB_WORKSPACE": str(spec_dir),
    }
    r, data = report_of(planted_spec(spec_dir, "dets_on_the_edge", DETECTION), tmp_path, "--github", env=env)
    assert r.code == 0, r
    assert "1 detection score within 0.00035 of the score threshold 0.3" in r.out
    assert "label 4: detections [6, 7], IoU 0.5, scores 0.4 and 0.4, scores nearly equal" in r.out
    warnings = [x for x in r.out.splitlines() if x.startswith("::warning ")]
    assert len(warnings) == 2 and all("file=spec.yaml,line=6," in w for w in warnings)  # at `compare:`
    assert "**Fragile**" in (tmp_path / "s").read_text()
    fragile = data["checks"][0]["fragile"]
    assert [(f["reason"], f["count"], f["threshold"]) for f in fragile] == [
        ("score-threshold", 1, 0.3),
        ("nms", 1, 0.5),
    ]
    fail = DETECTION + "  fragile: fail\n"
    r = run(planted_spec(spec_dir, "dets_on_the_edge", fail, name="fail.yaml"))
    assert r.code == 1 and "on a decision boundary (fragile: fail)" in r.out, r
    off = DETECTION + "  fragile: off\n"
    r = run(planted_spec(spec_dir, "dets_on_the_edge", off, name="off.yaml"))
    assert r.code == 0 and "fragile" not in r.out, r


def test_a_margin_set_in_the_spec_decides(spec_dir):
    narrow = 'compare:\n  outputs:\n    "*": {as: detection, score_margin: 1.0e-5, nms_margin: 0.0}\n  fragile: fail\n'
    r = run(planted_spec(spec_dir, "dets_on_the_edge", narrow))
    assert r.code == 1 and "score threshold" not in r.out and "NMS threshold 0.5" in r.out, r  # IoU is 0.5 exactly


def test_a_near_tie_in_the_ranking_is_fragile(spec_dir):
    r = run(planted_spec(spec_dir, "cls_near_tie", CLASSIFICATION))
    assert r.code == 0, r
    assert (
        "logits: 1 sample has two ranked classes within 0.00035 x max(1, |top-1|) (closest: sample 0, rank 1" in r.out
    )


def test_near_tied_pixels_are_fragile_beyond_what_min_agreement_allows(spec_dir):
    r = run(planted_spec(spec_dir, "seg_near_tie", SEGMENTATION))
    assert r.code == 0 and "out: 1 pixel has its two best classes within" in r.out, r
    loose = SEGMENTATION.replace("segmentation}", "segmentation, min_agreement: 0.99}")
    r = run(planted_spec(spec_dir, "seg_near_tie", loose, name="loose.yaml"))
    assert r.code == 0 and "fragile" not in r.out, r  # 2 of 256 pixels may change: one on the edge is allowed


# --- rules that do not fit, and spec errors --------------------------------------------------------


def test_a_pattern_that_matches_nothing_is_an_error_at_its_line(spec_dir):
    rules = "compare:\n  outputs:\n    logits: {as: classification}\n"
    r = run(planted_spec(spec_dir, "dets_stable", rules))
    assert r.code == 3, r
    assert "spec.yaml:8: compare pattern 'logits' matches no output (the outputs: output, 0, 0.boxes" in r.out


def test_a_detection_rule_on_a_dict_without_boxes_is_an_error(spec_dir):
    r = run(planted_spec(spec_dir, "dets_without_boxes", DETECTION))
    assert r.code == 3, r
    assert "compare pattern '*' selects nothing to compare as detection: 0 is a dict without a boxes tensor" in r.out


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("logits: {top_k: 3}", "compare.outputs.logits.as: missing (add this key)"),
        ("logits: {as: classifier}", "compare.outputs.logits.as: Input should be 'detection', 'classification'"),
        ("logits: {as: classification, iou: 0.5}", "`iou` applies to `as: detection`, not `as: classification`"),
        ("out: {as: segmentation, min_agreement: 1.5}", "min_agreement: Input should be less than or equal to 1"),
        ('"*": {as: detection, iuo: 0.5}', "unknown key (did you mean 'iou'?)"),
        ("logits: {as: classification, top_k: 0}", "top_k: Input should be greater than or equal to 1"),
    ],
)
def test_bad_compare_rules_are_refused_before_anything_runs(spec_dir, rules, message):
    spec = planted_spec(spec_dir, "cls_jitter", f"compare:\n  outputs:\n    {rules}\n")
    r = reprocheck("validate", str(spec))
    assert r.code == 2 and message in r.err and "spec.yaml:8:" in r.err and "Traceback" not in r.err, r
    jsonschema_schema = json.loads(reprocheck("schema").out)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(spec.read_text()), jsonschema_schema)


def test_a_multi_check_file_merges_compare_rules_entry_first(spec_dir):
    spec = write_spec(
        spec_dir,
        """version: 1
model: {factory: "planted:cls_top1_flip"}
input: {random: {shape: [1, 8]}}
compare:
  outputs:
    "*": {as: classification}
checks:
  - name: by-sample
  - name: by-column
    compare:
      outputs:
        logits: {as: classification, dim: 0}
""",
    )
    r = run(spec)
    assert r.code == 1, r
    # by-column's own `logits` rule is tried before the defaults' "*": per column, the best row does not change.
    assert "FAIL  by-sample" in r.out and "PASS  by-column" in r.out


@pytest.mark.parametrize(
    ("model", "rules", "message"),
    [
        (
            "resnet18",
            '"*": {as: detection}',
            "compare pattern '*' selects nothing to compare as detection: output is a tensor, not a dict with boxes "
            "(resnet18 is a torchvision classification model)",
        ),
        (
            "resnet18",
            "logits: {as: classification}",
            "compare pattern 'logits' matches no output (the outputs: output)",
        ),
        (
            "fcn_resnet50",
            '"*": {as: detection}',
            "output is a dict without a boxes tensor (keys: out, aux) "
            "(fcn_resnet50 is a torchvision segmentation model)",
        ),
        (
            "retinanet_resnet50_fpn",
            '"*": {as: segmentation}',
            "compare pattern '*' selects nothing to compare as segmentation: 0.boxes is a tensor of shape [1, 4]",
        ),
    ],
)
def test_rules_that_cannot_fit_a_torchvision_model_are_refused_at_validation(tmp_path, model, rules, message):
    spec = write_spec(
        tmp_path,
        f"""version: 1
model: {{torchvision: {model}, kwargs: {{weights: null, weights_backbone: null}}}}
input: {{random: {{shape: [1, 3, 64, 64]}}}}
compare:
  outputs:
    {rules}
""",
    )
    r = reprocheck("validate", "--deep", str(spec))
    assert r.code == 2 and message in r.err and "spec.yaml:6: compare.outputs." in r.err, r
    assert reprocheck("run", str(spec)).code == 2  # nothing runs


def test_rules_that_fit_a_torchvision_model_validate(tmp_path):
    spec = write_spec(
        tmp_path,
        """version: 1
model: {torchvision: fcn_resnet50, kwargs: {weights: null, weights_backbone: null}}
input: {random: {shape: [1, 3, 64, 64]}}
compare:
  outputs:
    out: {as: segmentation}
""",
    )
    assert reprocheck("validate", str(spec)).code == 0


def test_under_github_a_label_change_and_a_rule_that_fits_nothing_are_error_annotations(spec_dir, tmp_path):
    env = {
        "GITHUB_OUTPUT": str(tmp_path / "o"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
        "GITHUB_WORKSPACE": str(spec_dir),
    }
    r = run(planted_spec(spec_dir, "dets_label_flip", DETECTION), "--github", env=env)
    assert r.code == 1, r
    (line,) = [x for x in r.out.splitlines() if x.startswith("::error ")]
    assert "file=spec.yaml,line=1,title=reprocheck%3A spec is not reproducible::" in line
    assert "1 of 6 detections changed label: 3 → 17" in line
    wrong = planted_spec(
        spec_dir, "dets_stable", "compare:\n  outputs:\n    logits: {as: classification}\n", name="w.yaml"
    )
    r = run(wrong, "--github", env=env)
    assert r.code == 3, r
    (line,) = [x for x in r.out.splitlines() if x.startswith("::error ")]
    assert "file=w.yaml,line=8,title=reprocheck%3A w%3A a compare rule does not fit::" in line
    assert "result=error" in (tmp_path / "o").read_text()


def test_no_detections_match_no_detections_and_any_found_are_extra():
    rules = CompareSpec.model_validate({"outputs": {"*": {"as": "detection"}}})
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    found = {"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]]), "scores": torch.tensor([0.7]), "labels": torch.tensor([2])}
    (same,) = compare.compare_runs([outputs.flatten([empty])] * 2, ToleranceSpec(), rules=rules).outputs
    assert same and same.task.stats["matched"] == 0
    (more,) = compare.compare_runs(
        [outputs.flatten([empty]), outputs.flatten([found])], ToleranceSpec(), rules=rules
    ).outputs
    assert not more and more.task.stats["extra_count"] == 1 and more.task.stats["extra"][0]["label"] == 2
    # A detector that drops labels in one run changed its structure: no matching is attempted.
    bare = {"boxes": found["boxes"], "scores": found["scores"]}
    (changed,) = compare.compare_runs(
        [outputs.flatten([found]), outputs.flatten([bare])], ToleranceSpec(), rules=rules
    ).outputs
    assert changed.kind.value == "structure" and "detection keys differ" in changed.detail


def test_task_rules_apply_per_image_in_batch_variants(spec_dir, tmp_path):
    # Batch variants cut both runs to the images they share; each image's detections are then matched as detections.
    batch = "  format: list\ninvariance: {batch: [1, 3]}\n"
    r, data = report_of(planted_spec(spec_dir, "dets_per_image", batch + DETECTION, shape="[2, 3, 16, 16]"), tmp_path)
    assert r.code == 0, r
    variants = data["checks"][0]["invariance"]
    assert [(v["variant"], v["status"]) for v in variants] == [("1", "pass"), ("3", "pass")]
    assert {o["path"] for o in variants[1]["outputs"]} == {"0", "1"}
    assert all(o["task"]["task"] == "detection" for v in variants for o in v["outputs"])
    r = run(planted_spec(spec_dir, "dets_per_image", batch, shape="[2, 3, 16, 16]", name="plain.yaml"))
    assert r.code == 1 and "6 of 6 outputs differ" in r.out, r  # elementwise, the order is all it sees


def test_per_box_tensors_follow_the_matching():
    # A detector that also returns per-box class scores: reordered with its boxes, they still match; changed on one
    # matched box, they differ, elementwise under the check's tolerance, on the matched pairs.
    rules = CompareSpec.model_validate({"outputs": {"*": {"as": "detection"}}})
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [5.0, 40.0, 15.0, 60.0]])
    first = {"boxes": boxes, "labels": torch.tensor([1, 2, 3]), "logits": torch.rand(3, 4), "image_id": torch.tensor(7)}
    order = torch.tensor([2, 0, 1])
    second = {"boxes": boxes[order], "labels": first["labels"][order], "logits": first["logits"][order], "image_id": 7}
    second["image_id"] = torch.tensor(7)
    results = compare.compare_runs([outputs.flatten([first]), outputs.flatten([second])], ToleranceSpec(), rules=rules)
    assert results and {o.path for o in results.outputs} == {"0", "0.logits", "0.image_id"}
    second["logits"] = second["logits"].clone()
    second["logits"][1, 2] += 0.5  # the box that was first in run 1
    results = compare.compare_runs([outputs.flatten([first]), outputs.flatten([second])], ToleranceSpec(), rules=rules)
    (bad,) = results.failures
    assert bad.path == "0.logits" and bad.first_index == (0, 2) and "compared on the 3 matched detections" in bad.detail


def test_a_crowd_of_identical_detections_is_matched_in_linear_time(spec_dir):
    # Identical runs: the identity matching, whatever the overlap (the timeout bounds the whole verdict).
    spec = planted_spec(spec_dir, "dets_crowd", 'timeout: 60\ncompare: {outputs: {"*": {as: detection}}}\n')
    r = run(spec)
    assert r.code == 0, r


def test_a_comparison_past_the_checks_timeout_is_stopped_and_exit_3(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "dets_crowd", 'timeout: 3\ncompare: {outputs: {"*": {as: detection, iou: 0.5}}}\n')
    r = reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"), env={"PLANTED_VARIANT": "jitter"})
    assert r.code == 3, r
    assert "comparing the runs took longer than the check's timeout (3s) and was stopped" in r.out
    assert json.loads((tmp_path / "r.json").read_text())["checks"][0]["status"] == "error"
