"""The one timing rule of the benchmark scripts: the best of a few runs after a warm-up.

The minimum, not the mean: on a shared machine the other processes only ever add time.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(fn: Callable[[], object], repeats: int, *, warmup: bool = True) -> float:
    """The fastest of `repeats` timed calls of `fn` (after one untimed call if `warmup`)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
