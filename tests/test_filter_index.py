"""The dataset filter's ROUGE-L index gives the same decisions as scoring every pair."""

from __future__ import annotations

import random

import pytest

from coevolve.selfplay.filters import Rejection, TextFilter

WORDS = ("what is the sum of two and three apples Ava has left if she gives Ben half her coins "
         "how many a an x y 12 7 3 prime number triangle area of").split()


def _scored_pairwise(text_filter: TextFilter, text: str, pool) -> bool:
    """rouge_score itself against every text of `pool`: the reference the index must equal."""
    return any(text_filter._scorer.score(other, text)["rougeL"].fmeasure > text_filter.max_rouge_l
               for other in pool)


def _every_pair(text_filter: TextFilter, questions, seeds) -> tuple[list[int], list[Rejection]]:
    """The filter as it was: each question scored against every seed and accepted question."""
    accepted, rejected = [], []
    for index, text in enumerate(questions):
        why = text_filter.reason(text)
        if why is None and _scored_pairwise(text_filter, text, seeds):
            why = "similar_to_seed"
        if why is None and _scored_pairwise(text_filter, text, [questions[i] for i in accepted]):
            why = "similar_to_accepted"
        if why is None:
            accepted.append(index)
        else:
            rejected.append(Rejection(index=index, reason=why))
    return accepted, rejected


def _questions(rng: random.Random, n: int) -> list[str]:
    """Random questions with many near-duplicates (a word changed, dropped, added, repeated)."""
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.5:
            words = rng.choice(out).split()
            for _ in range(rng.randrange(1, 4)):
                position = rng.randrange(len(words) + 1)
                edit = rng.choice(("change", "drop", "add"))
                if edit == "add" or not words:
                    words.insert(position, rng.choice(WORDS))
                elif edit == "drop":
                    words.pop(min(position, len(words) - 1))
                else:
                    words[min(position, len(words) - 1)] = rng.choice(WORDS)
            out.append(" ".join(words))
        else:
            out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 25))))
    return out


@pytest.mark.parametrize(
    "seed, threshold",
    [
        (0, 0.7),  # the default
        (1, 0.5),  # a looser filter: many more candidate pairs
        (2, 0.9),  # a strict one
        (3, 0.3),  # very loose
        (4, 0.0),  # any shared token rejects
        (5, 1.0),  # nothing is above 1: no similarity rejection
    ],
)
def test_index_decisions_equal_every_pair(seed, threshold):
    rng = random.Random(seed)
    questions, seeds = _questions(rng, 300), _questions(rng, 20)
    questions += ["", "!!!", "What?! ... 12"]  # no tokens, punctuation only, very short
    text_filter = TextFilter(min_words=1, max_words=40, max_rouge_l=threshold)
    assert text_filter.apply(questions, seeds) == _every_pair(text_filter, questions, seeds)


@pytest.mark.parametrize("seed, threshold", [
    (0, 0.7),  # the default
    (1, 0.3),  # loose: many candidates
    (2, 0.0),  # any shared token
    (3, 1.0),  # never above 1
])
def test_too_similar_equals_scoring_every_seed_and_indexes_the_seeds_once(seed, threshold, monkeypatch):
    rng = random.Random(seed)
    seeds, questions = _questions(rng, 30), _questions(rng, 150) + ["", "!!!"]
    text_filter = TextFilter(max_rouge_l=threshold)
    expected = [_scored_pairwise(text_filter, q, seeds) for q in questions]
    from coevolve.selfplay import filters

    built, add = [], filters._PrefixIndex.add
    monkeypatch.setattr(filters._PrefixIndex, "add",
                        lambda self, tokens, prefix=None: (built.append(tokens), add(self, tokens, prefix)))
    assert [text_filter.too_similar(q, list(seeds)) for q in questions] == expected
    assert len(built) <= len(seeds)  # the seeds were indexed once, not once per question


@pytest.mark.parametrize("seed", range(3))
def test_bit_parallel_rouge_l_equals_rouge_score(seed):
    from coevolve.selfplay.filters import _Tokens, rouge_l_f1

    rng = random.Random(seed)
    scorer = TextFilter()._scorer
    tokenize = scorer._tokenizer.tokenize
    texts = _questions(rng, 150) + [""]
    for _ in range(600):
        target, prediction = rng.choice(texts), rng.choice(texts)
        expected = scorer.score(target, prediction)["rougeL"].fmeasure
        assert rouge_l_f1(_Tokens.of(tokenize(target)), _Tokens.of(tokenize(prediction))) == expected
