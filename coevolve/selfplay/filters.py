"""Which generated questions are worth training the solver on.

Two kinds of filter: the agreement band (R-Zero: keep questions the solver neither always
nor never agrees on, 0.3 ≤ p ≤ 0.8 by default) and SeRL's online filters on the question
text (length, blacklisted words, ROUGE-L against the seeds and the accepted questions).

The ROUGE-L filter compares each question with every accepted one: at 8,000 questions, 32
million pairs. It scores only the pairs that can pass, found through an index that gives the
same decisions as scoring every pair. ROUGE-L F1 is 2 L / (m + n) for an LCS of L tokens
between texts of m and n tokens, and L is at most the number of tokens the two share (counted
with repeats), so F1 > t needs (a) n within [m t / (2 - t), m (2 - t) / t] and (b) a shared
count above t (m + n) / 2. The index (prefix filtering, Chaudhuri et al. 2006, "A primitive
operator for similarity joins in data cleaning") keeps each text's rarest tokens: two texts
that share enough tokens share one of those, so only texts met through the index are scored.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

# Float slack in the bounds: they must never be tighter than the scorer's own arithmetic.
_SLACK = 1e-6
Token = tuple[str, int]  # a token and its occurrence number within the text ("the", 2)


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
        """Whether `text` has ROUGE-L F1 above `max_rouge_l` against any text of `pool`
        (rouge_score's decision), through an index of `pool` kept until another pool is asked."""
        return self._pool_index(tuple(pool)).any_above(self._tokens(text))

    @cached_property
    def _last_pool(self) -> dict[str, object]:
        return {}  # "pool" and its "index": the seeds a run asks about again and again

    def _pool_index(self, pool: tuple[str, ...]) -> _PrefixIndex:
        cache = self._last_pool
        if cache.get("pool") != pool:
            texts = {text: self._tokens(text) for text in pool}
            index = _PrefixIndex(self.max_rouge_l, _rarity_rank(t.numbered for t in texts.values()))
            for tokens in texts.values():
                index.add(tokens)
            cache.update(pool=pool, index=index)
        return cache["index"]  # type: ignore[return-value]

    def _tokens(self, text: str) -> _Tokens:
        return _Tokens.of(self._scorer._tokenizer.tokenize(text))  # the tokens ROUGE-L itself compares

    def apply(
        self, questions: Sequence[str], seeds: Sequence[str] = ()
    ) -> tuple[list[int], list[Rejection]]:
        """Indices of the accepted questions, in order, and the rejections with reasons.

        The same decisions as `too_similar` against every seed and every earlier accepted
        question; only the pairs the index cannot rule out are scored (module docstring).
        """
        texts = {text: self._tokens(text) for text in (*seeds, *questions)}
        rank = _rarity_rank(t.numbered for t in texts.values())
        seed_index = _PrefixIndex(self.max_rouge_l, rank)
        for seed in dict.fromkeys(seeds):
            seed_index.add(texts[seed])
        accepted_index = _PrefixIndex(self.max_rouge_l, rank)
        accepted: list[int] = []
        rejected: list[Rejection] = []
        for index, text in enumerate(questions):
            why = self.reason(text)
            tokens = texts[text]
            prefix = seed_index.prefix(tokens) if why is None else []  # the same in both indexes
            if why is None and seed_index.any_above(tokens, prefix):
                why = "similar_to_seed"
            if why is None and accepted_index.any_above(tokens, prefix):
                why = "similar_to_accepted"
            if why is None:
                accepted.append(index)
                accepted_index.add(tokens, prefix)
            else:
                rejected.append(Rejection(index=index, reason=why))
        return accepted, rejected


@dataclass(frozen=True)
class _Tokens:
    """A text's ROUGE tokens, as a set with repeats numbered (the overlap counts repeats), and
    as bit masks of the positions of each token (for the bit-parallel LCS)."""

    size: int
    numbered: frozenset[Token]
    positions: dict[str, int]
    tokens: tuple[str, ...]

    @classmethod
    def of(cls, tokens: Sequence[str]) -> _Tokens:
        seen: Counter[str] = Counter()
        numbered, positions = [], defaultdict(int)
        for position, token in enumerate(tokens):
            seen[token] += 1
            numbered.append((token, seen[token]))
            positions[token] |= 1 << position
        return cls(len(tokens), frozenset(numbered), dict(positions), tuple(tokens))


def rouge_l_f1(target: _Tokens, prediction: _Tokens) -> float:
    """ROUGE-L F1 exactly as rouge_score computes it (same LCS, same float operations).

    The LCS by the bit-parallel recurrence of Hyyrö (2004), "Bit-parallel LCS-length
    computation revisited": one big-integer step per prediction token.
    """
    if not target.size or not prediction.size:
        return 0.0
    full = (1 << target.size) - 1
    row = full
    for token in prediction.tokens:
        matched = row & target.positions.get(token, 0)
        row = ((row + matched) | (row - matched)) & full
    lcs = target.size - row.bit_count()
    precision, recall = lcs / prediction.size, lcs / target.size
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _rarity_rank(texts: Iterable[frozenset[Token]]) -> Callable[[Token], tuple[int, Token]]:
    """The global order of the prefix filter: rarest token first, ties by the token."""
    frequency = Counter(token for text in texts for token in text)
    return lambda token: (frequency[token], token)


def _min_overlap(size: int, threshold: float) -> int:
    """The fewest tokens a text of `size` tokens shares with any text it can score above
    `threshold` with (any partner has at least size t / (2 - t) tokens); never too many."""
    return max(1, math.floor(threshold * size / (2 - threshold) - _SLACK) + 1)


class _PrefixIndex:
    """Texts indexed by their rarest tokens, asked whether any scores above a ROUGE-L threshold."""

    def __init__(self, threshold: float, rank: Callable[[Token], tuple[int, Token]]) -> None:
        self.threshold = threshold
        self.rank = rank
        self.postings: defaultdict[Token, list[int]] = defaultdict(list)
        self.entries: list[_Tokens] = []

    def prefix(self, tokens: _Tokens) -> list[Token]:
        """The tokens `tokens` is indexed and looked up by: the same for every index of the
        same threshold and rank, so a caller may compute it once for several."""
        keep = tokens.size - _min_overlap(tokens.size, self.threshold) + 1
        return sorted(tokens.numbered, key=self.rank)[:max(keep, 0)]

    def add(self, tokens: _Tokens, prefix: list[Token] | None = None) -> None:
        if not tokens.size:
            return  # no tokens: ROUGE-L 0 with everything
        for token in self.prefix(tokens) if prefix is None else prefix:
            self.postings[token].append(len(self.entries))
        self.entries.append(tokens)

    def any_above(self, tokens: _Tokens, prefix: list[Token] | None = None) -> bool:
        """Whether an indexed text (the target) scores above the threshold with `tokens`
        (`prefix`: `self.prefix(tokens)`, if already computed)."""
        t = self.threshold
        if t >= 1 or not tokens.size:
            return False  # F1 never exceeds 1; a text without tokens scores 0
        if t <= 0:
            met = range(len(self.entries))
        else:
            prefix = self.prefix(tokens) if prefix is None else prefix
            met = {i for token in prefix for i in self.postings.get(token, ())}
        m = tokens.size
        shared = []  # (tokens shared, index) of the texts that pass the length and overlap bounds
        for i in met:
            other = self.entries[i]
            overlap = len(tokens.numbered & other.numbered)
            if 2 * overlap / (m + other.size) > t - _SLACK:
                shared.append((-overlap, i))
        # the likeliest first: a rejection usually stops at the first text scored
        return any(rouge_l_f1(self.entries[i], tokens) > t for _, i in sorted(shared))
