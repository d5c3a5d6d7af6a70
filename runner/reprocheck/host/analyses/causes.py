"""What diagnose says may cause a difference, from what its runs found (which modules ran in training mode,
which parameters change with the seed), those that explain a difference under the check's own recipe first."""

from __future__ import annotations

from ...diagnosis import SeedSensitivity
from ...spec import LoadedCheck


def causes(seed: SeedSensitivity | None, lc: LoadedCheck, runs_differ: bool = False) -> tuple[str, ...]:
    """Likely causes, those that explain a difference under the check's own recipe first."""
    if seed is None:
        return ()
    seeded = lc.check.recipe.seed_rngs
    if runs_differ and seeded:
        # Same seed, different results: whatever the seeded RNGs decide (init, dropout) is the same in every run.
        lead = (
            "the check's own runs differ with the same seed, so the seeded RNGs are not why: look for a "
            "nondeterministic or racy kernel, a thread-count effect, OS entropy or a generator the recipe does not "
            "seed (the first diverging module is named above)"
        )
        rest = seed_causes(seed, lc)
        return (lead, *(f"{c} (seeded by the recipe: the same in every run, not why they differ)" for c in rest))
    causes = list(seed_causes(seed, lc))
    if runs_differ and not seeded:
        causes.insert(0, "your recipe turns off seed_rngs: random init, dropout and RNG in forward differ per run")
    return tuple(causes)


def seed_causes(seed: SeedSensitivity, lc: LoadedCheck) -> tuple[str, ...]:
    causes = []
    for path, kind in seed.training_modules:
        causes.append(f"module {path or '(model)'} ({kind}) ran in training mode")
    if seed.random_parameters:
        n, total = len(seed.random_parameters), seed.parameters_total
        head = ", ".join(seed.random_parameters[:5]) + (", ..." if n > 5 else "")
        causes.append(
            f"{n} of {total} parameters/buffers change with the seed, so they are randomly initialised, "
            f"not loaded ({head})"
        )
        if lc.check.model.torchvision and lc.check.model.kwargs.get("weights") is None:
            causes.append(
                "the torchvision model was built with weights: null (random init); load real weights "
                "(weights: DEFAULT with a pre-filled TORCH_HOME) for outputs that mean something"
            )
    if seed.sensitive and not causes:
        causes.append("random draws in forward (e.g. dropout called with training=True, torch.rand, random noise)")
    return tuple(causes)
