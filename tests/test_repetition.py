"""The vectorised BLEU matrix equals NLTK, and the repetition penalty equals R-Zero's."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from scipy.spatial.distance import num_obs_y

from coevolve.selfplay import similarity
from coevolve.selfplay.repetition import (
    cluster_labels,
    repeats_within_prompts,
    repetition_clusters,
    repetition_penalty,
)
from coevolve.selfplay.similarity import bleu_distance_condensed, bleu_matrix

LONG = " ".join(f"w{i % 7}" for i in range(60))


def ugly_corpus(seed: int = 0, size: int = 40) -> list[str]:
    """Short, repetitive, empty, one-word and long texts with odd whitespace and overlaps."""
    rng = random.Random(seed)
    texts = [
        "",
        "   ",
        "x",
        "x x",
        "x x x x x x",
        "the the the the",
        "a b c d",
        "a b c d",
        "d c b a",
        "what is 2 + 2 ?",
        "What is 2 + 2 ?",
        "tab\tseparated  and\nnewline",
        "ünï cödé ünï",
        LONG,
    ]
    vocab = ["the", "a", "of", "is", "what", "x", "2", "+", "=", "?", "sum", "prime"]
    while len(texts) < size:
        if rng.random() < 0.3:  # near-duplicate of an earlier text
            words = rng.choice(texts).split() or ["x"]
            words[rng.randrange(len(words))] = rng.choice(vocab)
        else:
            words = [rng.choice(vocab) for _ in range(rng.choice([1, 2, 3, 4, 5, 7, 12, 30]))]
        texts.append(" ".join(words))
    return texts


def nltk_matrix(texts: list[str]) -> np.ndarray:
    """The reference: NLTK's sentence_bleu for every (hypothesis, reference) pair."""
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    smooth = nltk_bleu.SmoothingFunction().method1
    return np.array(
        [
            [
                nltk_bleu.sentence_bleu([ref.split()], hyp.split(), smoothing_function=smooth)
                for ref in texts
            ]
            for hyp in texts
        ]
    )


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], np.ndarray]:
    texts = ugly_corpus()
    return texts, nltk_matrix(texts)


@pytest.mark.parametrize(
    ("dense_min_df", "block_cells"),
    [
        (None, 1 << 21),  # defaults: one block, the size-based dense/sparse split
        (1, 1 << 21),  # every n-gram column dense (BLAS path only)
        (10**9, 1 << 21),  # every column sparse (scipy.sparse path only)
        (3, 50),  # mixed split, and blocks of one or two rows
    ],
)
def test_bleu_matrix_equals_nltk(corpus, monkeypatch, dense_min_df, block_cells):
    texts, expected = corpus
    monkeypatch.setattr(similarity, "_BLOCK_CELLS", block_cells)
    np.testing.assert_allclose(bleu_matrix(texts, dense_min_df), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "block_cells", [1 << 21, 50, 1]
)  # one block; a few rows each; one row each
def test_condensed_distance_is_one_minus_upper_triangle(corpus, monkeypatch, block_cells):
    texts, expected = corpus
    monkeypatch.setattr(similarity, "_BLOCK_CELLS", block_cells)
    upper = np.triu_indices(len(texts), k=1)
    np.testing.assert_allclose(
        bleu_distance_condensed(texts), 1 - expected[upper], rtol=0, atol=1e-9
    )


