"""Where GRPO has a gradient: groups whose rewards are not all equal.

A solver group of G answers to a question is rewarded 1 for each answer that matches the
pseudo-label and 0 otherwise; if all G match, or none does, every advantage is zero and the
group teaches nothing. With p the chance that one answer matches (estimated by the vote's
agreement), a group is informative with probability 1 − p^G − (1 − p)^G. Knapsack RL's idea
is to spend a fixed rollout budget where that chance is high; here the solver's training
questions are drawn in proportion to it (`informative_weights`), at the same cost per step.
"""

from __future__ import annotations

from collections.abc import Sequence


def informative_probability(p: float, group_size: int) -> float:
    """Chance that a group of `group_size` Bernoulli(p) rewards is not all equal.

    >>> round(informative_probability(0.5, 4), 4), informative_probability(1.0, 4)
    (0.875, 0.0)
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    return max(0.0, 1.0 - p**group_size - (1.0 - p) ** group_size)


def informative_weights(agreements: Sequence[float], group_size: int, floor: float = 0.05) -> list[float]:
    """Sampling weights of questions: their chance of an informative group, at least `floor`.

    The floor keeps every question drawable: an agreement is itself a noisy estimate.
    """
    return [max(informative_probability(p, group_size), floor) for p in agreements]

