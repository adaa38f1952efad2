"""Label quality during a run: is the solver being taught right answers or its own errors?

Without an oracle, the solver's majority vote on held-out questions with true answers (at the
vote temperature, in-band questions only) estimates what the dataset's labels are worth; a
label that changes between iterations for the same question signals an unstable majority
(TTRL-Guard's flip rate) and needs no true answer. Below 0.5 the solver is trained towards its
errors: the user is told so once per phase, with `coevolve probe` to measure the regime.
Pure Python: the loop samples and passes the answers in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coevolve.records import Question, Vote
from coevolve.selfplay.filters import in_band
from coevolve.selfplay.vote import Equivalence, agrees

LABEL_ACCURACY_FLOOR = 0.5


@dataclass(frozen=True)
class HeldoutVoteQuality:
    """Majority votes at the vote temperature on held-out questions with true answers."""

    questions: int
    majority_correct: int
    in_band: int
    in_band_correct: int

    @property
    def majority_accuracy(self) -> float | None:
        return self.majority_correct / self.questions if self.questions else None

    @property
    def in_band_label_accuracy(self) -> float | None:
        """The held-out estimate of the dataset's pseudo-label accuracy."""
        return self.in_band_correct / self.in_band if self.in_band else None


def heldout_vote_quality(questions: Sequence[Question], votes: Sequence[Vote],
                         band: tuple[float, float], equivalent: Equivalence) -> HeldoutVoteQuality:
    """How often the majority, and the majority of in-band questions, is the true answer."""
    if len(questions) != len(votes):
        raise ValueError(f"{len(questions)} questions but {len(votes)} votes")
    right = [agrees(v.answer, q.answer, equivalent) for q, v in zip(questions, votes, strict=True)]
    inside = [in_band(v.agreement, *band) for v in votes]
    return HeldoutVoteQuality(len(questions), sum(right), sum(inside),
                              sum(r for r, i in zip(right, inside, strict=True) if i))


def label_flip_rate(previous: Sequence[Question], votes: Sequence[Vote],
                    equivalent: Equivalence) -> float | None:
    """Share of last iteration's kept questions whose majority answer now differs from the
    label they were kept with (a vote with no answer counts as a flip). None when none."""
    if len(previous) != len(votes):
        raise ValueError(f"{len(previous)} questions but {len(votes)} votes")
    if not previous:
        return None
    flips = sum(not agrees(v.answer, q.answer, equivalent) for q, v in zip(previous, votes, strict=True))
    return flips / len(previous)


def label_warning(what: str, value: float | None, recipe_path: str, support: str = "") -> str | None:
    """The console/TensorBoard warning when a label accuracy (or its estimate) is below 0.5.

    `support` says what the value was measured on (e.g. "2 of 7 questions"), so a reader can
    tell a firm figure from a handful of questions.
    """
    if value is None or value >= LABEL_ACCURACY_FLOOR:
        return None
    measured = f" ({support})" if support else ""
    return (f"{what} is {value:.2f}{measured}, below {LABEL_ACCURACY_FLOOR}: the solver is being trained towards "
            f"its own errors more often than not. Measure the regime per category and vote "
            f"temperature with `coevolve probe {recipe_path}` and restrict domain.categories / "
            f"lower vote.temperature as it recommends")


class WarnOncePerPhase:
    """Remembers which phases already warned, so a phase warns at most once."""

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def first(self, phase_key: str, message: str | None) -> str | None:
        """`message` the first time a phase has one, else None."""
        if message is None or phase_key in self._warned:
            return None
        self._warned.add(phase_key)
        return message
