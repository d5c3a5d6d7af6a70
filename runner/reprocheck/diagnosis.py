"""What `diagnose` finds, as result objects for the reports: the first divergence, seed sensitivity, and what
varying each part of the recipe did."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from .pictures import Picture
from .results import Comparison, OutputResult


@dataclass(frozen=True)
class OpFinding:
    """The first aten op whose output differs between two traced runs, or where their op sequences part."""

    op: str  # aten::name.overload
    module: str  # the module it ran in, by dotted path; "" is the model itself
    module_call: int  # which call of that module (1: its first in the forward)
    index: int  # its place among the ops of that call (1: the first)
    position: int  # its place among all the forward's ops (0-based)
    location: str | None = None  # the model's source line that ran it
    parted: bool = False  # the sequences part here: the other run ran something else (`other`)
    other: str = ""
    result: OutputResult | None = None  # its outputs compared, from the targeted re-run
    detail: str = ""


@dataclass(frozen=True)
class Divergence:
    call: int  # the module's position in the order modules finished
    module: str  # dotted path; "" is the model itself
    type: str
    result: OutputResult | None  # the worst differing leaf of that module's output (from the targeted re-run)
    detail: str = ""
    module_call: int = 1  # which call of that module (1: its first in the forward)
    op: OpFinding | None = None
    stopped: str = ""  # the trace stopped before the end (a cap): why; what was found so far stands
    found: bool = True  # False: no module's output differs in what was traced (only `op` or `stopped` say more)


@dataclass(frozen=True)
class SeedSensitivity:
    sensitive: bool
    other_seed: int
    comparison: Comparison | None
    training_modules: tuple[tuple[str, str], ...]  # (path, type) in training mode during forward
    random_parameters: tuple[str, ...]  # change with the seed: randomly initialised, not loaded
    parameters_total: int
    causes: tuple[str, ...]


class Effect(str, enum.Enum):
    """What varying one knob did. Ablation (the check is reproducible): turn it off, does it break?
    Repair (it is not): turn it back on, does that fix it?"""

    BREAKS = "breaks"  # ablation: off, the runs differ
    NO_EFFECT = "no-effect"  # ablation: off, still reproducible
    FIXES = "fixes"  # repair: on, the runs agree
    STILL_DIFFERS = "still-differs"  # repair: on, they still differ

    @property
    def differs(self) -> bool:
        return self in (Effect.BREAKS, Effect.STILL_DIFFERS)


@dataclass(frozen=True)
class Ablation:
    knob: str
    description: str
    effect: Effect
    comparison: Comparison | None = None
    error: str | None = None


@dataclass(frozen=True)
class Diagnosis:
    name: str
    file: Path
    line: int
    reproducible: bool | None  # under the check's own recipe; None: the runs failed
    comparison: Comparison | None
    divergence: Divergence | None
    seed: SeedSensitivity | None
    ablations: tuple[Ablation, ...]
    nondeterministic_ops: tuple[str, ...]
    check_seed: int  # the seed the check ran with (`seed` above is the sensitivity to other seeds)
    error: str | None = None  # the runs under the check's own recipe failed
    skipped: tuple[str, ...] = ()  # recipe parts not varied, and why (cuDNN and TF32 on a CPU)
    pictures: tuple[Picture, ...] = ()  # --pictures: where the two traced runs differ, drawn

    @property
    def exit_code(self) -> int:
        if self.error:
            return 3
        return 0 if self.reproducible else 1
