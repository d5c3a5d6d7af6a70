"""Flake statistics over N runs: counts per output, distinct results by content hash, exact binomial intervals."""

import json

import pytest

from helpers import planted_spec, reprocheck
from reprocheck import flake


@pytest.mark.parametrize(
    "differing,compared,text",
    [
        (0, 50, "0 of 50 runs differed from run 1: flake rate < 5.8% (95% upper bound, exact binomial)"),
        (3, 50, "3 of 50 runs differed from run 1: rate 6% (95% interval 1.3–16.5%, exact binomial)"),
        (1, 1, "1 of 1 run differed from run 1: rate 100% (95% interval 2.5–100%, exact binomial)"),
    ],
)
def test_the_statement_and_its_exact_interval(differing, compared, text):
    assert flake.rate(differing, compared).statement() == text


def test_the_interval_is_clopper_pearson():
    # Reference values from the Beta quantiles: beta.ppf(0.025, 3, 48) and beta.ppf(0.975, 4, 47).
    r = flake.rate(3, 50)
    assert r.low == pytest.approx(0.012548, abs=2e-6) and r.high == pytest.approx(0.165483, abs=2e-6)
    assert flake.rate(0, 999).high == pytest.approx(1 - 0.05 ** (1 / 999))
    with pytest.raises(ValueError):
        flake.rate(5, 4)


def test_a_check_over_many_runs_counts_differing_runs_and_distinct_results(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "differs_every_fifth_run", "runs: 12\n")
    r = reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"), "--summary", str(tmp_path / "s.md"))
    assert r.code == 1, r
    check = json.loads((tmp_path / "r.json").read_text())["checks"][0]
    assert len(check["runs"]) == 12  # a mismatch does not cut the runs short
    f = check["flake"]
    assert (f["runs_compared"], f["runs_differing"], f["distinct_results"]) == (11, 2, 3)
    assert f["interval"][0] < 2 / 11 < f["interval"][1]
    outs = {o["path"]: o for o in check["outputs"]}
    assert (outs["flaky"]["runs_differing"], outs["flaky"]["distinct_results"]) == (2, 3)
    assert (outs["stable"]["runs_differing"], outs["stable"]["distinct_results"]) == (0, 1)
    assert "2 of 11 runs differed from run 1: rate 18.2% (95% interval" in r.out
    assert "flaky: differs in 2 later runs (3 distinct results); worst:" in r.out
    assert "**Flake rate:** 2 of 11 runs differed" in (tmp_path / "s.md").read_text()


def test_a_reproducible_check_states_its_upper_bound(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "seeded_init", "runs: 51\n")))
    assert r.code == 0, r
    assert "0 of 50 runs differed from run 1: flake rate < 5.8% (95% upper bound, exact binomial)" in r.out


def test_two_runs_make_no_flake_statement(spec_dir, tmp_path):
    r = reprocheck("run", str(planted_spec(spec_dir, "seeded_init")), "--report", str(tmp_path / "r.json"))
    assert r.code == 0 and "flake rate" not in r.out
    check = json.loads((tmp_path / "r.json").read_text())["checks"][0]
    assert check["flake"] is None and check["outputs"][0]["distinct_results"] == 0
