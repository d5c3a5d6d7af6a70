"""One test per comparison rule (the comparison contract in compare.py and the README), on real tensors."""

import math

import pytest
import torch

from reprocheck.spec import ToleranceSpec
from reprocheck.worker import compare, values
from reprocheck.worker.compare import Kind, Tolerance, compare_tensors
from reprocheck.worker.outputs import flatten


def tol(atol=0.0, rtol=0.0, **outputs):
    return ToleranceSpec(atol=atol, rtol=rtol, outputs=outputs)


def test_identical_tensors_match_bitwise():
    r = compare_tensors("x", torch.arange(10.0), torch.arange(10.0), Tolerance())
    assert r and r.kind is Kind.MATCH and r.total == 10 and r.max_abs_diff == 0


def test_one_ulp_fails_bitwise_default():
    a = torch.ones(4)
    b = a.clone()
    b[2] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    r = compare_tensors("x", a, b, Tolerance())
    assert not r and r.mismatched == 1 and r.first_index == (2,)
    assert r.needed_atol == pytest.approx(float(b[2] - 1.0))


def test_atol_rtol_use_the_expected_value_as_reference():
    expected, obtained = torch.tensor([100.0]), torch.tensor([101.0])
    assert compare_tensors("x", expected, obtained, Tolerance(rtol=0.01))  # 1 <= 0.01 * |100|
    assert not compare_tensors("x", obtained * 0 + 99.0, obtained, Tolerance(rtol=0.01 * 99 / 100))


def test_needed_tolerances_would_pass():
    e = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    o = e + torch.randn(1000, generator=torch.Generator().manual_seed(1)) * 1e-4
    r = compare_tensors("x", e, o, Tolerance(rtol=1e-6))
    assert not r
    assert compare_tensors("x", e, o, Tolerance(atol=r.needed_atol * 1.0000001, rtol=1e-6))
    assert compare_tensors("x", e, o, Tolerance(rtol=r.needed_rtol * 1.0000001))


def test_integers_compare_exactly_whatever_the_tolerance():
    r = compare_tensors("labels", torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4]), Tolerance(atol=10.0))
    assert not r and r.exact and r.mismatched == 1 and r.needed_atol is None


def test_bools_compare_exactly():
    r = compare_tensors("mask", torch.tensor([True, False]), torch.tensor([True, True]), Tolerance(atol=1.0))
    assert not r and r.mismatched == 1


def test_nan_in_same_positions_is_equal_and_counted():
    a = torch.tensor([1.0, math.nan, 3.0])
    r = compare_tensors("x", a, a.clone(), Tolerance())
    assert r and r.nan_count == 1


def test_nan_in_one_run_only_is_a_mismatch_no_tolerance_fixes():
    r = compare_tensors("x", torch.tensor([1.0, 2.0]), torch.tensor([1.0, math.nan]), Tolerance(atol=1e9))
    assert not r and r.mismatched == 1 and r.needed_atol is None


def test_infinities_equal_only_when_equal():
    inf = math.inf
    assert compare_tensors("x", torch.tensor([inf, -inf]), torch.tensor([inf, -inf]), Tolerance())
    assert not compare_tensors("x", torch.tensor([inf]), torch.tensor([-inf]), Tolerance(atol=1e9))
    assert not compare_tensors("x", torch.tensor([inf]), torch.tensor([1e30]), Tolerance(atol=1e9))


def test_shape_difference_is_a_count_mismatch_not_a_crash():
    r = compare_tensors("0.boxes", torch.zeros(12, 4), torch.zeros(9, 4), Tolerance())
    assert r.kind is Kind.STRUCTURE and "12 vs 9 items" in r.detail


def test_dtype_difference_is_structural():
    r = compare_tensors("x", torch.zeros(2), torch.zeros(2, dtype=torch.float64), Tolerance())
    assert r.kind is Kind.STRUCTURE and "dtype" in r.detail


def test_complex_values_compare_both_parts():
    a = torch.tensor([1 + 1j])
    assert not compare_tensors("x", a, torch.tensor([1 + 2j]), Tolerance())


def test_half_precision_compares():
    a = torch.ones(8, dtype=torch.bfloat16)
    assert not compare_tensors("x", a, a * 2, Tolerance()) and compare_tensors("x", a, a * 2, Tolerance(atol=1.0))


