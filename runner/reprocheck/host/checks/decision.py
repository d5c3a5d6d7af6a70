"""A check's status and each variant's, decided from plain facts: no torch, no process, no file. Every path to pass,
fail, error (or, for a variant, skipped) is here, in the order they weigh: what could not be judged is an error
whatever else it shows; what was judged fails on any difference it was asked to see; only then does it pass."""

from __future__ import annotations

from dataclasses import dataclass

from .outcome import Status, VariantStatus


@dataclass(frozen=True)
class Evidence:
    runs_requested: int
    runs_ended: int  # the runs that ran at all (a timed-out run ended; a run never started did not)
    runs_ok: int
    error: str = ""  # why the runs could not be judged (a rule that fits no output, nothing compared, a timeout)
    comparison: bool | None = None  # the runs agreed; None: nothing was compared
    baseline: bool | None = None  # the golden outputs agreed; None: no baseline
    fragile: bool = False  # run 1 has outputs on a decision boundary
    fragile_policy: str = "warn"  # warn | fail | off
    blind_all: bool = False  # every compared output is constant
    strict: bool = False  # a check that cannot see fails
    variants: tuple[VariantStatus, ...] = ()


def decide(e: Evidence) -> Status:
    if e.error or not e.runs_ok == e.runs_ended == e.runs_requested:
        return Status.ERROR
    if VariantStatus.ERROR in e.variants:
        return Status.ERROR
    failed = (
        e.comparison is False
        or e.baseline is False
        or (e.fragile and e.fragile_policy == "fail")
        or (e.blind_all and e.strict)
        or VariantStatus.FAIL in e.variants  # a skipped variant is neither: the report says so
    )
    return Status.FAIL if failed else Status.PASS


@dataclass(frozen=True)
class VariantEvidence:
    run_ok: bool = True  # False: its run failed
    unavailable: bool = False  # its device is not on this machine
    require_devices: bool = False  # --require-devices: a device that is not here is an error, not a skip
    error: str | None = None  # why its run could not be compared with run 1 (even an empty reason is an error)
    passed: bool = False  # the comparison with run 1 passed (weighed only without an error)


def decide_variant(e: VariantEvidence) -> VariantStatus:
    if not e.run_ok:
        return VariantStatus.SKIPPED if e.unavailable and not e.require_devices else VariantStatus.ERROR
    if e.error is not None:
        return VariantStatus.ERROR
    return VariantStatus.PASS if e.passed else VariantStatus.FAIL