def test_bleu_stays_in_unit_interval_and_is_exactly_one_for_a_repeat(corpus):
    texts, _ = corpus
    scores = bleu_matrix(texts)
    assert scores.min() >= 0.0 and scores.max() <= 1.0  # so distances are never negative
    assert bleu_matrix(["a b c d e", "a b c d e"])[0, 1] == 1.0


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_tiny_batches_have_the_right_shapes(n):
    texts = ["one two three four"] * n
    assert bleu_matrix(texts).shape == (n, n)
    assert bleu_distance_condensed(texts).shape == (n * (n - 1) // 2,)


DUPLICATE = "what is the sum of the first ten primes ?"
DISTINCT = [
    "what is the sum of the first ten primes ?",
    "a train leaves at noon going 80 km per hour",
    "find x such that 3 x + 7 = 22 holds",
    "how many ways can five books sit on a shelf",
]
MIXED = [
    "Ava has 12 apples and gives 5 to Ben . How many are left ?",
    "Find the remainder when 2024 is divided by 7 , then add 3 .",
    "Ava has 12 apples and gives 7 to Ben . How many are left ?",
    "How many prime numbers lie between 10 and 50 inclusive of both ends ?",
    "Ava has 12 apples and gives 5 to Cid . How many are left ?",
    "Find the remainder when 2024 is divided by 9 , then add 3 .",
]


@pytest.mark.parametrize(
    ("questions", "expected"),
    [
        ([], []),  # empty batch
        (["anything at all"], [1.0]),  # one question is its own cluster
        ([DUPLICATE] * 5, [1.0] * 5),  # all duplicates: one cluster of the whole batch
        (DISTINCT, [0.25] * 4),  # all distinct: singletons, 1/n each
        (MIXED, [3 / 6, 2 / 6, 3 / 6, 1 / 6, 3 / 6, 2 / 6]),  # {0, 2, 4}, {1, 5}, {3}
        (["a b c", "a b c"], [1.0, 1.0]),  # 3 tokens: BLEU 0.1**0.25 = 0.56, distance 0.44 < 0.5
        (["a b", "a b"], [0.5, 0.5]),  # 2 tokens: BLEU 0.1**0.5 = 0.32, repeats are not merged
        (["", ""], [0.5, 0.5]),  # empty questions: BLEU 0, never merged
    ],
)
def test_repetition_penalty(questions, expected):
    assert repetition_penalty(questions) == pytest.approx(expected)


def test_mixed_batch_clusters():
    labels = repetition_clusters(MIXED, 0.5)
    assert labels[0] == labels[2] == labels[4] and labels[1] == labels[5]
    assert len(set(labels.tolist())) == 3


@pytest.mark.parametrize(
    ("condensed", "threshold", "n_clusters"),
    [
        ([0.5], 0.5, 2),  # distance == threshold: sklearn does not merge
        ([0.5], float(np.nextafter(0.5, 1.0)), 1),  # just above: merged
        ([np.nextafter(0.5, 0.0)], 0.5, 1),  # just below: merged
        ([0.2, 0.4, 0.6], 0.5, 2),  # a-b merge at 0.2; c joins at average (0.4 + 0.6) / 2 = 0.5: no
        ([0.2, 0.4, 0.6], 0.50001, 1),  # ... and it does just above
        ([0.0, 0.0, 0.0], 0.0, 3),  # threshold 0: nothing is below it, even identical items
        ([1.0, 1.0, 1.0], 1.5, 1),  # threshold above every distance: one cluster
    ],
)
def test_threshold_edge(condensed, threshold, n_clusters):
    condensed = np.asarray(condensed, dtype=np.float64)
    labels = cluster_labels(condensed, num_obs_y(condensed), threshold)
    assert len(set(labels.tolist())) == n_clusters


def r_zero_penalty(questions: list[str], threshold: float) -> tuple[list[float], np.ndarray]:
    """R-Zero's original: NLTK pair loop, mirrored upper triangle, sklearn clustering."""
    from sklearn.cluster import AgglomerativeClustering

    upper = np.triu(1 - nltk_matrix(questions), k=1)  # hypothesis i, reference j, for i < j
    distance = upper + upper.T  # diagonal 0
    labels = AgglomerativeClustering(
        n_clusters=None, distance_threshold=threshold, metric="precomputed", linkage="average"
    ).fit_predict(distance)
    sizes = Counter(labels.tolist())
    return [sizes[label] / len(questions) for label in labels.tolist()], labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize(
    "threshold", [0.3, 0.5, 0.7, 0.9]
)  # R-Zero's 0.5 and a looser / tighter cut
def test_matches_r_zero_with_sklearn(threshold):
    pytest.importorskip("sklearn")
    questions = ugly_corpus(seed=1) + MIXED + [DUPLICATE] * 3
    expected_penalty, expected_labels = r_zero_penalty(questions, threshold)
    assert same_partition(repetition_clusters(questions, threshold), expected_labels)
    assert repetition_penalty(questions, threshold) == pytest.approx(expected_penalty, abs=0)


@pytest.mark.parametrize(
    "seed", [0, 1, 2]
)  # random distances on a 0.1 grid, so ties hit the threshold
def test_tied_distances_match_sklearn(seed):
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(seed)
    n = 30
    square = np.round(rng.uniform(0.0, 1.0, size=(n, n)), 1)
    square = np.triu(square, k=1) + np.triu(square, k=1).T
    upper = square[np.triu_indices(n, k=1)]
    for threshold in (0.3, 0.5, 0.7):
        expected = sklearn_cluster.AgglomerativeClustering(
            n_clusters=None, distance_threshold=threshold, metric="precomputed", linkage="average"
        ).fit_predict(square)
        assert same_partition(cluster_labels(upper, n, threshold), expected)


def test_importing_does_not_import_torch():
    code = "import sys, coevolve.selfplay.repetition; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_repeats_within_prompts_by_hand():
    # prompt a: three equal replies and one other; prompt b: one reply; prompt c: a malformed
    # reply (empty text) twice and one question
    questions = ["What is 7 * 8?", "what is 7 *  8?", "What is 7 * 8?", "What is 7 * 9?", "What is 2 + 3?",
                 "", "", "What is 6 / 3?"]
    prompts = ["a", "a", "a", "a", "b", "c", "c", "c"]
    assert repeats_within_prompts(questions, prompts) == [3 / 4, 3 / 4, 3 / 4, 1 / 4, 1.0, 2 / 3, 2 / 3, 1 / 3]
    # the same questions under another prompt are not repeats
    assert repeats_within_prompts(["What is 7 * 8?"] * 2, ["a", "b"]) == [1.0, 1.0]


def test_repeats_within_prompts_pairs_questions_with_prompts():
    with pytest.raises(ValueError, match="2 questions but 1 prompts"):
        repeats_within_prompts(["a", "b"], ["p"])
