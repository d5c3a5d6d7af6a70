"""Flake statistics: how often a check's runs differ from its first run, with an exact binomial interval.

Each run after the first is one trial: it differs from run 1 or it does not. For x differing runs out of n,
the rate is x/n and the interval is Clopper-Pearson's (exact, from the binomial distribution itself, never
the normal approximation, which fails at the small x a gate sees):
  * x = 0: the one-sided 95% upper bound 1 - 0.05^(1/n) ("rate < 5.8%" for n = 50);
  * x > 0: the two-sided 95% interval [p_lo, p_hi] with P(X >= x | p_lo) = 0.025 and P(X <= x | p_hi) = 0.025.
Pure Python (no scipy): the binomial tails are summed exactly and the bounds found by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

CONFIDENCE = 0.95
METHOD = "exact binomial (Clopper-Pearson); one-sided upper bound when no run differed"


def _cdf(x: int, n: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if x >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    return min(
        1.0,
        sum(
            math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq)
            for k in range(x + 1)
        ),
    )


def _bisect(f: Callable[[float], float], target: float, increasing: bool) -> float:
    """The p in [0, 1] where the monotone f crosses target."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        value = f(mid)
        if (value < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class FlakeRate:
    differing: int  # runs that differ from run 1
    compared: int  # runs compared with run 1
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.differing / self.compared if self.compared else 0.0

    def statement(self) -> str:
        if self.differing == 0:
            return (
                f"0 of {_runs(self.compared)} differed from run 1: flake rate < {_pct(self.high)} "
                f"({CONFIDENCE:.0%} upper bound, exact binomial)"
            )
        return (
            f"{self.differing} of {_runs(self.compared)} differed from run 1: rate {_pct(self.rate)} "
            f"({CONFIDENCE:.0%} interval {_pct(self.low, False)}–{_pct(self.high)}, exact binomial)"
        )


def _pct(p: float, sign: bool = True) -> str:
    text = f"{100 * p:.1f}".removesuffix(".0")
    return text + ("%" if sign else "")


def rate(differing: int, compared: int) -> FlakeRate:
    """The flake rate of `differing` out of `compared` runs, with its interval (see the module's docstring)."""
    if not 0 <= differing <= compared:
        raise ValueError(f"{differing} differing runs out of {compared}")
    if compared == 0:
        return FlakeRate(0, 0, 0.0, 1.0)
    alpha = 1 - CONFIDENCE
    if differing == 0:
        return FlakeRate(0, compared, 0.0, 1 - alpha ** (1 / compared))
    # P(X >= x | p) = 1 - cdf(x - 1) grows with p; P(X <= x | p) shrinks with p.
    low = _bisect(lambda p: 1 - _cdf(differing - 1, compared, p), alpha / 2, increasing=True)
    high = (
        1.0 if differing == compared else _bisect(lambda p: _cdf(differing, compared, p), alpha / 2, increasing=False)
    )
    return FlakeRate(differing, compared, low, high)


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"
