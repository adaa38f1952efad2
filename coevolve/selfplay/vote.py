"""Majority vote over a solver's sampled answers: the pseudo-label and its agreement.

The agreement p = count / n is the signal both roles are rewarded on: the challenger for
questions where p is near 0.5, the solver for matching the majority answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from coevolve.records import Vote

Equivalence = Callable[[str, str], bool]


def _string_equal(a: str, b: str) -> bool:
    return a == b


def group_answers(
    answers: Sequence[str | None], equivalent: Equivalence | None = None
) -> list[tuple[str, list[int]]]:
    """Group the extracted answers into equivalence classes, in order of first appearance.

    Returns (representative, indices) pairs; the representative is the first answer seen of
    its class. None answers (nothing extracted) belong to no class.
    """
    same = equivalent or _string_equal
    classes: list[tuple[str, list[int]]] = []
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for representative, members in classes:
            if answer == representative or same(representative, answer):
                members.append(index)
                break
        else:
            classes.append((answer, [index]))
    return classes


def majority_vote(
    answers: Sequence[str | None], equivalent: Equivalence | None = None
) -> Vote:
    """The most common answer among `answers`, grouped by `equivalent` (string equality if None).

    A None answer never wins but counts in the denominator of `agreement`. Ties go to the
    class seen first, so the result is deterministic for a given order.

    >>> majority_vote(["4", None, "4", "5"])
    Vote(answer='4', count=2, agreement=0.5, n=4)
    """
    n = len(answers)
    classes = group_answers(answers, equivalent)
    if not classes:
        return Vote(answer=None, count=0, agreement=0.0, n=n)
    # max() keeps the first maximal element, which is the class seen first.
    answer, members = max(classes, key=lambda c: len(c[1]))
    return Vote(answer=answer, count=len(members), agreement=len(members) / n, n=n)


def agrees(answer: str | None, label: str | None, equivalent: Equivalence | None = None) -> bool:
    """Whether one extracted answer matches a label (False when either is missing)."""
    if answer is None or label is None:
        return False
    return answer == label or (equivalent or _string_equal)(label, answer)
