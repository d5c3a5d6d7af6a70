"""Invariance: the check run again with one thing changed, each variant compared with the check's own run 1.

  * batch (`invariance: {batch: [1, 8]}`): the same samples in a batch of another size (batching.py): a model
    whose output for a sample depends on the batch it is in (kernel choice by shape, cross-sample leakage,
    padding of detection batches);
  * threads (`invariance: {threads: [1, 4]}`): the CPU intra-op thread count: reductions split their work by
    thread, so a model can be run-to-run deterministic at one count and give other numbers at another.
Each variant is one run, isolated like the check's own (a fresh fork of a worker started with its settings, or a
fresh interpreter), with the same recipe otherwise; the comparison happens on the torch side, under
`invariance.tolerance` (default: the check's tolerance).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import compare, execute, recipe
from .runs import RunResult
from .spec import LoadedCheck


class Kind(str, enum.Enum):
    BATCH = "batch"
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
    left_out: tuple[str, ...] = ()  # batch: outputs that are not per-sample, so not compared

    def __bool__(self) -> bool:
        return self.status == "pass"

    @property
    def label(self) -> str:
        return f"{self.kind.value}={self.variant}"

    def names(self) -> tuple[str, str]:
        """How the two sides read in a report: run 1 at the check's setting, and the variant."""
        if self.kind is Kind.BATCH:
            return f"run 1 (batch of {self.reference})", f"batch of {self.variant}"
        plural = {"1": ""}
        return (
            f"run 1 ({self.reference} thread{plural.get(self.reference, 's')})",
            f"{self.variant} thread{plural.get(self.variant, 's')}",
        )


def _variants(lc: LoadedCheck, kinds: frozenset[str] | None) -> list[tuple[Kind, int]]:
    inv = lc.check.invariance
    if inv is None:
        return []
    wanted = [(Kind.BATCH, b) for b in inv.batch] + [(Kind.THREADS, t) for t in inv.threads]
    return [(k, v) for k, v in wanted if kinds is None or k.value in kinds]


def run_variants(
    lc: LoadedCheck, first: RunResult, workdir: Path, isolation: execute.Isolation, kinds: frozenset[str] | None
) -> tuple[VariantResult, ...]:
    """Every variant the check declares (and `kinds` selects; None: all): batch sizes, then thread counts."""
    variants = _variants(lc, kinds)
    if not variants:
        return ()
    assert lc.check.invariance is not None
    tolerance = (lc.check.invariance.tolerance or lc.check.tolerance).model_dump(mode="json")
    results = []
    for kind, value in variants:
        check = lc.check.model_copy(update={"runs": 1})
        if kind is Kind.THREADS:
            check = check.model_copy(update={"recipe": check.recipe.model_copy(update={"threads": value})})
            reference = str(recipe.resolve_threads(lc.check.recipe))
        else:
            reference = str(first.samples) if first.samples is not None else "?"
        prepared = execute.Prepared(
            dataclasses.replace(lc, check=check),
            workdir / f"{kind.value}-{value}",
            isolation,
            batch=value if kind is Kind.BATCH else None,
        )
        (run,) = prepared.run()[:1]
        if not run.ok:
            prepared.cancel()
            results.append(VariantResult(kind, str(value), reference, "error", run=run, cause=run.cause))
            continue
        request: dict[str, Any] = {
            "runs": [{"index": 1, "outputs": str(first.outputs_path)}, {"index": 2, "outputs": str(run.outputs_path)}],
            "tolerance": tolerance,
            "golden": None,
            "fingerprint": None,
            "all_ok": True,
        }
        if kind is Kind.BATCH:
            if first.samples is None or run.samples is None:
                prepared.cancel()
                cause = "the input has no batch dimension (one tensor or list argument) to vary"
                results.append(VariantResult(kind, str(value), reference, "error", run=run, cause=cause))
                continue
            request["batch"] = [first.samples, run.samples]
        answer = prepared.verdict(request)
        comparison = compare.comparison_from_dict(answer["comparison"])
        status = "pass" if comparison else "fail"
        left_out = tuple(answer.get("left_out") or ())
        results.append(VariantResult(kind, str(value), reference, status, comparison, run, left_out=left_out))
    return tuple(results)
