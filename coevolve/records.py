"""The records that flow through the co-evolution loop, as frozen dataclasses.

Samples are always grouped by question id, never by position in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Question:
    """A question written by the challenger (or taken from a held-out set).

    `answer` is the reference answer when one is known: a true answer from an oracle or a
    held-out file, or a pseudo-label from the solver's majority vote (see `label_source`).
    """

    id: str
    category: str
    text: str
    answer: str | None = None
    label_source: str | None = None  # "oracle", "heldout", "majority_vote" or None


@dataclass(frozen=True)
class AnswerGroup:
    """The solver's m sampled completions for one question and the answers extracted from them.

    `answers[i]` is None when no answer could be extracted from `completions[i]`.
    """

    question_id: str
    completions: tuple[str, ...]
    answers: tuple[str | None, ...]

    def __post_init__(self) -> None:
        if len(self.completions) != len(self.answers):
            raise ValueError(
                f"question {self.question_id}: {len(self.completions)} completions "
                f"but {len(self.answers)} answers"
            )


@dataclass(frozen=True)
class Vote:
    """The outcome of a majority vote over n sampled answers.

    agreement = count / n, where n counts the unextractable (None) answers too.
    """

    answer: str | None
    count: int
    agreement: float
    n: int


@dataclass(frozen=True)
class Reward:
    """A scalar reward with the named parts it was composed from."""

    total: float
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rollout:
    """One response generated in a training step, with the info of the item it answers
    (`extra_info`: its category, and for the solver the oracle's answer when there is one) and
    its `ground_truth` (the solver's pseudo-label; empty for the challenger)."""

    extra_info: dict[str, Any]
    ground_truth: str
    response: str
