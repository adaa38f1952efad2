"""What the solver was given to learn from: a summary of each iteration's kept dataset.

A kept question on which every vote agreed gives the solver's GRPO group nothing to compare
(its sampled answers mostly agree with the label and with each other); a trivial one ("x / 1")
teaches no more than the answer format. The count of questions that are neither is what a
question writer adds over another. Pure: reads the run's saved datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coevolve.domains.base import Domain
from coevolve.records import Question
from coevolve.selfplay.vote import agrees
from coevolve.stats import mean_or_none


@dataclass(frozen=True)
class DatasetSummary:
    """One iteration's kept questions, counted by what they can teach."""

    kept: int
    split_votes: int  # agreement below 1: the solver's answers differed
    trivial: int  # answered without work (Domain.trivial)
    informative: int  # split votes and not trivial
    distinct_texts: int
    label_accuracy: float | None  # against the oracle, where the domain has one


def summarise(domain: Domain, questions: Sequence[Question], agreements: Sequence[float]) -> DatasetSummary:
    """The counts of one saved dataset (`questions` with the agreement of each one's vote)."""
    if len(questions) != len(agreements):
        raise ValueError(f"{len(questions)} questions but {len(agreements)} agreements")
    split = [a < 1.0 for a in agreements]
    trivial = [domain.trivial(q.text) for q in questions]
    truths = [domain.oracle(q) for q in questions]
    return DatasetSummary(
        kept=len(questions), split_votes=sum(split), trivial=sum(trivial),
        informative=sum(s and not t for s, t in zip(split, trivial, strict=True)),
        distinct_texts=len({q.text for q in questions}),
        label_accuracy=mean_or_none(agrees(q.answer, t, domain.equivalent)
                                    for q, t in zip(questions, truths, strict=True) if t is not None),
    )
