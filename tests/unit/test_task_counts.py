"""True numbers for task outputs, in process: counts in the task's unit with `mismatched` never above `total`, the
largest difference between matched items (None where nothing matched), the Action's `max-abs-diff`, upgrade's
words, and remedies that never propose a bound as large as the values."""

import math

import pytest
import torch

from helpers import check_result
from reprocheck.host.analyses import calibrate
from reprocheck.host.checks.grades import Grade, OutputGrade
from reprocheck.host.report import annotate, json_report, tasks, text
from reprocheck.results import Kind, OutputResult, Tolerance
from reprocheck.spec import CompareSpec, ToleranceSpec
from reprocheck.worker import compare
from reprocheck.worker.outputs import flatten

DETECTION = CompareSpec.model_validate({"outputs": {"*": {"as": "detection"}}})
BOXES = torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 60.0, 90.0, 120.0]])


def _dets(boxes=BOXES, scores=(0.9, 0.8), labels=(1, 2)):
    return [{"boxes": boxes, "scores": torch.tensor(scores), "labels": torch.tensor(labels, dtype=torch.long)}]


def _compare(a, b, rules=DETECTION):
    return compare.compare_runs([flatten(a), flatten(b)], ToleranceSpec(), rules=rules)


def test_detections_that_share_nothing_count_each_once():
    c = _compare(_dets(), _dets(boxes=BOXES + 200.0))
    (o,) = c.outputs
    assert (o.unit, o.mismatched, o.total, o.max_matched_diff, o.largest_diff) == ("detections", 4, 4, None, None)
    assert o.mismatch_percent == 100.0 and c.largest_diff is None
    model = json_report.output_model(o)
    assert (model.max_abs_diff, model.max_rel_diff, model.mean_abs_diff, model.max_matched_diff) == (None,) * 4
    outputs = annotate.step_outputs([check_result(c, line=1)], None)
    assert (outputs["result"], outputs["max-abs-diff"]) == ("fail", "none")
    assert "no detection matched" in text.summarize(o)


def test_a_detection_pair_changed_in_label_and_score_counts_once():
    c = _compare(_dets(), _dets(scores=(0.5, 0.8), labels=(7, 2)))
    (o,) = c.outputs
    assert o.task.stats["label_change_count"] == 1 and o.task.stats["score_change_count"] == 1
    assert (o.mismatched, o.total, o.task.stats["changed_pair_count"]) == (1, 2, 1)
    assert o.max_matched_diff == pytest.approx(0.4)
    assert annotate.step_outputs([check_result(c, line=1)], None)["max-abs-diff"] == "0.4"
    assert "no tolerance can honestly fix it (1 detection changed label" in text.remedy(o)
    assert "1 matched score changed by up to 0.4" in text.summarize(o)


def test_empty_detections_in_both_runs_match_with_nothing_measured():
    c = _compare(_dets(torch.zeros(0, 4), (), ()), _dets(torch.zeros(0, 4), (), ()))
    (o,) = c.outputs
    assert o and (o.mismatched, o.total, o.max_matched_diff) == (0, 0, None)
    assert text.summarize(o) == "0: no detections in either run"


def test_a_nan_score_in_one_run_is_an_infinite_matched_difference():
    c = _compare(_dets(), _dets(scores=(math.nan, 0.8)))
    (o,) = c.outputs
    assert (o.mismatched, o.total) == (1, 2) and o.max_matched_diff == math.inf
    assert annotate.step_outputs([check_result(c, line=1)], None)["max-abs-diff"] == "inf"
    assert text.remedy(o).startswith("no tolerance can honestly fix it (scores change by up to inf")


def test_classification_counts_samples_and_upgrade_says_so():
    a = torch.zeros(2, 1000)
    a[:, 3] = 5.0
    rules = CompareSpec.model_validate({"outputs": {"output": {"as": "classification"}}})
    (o,) = _compare(a, a.clone(), rules).outputs
    assert (o.unit, o.total, o.mismatched, o.max_matched_diff) == ("samples", 2, 0, 0.0)
    identical = OutputGrade(o.path, Grade.IDENTICAL, o)
    assert text.detail(identical) == "bitwise equal (2 samples, 2000 values)"
    b = a.clone()
    b[1, 7] = 6.0
    (changed,) = _compare(a, b, rules).outputs
    assert (changed.mismatched, changed.total, changed.max_matched_diff) == (1, 2, 6.0)
    assert "1 of 2 samples" in text.detail(OutputGrade(o.path, Grade.CHANGED, changed))


def test_an_elementwise_output_keeps_its_values_and_never_gets_a_blind_tolerance():
    (o,) = compare.compare_runs([flatten(torch.zeros(3)), flatten(torch.ones(3))], ToleranceSpec()).outputs
    assert (o.unit, o.mismatched, o.total, o.max_abs_diff, o.magnitude) == ("values", 3, 3, 1.0, 1.0)
    assert o.blind_atol() and o.needed_rtol is None  # no rtol passes a change from 0
    assert "no tolerance can honestly fix it" in text.remedy(o) and "atol: 1" not in text.remedy(o)
    assert text.detail(OutputGrade(o.path, Grade.IDENTICAL, o)) == "bitwise equal (3 values)"
    small = torch.full((3,), 100.0)
    (fine,) = compare.compare_runs([flatten(small), flatten(small + 1e-3)], ToleranceSpec()).outputs
    assert not fine.blind_atol() and "would pass with tolerance atol: " in text.remedy(fine)
    proposed = float(text.remedy(fine).split("atol: ", 1)[1].split(" ", 1)[0])
    assert fine.needed_atol <= proposed < 1.011 * fine.needed_atol  # rounded up, never down


def test_the_summary_cell_says_what_differs_first():
    c = _compare(_dets(), _dets(labels=(7, 2)))
    assert text.difference_cell(c) == "output 0: 1 of 2 detections differ; largest difference 0"
    assert text.difference_cell(None) == "-"


def test_rounding_up_passes_what_it_rounds_and_down_accepts_it():
    for x in (1e-4, 0.0123451, 3.0, 0.99999, 307.2, 1.5e-7, 0.1 + 0.2, 1e300, 1.7e308):
        assert x <= float(tasks.up(x)) < x * 1.011
    # the sign of zero needs the smallest subnormal: printing it must neither crash nor round to 0
    for x in (5e-324, 1e-310, 2.2250738585072014e-308):
        assert float(tasks.up(x)) >= x > 0
    assert tasks.up(5e-324) == "5e-324" and tasks.up(100.0) == "100" and tasks.up(7e-5) == "7e-5"
    for x in (5e-324, 1e-320, 0.0123, 0.1 + 0.2, 3.3e-5):  # calibrate's two-digit rounding, the same promise
        assert x <= calibrate._round_up(x) <= max(x * 1.1, x)
    assert tasks.down(0.90581) == "0.905" and tasks.down(0.99996, 4) == "0.9999"


def test_a_structure_change_measures_nothing():
    o = OutputResult(path="x", kind=Kind.STRUCTURE, tolerance=Tolerance(), unit="detections", total=3)
    assert o.largest_diff is None and json_report.output_model(o).max_matched_diff is None
