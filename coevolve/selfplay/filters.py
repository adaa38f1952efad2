"""Which generated questions are worth training the solver on.

Two kinds of filter: the agreement band (R-Zero: keep questions the solver neither always
nor never agrees on, 0.3 ≤ p ≤ 0.8 by default) and SeRL's online filters on the question
text (length, blacklisted words, ROUGE-L against the seeds and the accepted questions).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property


def in_band(agreement: float, low: float = 0.3, high: float = 0.8) -> bool:
    """Whether an agreement lies in the closed band [low, high].

    >>> in_band(0.3), in_band(0.9)
    (True, False)
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"band must satisfy 0 <= low <= high <= 1, got [{low}, {high}]")
    # A tolerance keeps 3/10 = 0.30000000000000004 inside a band starting at 0.3.
    eps = 1e-9
    return low - eps <= agreement <= high + eps


@dataclass(frozen=True)
class Rejection:
    """Why a question was dropped: `reason` is one of the TextFilter reasons."""

    index: int
    reason: str


@dataclass(frozen=True)
class TextFilter:
    """SeRL's online filters on question text.

    A question is rejected when it has fewer than `min_words` or more than `max_words`
    words, contains a blacklisted word (whole word, any case), or has ROUGE-L F1 above
    `max_rouge_l` against a seed question or a question accepted earlier in the same call.
    """

    min_words: int = 4
    max_words: int = 150
    blacklist: tuple[str, ...] = ("image", "graph", "figure", "picture", "file", "diagram")
    max_rouge_l: float = 0.7

    @cached_property
    def _blacklist_re(self) -> re.Pattern[str] | None:
        if not self.blacklist:
            return None
        words = "|".join(re.escape(w) for w in self.blacklist)
        return re.compile(rf"\b(?:{words})s?\b", re.IGNORECASE)

    @cached_property
    def _scorer(self):
        from rouge_score import rouge_scorer  # imported here: it loads nltk

        return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def reason(self, text: str) -> str | None:
        """The reason a single question fails the text-only checks, or None."""
        words = len(text.split())
        if words < self.min_words:
            return "too_short"
        if words > self.max_words:
            return "too_long"
        if self._blacklist_re is not None and self._blacklist_re.search(text):
            return "blacklisted_word"
        return None

    def too_similar(self, text: str, pool: Iterable[str]) -> bool:
        """Whether `text` has ROUGE-L F1 above `max_rouge_l` against any text of `pool`."""
        return any(
            self._scorer.score(other, text)["rougeL"].fmeasure > self.max_rouge_l for other in pool
        )

    def apply(
        self, questions: Sequence[str], seeds: Sequence[str] = ()
    ) -> tuple[list[int], list[Rejection]]:
        """Indices of the accepted questions, in order, and the rejections with reasons."""
        accepted: list[int] = []
        rejected: list[Rejection] = []
        for index, text in enumerate(questions):
            why = self.reason(text)
            if why is None and self.too_similar(text, seeds):
                why = "similar_to_seed"
            if why is None and self.too_similar(text, (questions[i] for i in accepted)):
                why = "similar_to_accepted"
            if why is None:
                accepted.append(index)
            else:
                rejected.append(Rejection(index=index, reason=why))
        return accepted, rejected
