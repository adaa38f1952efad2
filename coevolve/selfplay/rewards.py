"""Rewards of the two roles, each returned with its named parts.

Challenger (R-Zero): a question earns most when the frozen solver's vote splits 50/50
(uncertainty reward), less when the batch holds near-copies of it (repetition penalty, see
`coevolve.selfplay.repetition`), and a fixed `invalid_reward` when its format check fails.
Solver: 1 when its answer agrees with the pseudo-label (the majority answer), else 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from coevolve.records import Reward
from coevolve.selfplay.repetition import repetition_penalty
from coevolve.selfplay.vote import Equivalence, agrees

__all__ = [
    "challenger_reward",
    "challenger_rewards",
    "repetition_penalty",
    "solver_reward",
    "uncertainty_reward",
]


def uncertainty_reward(agreement: float) -> float:
    """1 − 2·|p − 0.5|: 1 when the solver splits evenly, 0 when it is unanimous.

    >>> uncertainty_reward(0.5), uncertainty_reward(1.0), uncertainty_reward(0.8)
    (1.0, 0.0, 0.4)
    """
    if not 0.0 <= agreement <= 1.0:
        raise ValueError(f"agreement must lie in [0, 1], got {agreement}")
    return round(1.0 - 2.0 * abs(agreement - 0.5), 12)


def challenger_reward(
    valid: bool, agreement: float, penalty: float, invalid_reward: float = -1.0
) -> Reward:
    """One question's reward: max(0, uncertainty − penalty) if valid, else `invalid_reward`.

    The parts are reported for valid questions only; an invalid one has `format_valid` 0.
    """
    if not valid:
        return Reward(total=invalid_reward, parts={"format_valid": 0.0})
    uncertainty = uncertainty_reward(agreement)
    return Reward(
        total=max(0.0, uncertainty - penalty),
        parts={"format_valid": 1.0, "uncertainty": uncertainty, "repetition_penalty": penalty},
    )


def challenger_rewards(
    questions: Sequence[str | None],
    agreements: Sequence[float | None],
    threshold: float = 0.5,
    invalid_reward: float = -1.0,
) -> list[Reward]:
    """Rewards of a batch of challenger outputs.

    `questions[i]` is the parsed question, None when the format check failed; `agreements[i]`
    is the solver's agreement on it (ignored when the question is None). The repetition
    penalty is computed among the valid questions of the batch, divided by their number.
    """
    if len(questions) != len(agreements):
        raise ValueError(f"{len(questions)} questions but {len(agreements)} agreements")
    valid_idx = [i for i, q in enumerate(questions) if q is not None]
    penalties = repetition_penalty([questions[i] for i in valid_idx], threshold)
    penalty_of = dict(zip(valid_idx, penalties, strict=True))
    rewards = []
    for i, agreement in enumerate(agreements):
        if i in penalty_of and agreement is None:
            raise ValueError(f"question {i} is valid but has no agreement")
        rewards.append(
            challenger_reward(i in penalty_of, agreement or 0.0, penalty_of.get(i, 0.0), invalid_reward)
        )
    return rewards


def solver_reward(
    answer: str | None, pseudo_label: str | None, equivalent: Equivalence | None = None
) -> Reward:
    """1 if the solver's extracted answer is equivalent to the pseudo-label, else 0."""
    correct = float(agrees(answer, pseudo_label, equivalent))
    return Reward(
        total=correct,
        parts={"matches_pseudo_label": correct, "answer_extracted": float(answer is not None)},
    )
