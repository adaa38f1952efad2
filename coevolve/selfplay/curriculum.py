"""A Boltzmann bandit over question categories (Self-Evolving Curriculum).

Each category is an arm with a value Q; every prompt draws its category from softmax(Q / τ),
and after a step each drawn arm's Q moves toward its reward by TD(0): Q ← α·r + (1 − α)·Q.
An arm's reward is the mean |GRPO advantage| of its items (0 when every group was all right
or all wrong). Arms not drawn keep their Q (the published code decays them toward 0), so an
arm is judged only on evidence about itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class Bandit:
    """Boltzmann exploration over named arms with TD(0) value updates and a resumable state."""

    def __init__(
        self,
        arms: Sequence[str],
        *,
        alpha: float = 0.5,
        temperature: float = 1.0,
        seed: int = 0,
        initial_q: float = 0.0,
    ) -> None:
        if not arms:
            raise ValueError("a bandit needs at least one arm")
        if len(set(arms)) != len(arms):
            raise ValueError(f"arms must be distinct, got {list(arms)}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
        if temperature <= 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.arms = tuple(arms)
        self.alpha = alpha
        self.temperature = temperature
        self.q = {arm: float(initial_q) for arm in self.arms}
        self.updates = 0
        self._rng = np.random.default_rng(seed)

    def probabilities(self) -> dict[str, float]:
        """p(a) = softmax(Q(a) / τ), computed stably."""
        logits = np.array([self.q[a] for a in self.arms]) / self.temperature
        weights = np.exp(logits - logits.max())
        probs = weights / weights.sum()
        return dict(zip(self.arms, probs.tolist(), strict=True))

    def sample(self, k: int, allowed: Sequence[str] | None = None) -> list[str]:
        """Draw the arms of k items independently from the Boltzmann distribution.

        `allowed` restricts the draw to some arms (e.g. the categories that have questions in
        the solver's dataset), renormalising their probabilities.
        """
        arms = self.arms if allowed is None else tuple(a for a in self.arms if a in set(allowed))
        if not arms:
            raise ValueError(f"no arm allowed among {list(self.arms)} (allowed: {allowed})")
        probs = self.probabilities()
        weights = np.array([probs[a] for a in arms])
        picks = self._rng.choice(len(arms), size=k, p=weights / weights.sum())
        return [arms[i] for i in picks]

    def update(self, rewards: Mapping[str, float]) -> None:
        """TD(0) update of the arms in `rewards`; other arms keep their Q (module docstring)."""
        unknown = set(rewards) - set(self.arms)
        if unknown:
            raise KeyError(f"unknown arms {sorted(unknown)}; valid: {list(self.arms)}")
        for arm, reward in rewards.items():
            self.q[arm] = self.alpha * float(reward) + (1.0 - self.alpha) * self.q[arm]
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: values, hyperparameters and the RNG state."""
        return {
            "arms": list(self.arms),
            "alpha": self.alpha,
            "temperature": self.temperature,
            "q": dict(self.q),
            "updates": self.updates,
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if list(state["arms"]) != list(self.arms):
            raise ValueError(f"saved arms {state['arms']} differ from this bandit's {list(self.arms)}")
        self.alpha = float(state["alpha"])
        self.temperature = float(state["temperature"])
        self.q = {arm: float(state["q"][arm]) for arm in self.arms}
        self.updates = int(state["updates"])
        self._rng.bit_generator.state = state["rng"]


def arm_rewards(categories: Sequence[str], advantages: Sequence[float]) -> dict[str, float]:
    """Mean absolute advantage per category over a step's items (SEC's learning-gain proxy).

    `advantages[i]` is item i's advantage (for GRPO, the token-mean advantage of the
    response, which is the same on every token); only categories present get a reward.

    >>> arm_rewards(["a", "a", "b"], [1.0, -1.0, 0.0])
    {'a': 1.0, 'b': 0.0}
    """
    if len(categories) != len(advantages):
        raise ValueError(f"{len(categories)} categories but {len(advantages)} advantages")
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for category, advantage in zip(categories, advantages, strict=True):
        sums[category] += abs(float(advantage))
        counts[category] += 1
    return {c: sums[c] / counts[c] for c in sums}
