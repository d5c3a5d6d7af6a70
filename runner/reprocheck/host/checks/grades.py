"""Grades of outputs against a reference side (the upgrade canary's --from stack, or a check's own run 1 for its
compile, dtype and autocast variants): what the grader on the torch side (worker/grade.py) answered, and which
grades a `require` level accepts. One grader and one acceptance serve both."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ...protocol import GradedCheck
from ...results import OutputResult

K = 3.0  # dist(new, ref) <= K * dist(old, ref) + eps (README "Before you upgrade" says why)
ULPS = 4.0  # eps: this many machine epsilons of the output's dtype, times its largest |reference value|


class Grade(str, enum.Enum):
    """How an output compares with the reference side's (the --from stack, or the check's run 1), best first."""

    IDENTICAL = "identical"
    NOISE = "noise"  # no farther from the float64 reference than --from is (within K times, plus eps)
    TASK = "task"  # the check's `compare:` rules judge them the same
    CHANGED = "changed"

    def __str__(self) -> str:
        return self.value


def accepted(o: OutputGrade, require: str) -> bool:
    """identical: bitwise only; noise (the default): identical or within noise, and for an output under a `compare:`
    rule also task-equivalent (the rule is what "the same" means for it); task: whatever the check's own rules accept
    (its `compare:` rules and, for the other outputs, its tolerance)."""
    if o.grade is Grade.IDENTICAL or (require != Grade.IDENTICAL and o.grade is Grade.NOISE):
        return True
    return o.grade is Grade.TASK and (require == Grade.TASK or (require == Grade.NOISE and o.result.task is not None))


@dataclass(frozen=True)
class OutputGrade:
    path: str
    grade: Grade
    result: OutputResult
    noise: tuple[dict[str, Any], ...] = ()
    rule: str = ""  # task-equivalent: the rule that calls them the same


def graded_outputs(answer: GradedCheck) -> tuple[OutputGrade, ...]:
    return tuple(OutputGrade(o.result.path, Grade(o.grade), o.result, tuple(o.noise), o.rule) for o in answer.outputs)
