"""R-Zero's repetition penalty: questions that repeat each other within a batch share a penalty.

A challenger rewarded for stumping the solver learns to write one hard question many times.
R-Zero clusters each batch by 1 - BLEU (`similarity.py`) with sklearn's average-linkage
AgglomerativeClustering at distance threshold 0.5 and penalises each question by its
cluster's share of the batch. sklearn merges two groups only below the threshold; scipy's
`fcluster(criterion="distance")` keeps merges at <= t, so the tree is cut at the largest
float below t: the same partition, without sklearn or an (n, n) matrix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from coevolve.selfplay.similarity import bleu_distance_condensed

DEFAULT_THRESHOLD = 0.5  # R-Zero's distance_threshold


def cluster_labels(
    condensed: np.ndarray, n: int, threshold: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Average-linkage cluster label (0..k-1) per item, merging only at distance < threshold.

    `condensed` is a scipy condensed distance vector of length n(n-1)/2.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(condensed, method="average")
    strictly_below = np.nextafter(threshold, -np.inf)  # sklearn: no merge at distance >= t
    labels = fcluster(tree, t=strictly_below, criterion="distance")
    return labels.astype(np.int64) - 1


def repetition_clusters(
    questions: Sequence[str], threshold: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Cluster label (0..k-1) per question under R-Zero's 1 - BLEU average-linkage clustering."""
    return cluster_labels(bleu_distance_condensed(questions), len(questions), threshold)


def penalties_from_labels(labels: np.ndarray) -> list[float]:
    """Size of each item's cluster divided by the number of items."""
    if len(labels) == 0:
        return []
    sizes = np.bincount(labels)
    return (sizes[labels] / len(labels)).tolist()


def repetition_penalty(
    questions: Sequence[str], threshold: float = DEFAULT_THRESHOLD
) -> list[float]:
    """R-Zero's repetition penalty per question: |cluster of the question| / len(questions).

    >>> repetition_penalty(["what is 2 + 2 ?", "what is 2 + 2 ?", "name a prime above 10"])
    [0.6666666666666666, 0.6666666666666666, 0.3333333333333333]
    >>> repetition_penalty([])
    []
    """
    return penalties_from_labels(repetition_clusters(questions, threshold))


def repeats_within_prompts(questions: Sequence[str], prompts: Sequence[Hashable]) -> list[float]:
    """Per question: the share of its own prompt's replies that are the same question.

    R-Zero samples every question from one prompt, so its penalty (a cluster's share of the
    batch) is paid for repeating oneself under the same prompt. With a different prompt per
    group, and BLEU calling "What is 7 * 8?" and "What is 7 * 9?" one cluster, the step-wide
    penalty cannot tell a group of four equal replies from four different ones; this one
    compares the replies of each prompt exactly (whitespace and case aside). Malformed replies
    enter as empty text, one question.

    >>> repeats_within_prompts(["7 * 8", "7 * 8", "7 * 8", "7 * 9", "2 + 3"], ["a", "a", "a", "a", "b"])
    [0.75, 0.75, 0.75, 0.25, 1.0]
    """
    if len(questions) != len(prompts):
        raise ValueError(f"{len(questions)} questions but {len(prompts)} prompts")
    keys = [(prompt, " ".join(question.lower().split())) for question, prompt in zip(questions, prompts, strict=True)]
    per_prompt = Counter(prompts)
    same = Counter(keys)
    return [same[key] / per_prompt[key[0]] for key in keys]
