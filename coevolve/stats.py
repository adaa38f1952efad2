"""The statistics every layer reports with: means, Wilson intervals of proportions, paired
bootstrap intervals of differences, and the error bars that draw them.

Plain numpy and scipy, so the pure core, the measurements and the tools share one definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, bootstrap

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Interval:
    """A proportion k / n with its Wilson confidence interval (0..1 when n = 0)."""

    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None


def proportion(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """k successes of n with the Wilson score interval (scipy's binomtest).

    >>> proportion(8, 10).low > 0.44
    True
    """
    if n == 0:
        return Interval(0, 0, 0.0, 1.0)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(k, n, float(ci.low), float(ci.high))


def mean_or_none(values: Iterable[float]) -> float | None:
    """The mean of `values` (booleans count as 0 and 1); None when there are none."""
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else None


def paired_interval(before: Sequence[float], after: Sequence[float]) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of mean(after - before), resampling pairs (scipy).

    >>> paired_interval([0, 0, 1], [1, 1, 1])[1]
    1.0
    """
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"{len(a)} values before and {len(b)} after; need the same items, at least one")
    if np.all(b - a == (b - a)[0]):  # no spread: bootstrap has nothing to resample
        return float((b - a)[0]), float((b - a)[0])
    result = bootstrap((a, b), lambda x, y, axis=-1: np.mean(y - x, axis=axis), paired=True,
                       n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                       rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def error_bars(values: Sequence[Interval]) -> tuple[list[float], list[list[float]]]:
    """Heights (0 where n = 0) and asymmetric error bars of intervals, for matplotlib."""
    heights = [v.k / v.n if v.n else 0.0 for v in values]
    below = [h - v.low if v.n else 0.0 for h, v in zip(heights, values, strict=True)]
    above = [v.high - h if v.n else 0.0 for h, v in zip(heights, values, strict=True)]
    return heights, [below, above]


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display), imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