def test_chunked_path_agrees_with_one_chunk(monkeypatch):
    e = torch.randn(10_000, generator=torch.Generator().manual_seed(3))
    o = e.clone()
    o[[5, 777, 9_999]] += torch.tensor([1e-3, -2e-3, 5e-4])
    whole = compare_tensors("x", e, o, Tolerance(atol=1e-4))
    monkeypatch.setattr(values, "CHUNK", 1000)
    chunked = compare_tensors("x", e, o, Tolerance(atol=1e-4))
    assert (whole.mismatched, whole.first_index, whole.max_abs_diff) == (
        chunked.mismatched,
        chunked.first_index,
        chunked.max_abs_diff,
    )
    assert chunked.mismatched == 3 and chunked.first_index == (5,)


def test_per_output_tolerance_first_matching_glob_wins():
    spec = tol(0.0, 0.0, **{"*.boxes": {"atol": 1e-3}, "0.*": {"atol": 1.0}})
    assert compare.tolerance_for("0.boxes", spec).atol == 1e-3
    assert compare.tolerance_for("0.scores", spec).atol == 1.0
    assert compare.tolerance_for("logits", spec).atol == 0.0


def test_per_output_tolerance_falls_back_to_the_check():
    spec = tol(0.5, 0.25, **{"x": {"atol": 2.0}})
    t = compare.tolerance_for("x", spec)
    assert (t.atol, t.rtol, t.pattern) == (2.0, 0.25, "x")


def test_structure_missing_and_extra_keys():
    a = flatten({"a": torch.ones(1), "b": [torch.ones(1), torch.ones(1)]})
    b = flatten({"a": torch.ones(1) * 2, "c": torch.ones(1)})
    results = compare.compare(a, b, tol())
    details = {r.path: r.detail for r in results if not r}
    assert details["output"] == "missing keys b; extra keys c in the obtained run"
    assert "a" in details  # the keys both runs have are still compared


def test_structure_length_difference_compares_common_prefix():
    a = flatten([torch.ones(1), torch.ones(1)])
    b = flatten([torch.ones(1) * 2])
    results = {r.path: r for r in compare.compare(a, b, tol())}
    assert results["output"].kind is Kind.STRUCTURE and "length 2 expected, 1 obtained" in results["output"].detail
    assert results["0"].kind is Kind.VALUES


def test_type_difference_is_structural():
    results = compare.compare(flatten({"x": torch.ones(1)}), flatten({"x": [torch.ones(1)]}), tol())
    assert results[0].kind is Kind.STRUCTURE


def test_strings_and_numbers_in_outputs():
    a, b = flatten({"label": "cat", "score": 0.5}), flatten({"label": "dog", "score": 0.5})
    results = {r.path: r for r in compare.compare(a, b, tol())}
    assert results["label"].kind is Kind.STRUCTURE and "'cat'" in results["label"].detail
    assert results["score"]


def test_worst_run_is_kept_and_comparison_is_falsy_when_any_fails():
    runs = [flatten(torch.zeros(3)), flatten(torch.tensor([0.0, 1e-6, 0.0])), flatten(torch.tensor([0.0, 0.5, 0.0]))]
    c = compare.compare_runs(runs, tol(atol=1e-3))
    assert not c and len(c.failures) == 1
    assert c.outputs[0].obtained_run == 3 and c.outputs[0].max_abs_diff == pytest.approx(0.5)


def test_comparison_does_not_print(capsys):
    compare.compare_runs([flatten(torch.zeros(3)), flatten(torch.ones(3))], tol())
    assert capsys.readouterr() == ("", "")


def test_nan_only_in_the_expected_run_is_a_mismatch():
    r = compare_tensors("x", torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]), Tolerance(atol=1e9))
    assert not r and r.mismatched == 1 and r.first_index == (1,) and r.needed_atol is None


def test_the_sign_of_zero_differs_under_the_bitwise_default_only():
    r = compare_tensors("x", torch.tensor([0.0, 1.0]), torch.tensor([-0.0, 1.0]), Tolerance())
    assert not r and r.mismatched == 1 and "sign of zero" in r.detail and r.needed_atol > 0
    assert compare_tensors("x", torch.tensor([0.0]), torch.tensor([-0.0]), Tolerance(atol=1e-12))
    assert compare_tensors("x", torch.tensor([-0.0]), torch.tensor([-0.0]), Tolerance())


def test_atol_and_rtol_add_up():
    expected = torch.tensor([100.0, 0.0])
    tol = Tolerance(atol=0.5, rtol=0.01)  # allows 1.5 at 100 and 0.5 at 0
    assert compare_tensors("x", expected, torch.tensor([101.4, 0.4]), tol)
    r = compare_tensors("x", expected, torch.tensor([101.6, 0.4]), tol)
    assert not r and r.first_index == (0,)
    assert compare_tensors("x", expected, torch.tensor([101.6, 0.4]), Tolerance(atol=0.5, rtol=0.011))
    assert not compare_tensors("x", expected, torch.tensor([100.0, 0.6]), tol)
