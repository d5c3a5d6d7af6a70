"""The decisions from plain facts, without torch: the check's status (every path to pass, fail and error, and how they
weigh), a variant's status, and the upgrade canary's grades against --require and each check's verdict."""

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


# --- a variant's status -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        ({"passed": True}, VariantStatus.PASS),
        ({"passed": False}, VariantStatus.FAIL),
        ({"error": "nothing compared", "passed": True}, VariantStatus.ERROR),  # an error outweighs a pass
        ({"error": "", "passed": True}, VariantStatus.ERROR),  # even a reason that says nothing
        ({"run_ok": False}, VariantStatus.ERROR),
        ({"run_ok": False, "unavailable": True}, VariantStatus.SKIPPED),  # its device is not here
        ({"run_ok": False, "unavailable": True, "require_devices": True}, VariantStatus.ERROR),
        ({"run_ok": False, "passed": True}, VariantStatus.ERROR),  # a failed run never passes
    ],
)
def test_a_variants_status(facts, status):
    from reprocheck.host.checks.decision import VariantEvidence, decide_variant

    assert decide_variant(VariantEvidence(**facts)) is status


# --- upgrade: an output's grade against --require, and a check's verdict -------------------------------------------


def _graded(*grades, task=False, error=""):
    from reprocheck.protocol import GradedCheck, GradedOutput
    from reprocheck.results import Kind, OutputResult, TaskResult, Tolerance

    outputs = []
    for i, g in enumerate(grades):
        t = TaskResult(task="detection", pattern="*", stats={}) if task else None
        result = OutputResult(path=f"o{i}", kind=Kind.VALUES, tolerance=Tolerance(0.0, 0.0), task=t)
        outputs.append(GradedOutput(grade=g, result=result))
    return GradedCheck(name="c", outputs=outputs, error=error)


@pytest.mark.parametrize(
    ("grade", "task", "accepted"),
    [
        ("identical", False, {"identical", "noise", "task"}),
        ("noise", False, {"noise", "task"}),
        ("task", False, {"task"}),  # task-equivalent by the tolerance alone: only --require task takes it
        ("task", True, {"noise", "task"}),  # under a compare: rule, that rule is what "the same" means
        ("changed", True, set()),
    ],
)
def test_which_grades_each_require_accepts(grade, task, accepted):
    from reprocheck.host.analyses.upgrade import accepted as accepts
    from reprocheck.host.analyses.upgrade import graded_outputs

    (o,) = graded_outputs(_graded(grade, task=task))
    assert {r for r in ("identical", "noise", "task") if accepts(o, r)} == accepted


def test_a_checks_upgrade_verdict(tmp_path):
    from helpers import planted_spec
    from reprocheck.host.analyses.upgrade import Verdict, graded_check
    from reprocheck.spec import load_spec

    (lc,) = load_spec(str(planted_spec(tmp_path, "mlp")))
    assert graded_check(lc, _graded("identical", "noise"), "noise", ()).verdict is Verdict.SAFE
    changed = graded_check(lc, _graded("identical", "changed"), "noise", ())
    assert (
        changed.verdict is Verdict.CHANGED and "1 of 2 outputs below --require noise: o1 (changed)" in changed.message
    )
    assert graded_check(lc, _graded("noise"), "identical", ()).verdict is Verdict.CHANGED
    assert graded_check(lc, _graded(error="boom"), "noise", ()).verdict is Verdict.ERROR
    assert graded_check(lc, _graded(), "noise", ()).verdict is Verdict.ERROR  # nothing graded is never safe
