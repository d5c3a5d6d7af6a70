"""`--pictures` (and the pictures of `--html`): the torch side asked to draw what differs (protocol.DrawRequest,
worker/pictures.py) from the outputs the runs saved, never by running the model again: a check's run 1 and the run
that differs most, each failed variant (with the float64 reference where one was run), diagnose's two traced runs,
`upgrade`'s two stacks. Pictures only illustrate a verdict made elsewhere: one that cannot be drawn is a note, never
a failure. What the worker says it drew is checked before a report names it: a plain file, directly in the folder,
with a safe name."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from ...pictures import NAME, Picture, safe_name
from ...protocol import DrawAnswer, DrawRequest, worker_check
from ...results import Comparison
from ...spec import LoadedCheck
from ..workers.helper_client import Helpers, WorkerFailed
from ..workers.run_result import RunResult
from .grades import Grade
from .outcome import VariantKind, VariantResult, VariantStatus

Ask = Callable[[DrawRequest, str], DrawAnswer]  # a request, and the name of a fresh folder for its answer file


def checked(folder: Path, pictures: list[Picture]) -> tuple[Picture, ...]:
    """The pictures that are what they say: a safe name, a regular file (never a link) directly in `folder`."""
    kept = []
    for p in pictures:
        if not NAME.match(p.file):
            continue
        try:
            st = os.lstat(folder / p.file)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            kept.append(p)
    return tuple(dict.fromkeys(kept))


def _asked(ask: Ask, request: DrawRequest, answer_folder: str) -> tuple[tuple[Picture, ...], list[str]]:
    try:
        answer = ask(request, answer_folder)
    except (WorkerFailed, subprocess.TimeoutExpired, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (), [f"pictures: not drawn ({first})"]
    return checked(Path(request.folder), answer.pictures), list(answer.notes)


def draw_runs(
    lc: LoadedCheck,
    tag: str,
    ok: list[RunResult],
    comparison: Comparison | None,
    folder: Path,
    ask: Ask,
    input_seed: int | None = None,
) -> tuple[tuple[Picture, ...], list[str]]:
    """A check's own runs, when they differ: run 1 and the run that differs most, for the outputs that differ."""
    if comparison is None or comparison or len(ok) < 2:
        return (), []
    failures = comparison.failures
    other = next((r for r in ok if failures and r.index == failures[0].obtained_run), ok[1])
    request = DrawRequest(
        folder=str(folder),
        prefix=safe_name(tag),
        expected=str(ok[0].outputs_path),
        obtained=str(other.outputs_path),
        names=("run 1", f"run {other.index}"),
        check=worker_check(lc.check),
        input_seed=input_seed,
        paths=[o.path for o in failures],
    )
    return _asked(ask, request, "draw-runs")


def draw_variants(
    lc: LoadedCheck,
    tag: str,
    first: RunResult,
    variants: tuple[VariantResult, ...],
    reference: Path | None,
    folder: Path,
    ask: Ask,
) -> tuple[tuple[Picture, ...], list[str]]:
    """Each variant that failed against run 1 (a batch variant's samples are not drawn), with each side's error
    against the float64 reference where it was run."""
    pictures: tuple[Picture, ...] = ()
    notes: list[str] = []
    for v in variants:
        if v.status is not VariantStatus.FAIL or v.run is None or not v.run.ok:
            continue
        if v.kind is VariantKind.BATCH:
            notes.append(f"pictures: the {v.label} variant is not drawn (a batch of another size)")
            continue
        paths = [o.path for o in v.comparison.failures] if v.comparison is not None else []
        paths += [g.path for g in v.grades if g.grade is not Grade.IDENTICAL]
        request = DrawRequest(
            folder=str(folder),
            prefix=safe_name(tag, v.label),
            expected=str(first.outputs_path),
            obtained=str(v.run.outputs_path),
            names=v.names(),
            reference=str(reference) if reference is not None and reference.is_file() else None,
            check=worker_check(lc.check),
            paths=paths,
        )
        drawn, said = _asked(ask, request, f"draw-{safe_name(v.label)}")
        pictures += drawn
        notes += said
    return pictures, notes


class Traced:
    """`diagnose --pictures`: its two traced runs drawn, when they differ, by its helper process (no folder: nothing
    is drawn). Their outputs are read before the traced runs' folder goes."""

    def __init__(
        self, lc: LoadedCheck | None = None, folder: Path | None = None, helpers: Helpers | None = None
    ) -> None:
        self.lc, self.folder, self.helpers = lc, folder, helpers
        self.pictures: tuple[Picture, ...] = ()
        self.notes: list[str] = []

    def draw(self, runs: list[RunResult]) -> None:
        ok = [r for r in runs if r.ok]
        if self.lc is None or self.folder is None or self.helpers is None or len(ok) < 2:
            return
        helpers = self.helpers
        tag = hashlib.sha256(os.path.abspath(self.lc.file).encode()).hexdigest()[:6]  # same-named checks apart
        request = DrawRequest(
            folder=str(self.folder),
            prefix=safe_name("diagnose", self.lc.name, tag),
            expected=str(ok[0].outputs_path),
            obtained=str(ok[1].outputs_path),
            names=("traced run 1", "traced run 2"),
            check=worker_check(self.lc.check),
        )
        self.pictures, self.notes = _asked(lambda q, _: helpers.ask(q, DrawAnswer), request, "")
