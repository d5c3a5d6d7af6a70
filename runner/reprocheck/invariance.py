"""Invariance: the check run again with one thing changed, each variant compared with the check's own run 1.

This release varies the CPU intra-op thread count (`invariance: {threads: [1, 4]}`): reductions split their work
by thread, so a model can be run-to-run deterministic at one count and still give other numbers at another — as
on a machine with more or fewer cores. Each variant is one run, isolated like the check's own (a fresh fork of a
worker started with that thread count, or a fresh interpreter), with the same recipe otherwise; the comparison
happens on the torch side, under `invariance.tolerance` (default: the check's tolerance).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path

from . import compare, execute, recipe
from .runs import RunResult
from .spec import LoadedCheck


class Kind(str, enum.Enum):
    THREADS = "threads"


KINDS = tuple(k.value for k in Kind)


@dataclass(frozen=True)
class VariantResult:
    """One variant compared with the check's run 1. Truthy when it matched."""

    kind: Kind
    variant: str  # e.g. "1" for one thread
    reference: str  # what run 1 was, in the same words: "2"
    status: str  # "pass" | "fail" | "error"
    comparison: compare.Comparison | None = None
    run: RunResult | None = None
    cause: str = ""  # why it could not be compared

    def __bool__(self) -> bool:
        return self.status == "pass"

    @property
    def label(self) -> str:
        return f"{self.kind.value}={self.variant}"

    def names(self) -> tuple[str, str]:
        """How the two sides read in a report: run 1 at the check's setting, and the variant."""
        unit = {Kind.THREADS: "thread"}[self.kind]
        plural = {"1": ""}
        return (
            f"run 1 ({self.reference} {unit}{plural.get(self.reference, 's')})",
            f"{self.variant} {unit}{plural.get(self.variant, 's')}",
        )


def run_variants(
    lc: LoadedCheck, first: RunResult, workdir: Path, isolation: execute.Isolation, kinds: frozenset[str] | None
) -> tuple[VariantResult, ...]:
    """Every variant the check declares (and `kinds` selects; None: all), in spec order."""
    inv = lc.check.invariance
    if inv is None or (kinds is not None and Kind.THREADS.value not in kinds):
        return ()
    tolerance = (inv.tolerance or lc.check.tolerance).model_dump(mode="json")
    reference = str(recipe.resolve_threads(lc.check.recipe))
    results = []
    for threads in inv.threads:
        check = lc.check.model_copy(
            update={"recipe": lc.check.recipe.model_copy(update={"threads": threads}), "runs": 1}
        )
        variant = dataclasses.replace(lc, check=check)
        prepared = execute.Prepared(variant, workdir / f"threads-{threads}", isolation)
        (run,) = prepared.run()[:1]
        if not run.ok:
            prepared.cancel()
            results.append(VariantResult(Kind.THREADS, str(threads), reference, "error", run=run, cause=run.cause))
            continue
        answer = prepared.verdict(
            {
                "runs": [
                    {"index": 1, "outputs": str(first.outputs_path)},
                    {"index": 2, "outputs": str(run.outputs_path)},
                ],
                "tolerance": tolerance,
                "golden": None,
                "fingerprint": None,
                "all_ok": True,
            }
        )
        comparison = compare.comparison_from_dict(answer["comparison"])
        status = "pass" if comparison else "fail"
        results.append(VariantResult(Kind.THREADS, str(threads), reference, status, comparison, run))
    return tuple(results)
