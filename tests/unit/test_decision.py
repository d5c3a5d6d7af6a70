"""The check's status from plain facts: every path to pass, fail and error, and how they weigh, without torch."""

import dataclasses
import itertools

import pytest

from reprocheck.host.checks.decision import Evidence, decide
from reprocheck.host.checks.outcome import Status, VariantStatus

CLEAN = Evidence(runs_requested=3, runs_ended=3, runs_ok=3, comparison=True)

# One fact each that makes a judged check fail.
FAILING = {
    "runs differ": {"comparison": False},
    "baseline drifted": {"baseline": False},
    "fragile under fail": {"fragile": True, "fragile_policy": "fail"},
    "blind under strict": {"blind_all": True, "strict": True},
    "a variant differs": {"variants": (VariantStatus.PASS, VariantStatus.FAIL)},
}
# One fact each that means the check could not be judged.
ERRING = {
    "a run crashed": {"runs_ok": 2},
    "a run never started": {"runs_ended": 2, "runs_ok": 2},
    "an error": {"error": "compare.outputs pattern 'x' fits no output"},
    "a variant could not run": {"variants": (VariantStatus.ERROR,)},
}
# Facts that are reported but never change the status.
NEUTRAL = {
    "nothing to compare against a baseline": {"baseline": None},
    "fragile, warned": {"fragile": True, "fragile_policy": "warn"},
    "fragile, off": {"fragile": True, "fragile_policy": "off"},
    "blind, not strict": {"blind_all": True},
    "strict, not blind": {"strict": True},
    "a skipped variant": {"variants": (VariantStatus.SKIPPED,)},
    "a matching baseline": {"baseline": True},
}


def test_a_clean_check_passes():
    assert decide(CLEAN) is Status.PASS


@pytest.mark.parametrize("fact", FAILING)
def test_each_difference_fails(fact):
    assert decide(dataclasses.replace(CLEAN, **FAILING[fact])) is Status.FAIL


@pytest.mark.parametrize("fact", ERRING)
def test_each_thing_that_prevents_judging_is_an_error(fact):
    assert decide(dataclasses.replace(CLEAN, **ERRING[fact])) is Status.ERROR


@pytest.mark.parametrize("fact", NEUTRAL)
def test_reported_facts_do_not_decide(fact):
    assert decide(dataclasses.replace(CLEAN, **NEUTRAL[fact])) is Status.PASS


@pytest.mark.parametrize(("err", "fail"), list(itertools.product(ERRING, FAILING)))
def test_an_error_outweighs_any_difference(err, fail):
    facts = {**FAILING[fail], **ERRING[err]}
    facts["variants"] = FAILING[fail].get("variants", ()) + ERRING[err].get("variants", ())
    assert decide(dataclasses.replace(CLEAN, **facts)) is Status.ERROR


def _apart(a: dict, b: dict) -> bool:
    """Two facts that set different fields (variants add up)."""
    return not (set(a) & set(b)) - {"variants"}


@pytest.mark.parametrize(
    ("neutral", "fail"), [(n, f) for n, f in itertools.product(NEUTRAL, FAILING) if _apart(NEUTRAL[n], FAILING[f])]
)
def test_nothing_reported_hides_a_difference(neutral, fail):
    facts = {**NEUTRAL[neutral], **FAILING[fail]}
    facts["variants"] = NEUTRAL[neutral].get("variants", ()) + FAILING[fail].get("variants", ())
    assert decide(dataclasses.replace(CLEAN, **facts)) is Status.FAIL


def test_nothing_compared_without_an_error_is_still_no_failure_here():
    # The pipeline turns "nothing compared" into an error before deciding (findings.nothing_compared); the
    # decision itself only fails on a difference it was shown.
    assert decide(dataclasses.replace(CLEAN, comparison=None)) is Status.PASS
