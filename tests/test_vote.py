"""Majority vote: ties, unextractable answers, equivalence classes."""

import pytest

from coevolve.selfplay.vote import agrees, group_answers, majority_vote


def same_number(a: str, b: str) -> bool:
    return float(a) == float(b)


@pytest.mark.parametrize(
    "answers, equivalent, expected",
    [
        # clear majority
        (["4", "4", "5"], None, ("4", 2, 2 / 3, 3)),
        # tie between two classes: the class seen first wins
        (["5", "4", "4", "5"], None, ("5", 2, 0.5, 4)),
        # None never wins, even when it is the most common "answer"
        ([None, None, None, "7"], None, ("7", 1, 0.25, 4)),
        # all None: no answer, agreement 0, n still counts them
        ([None, None], None, (None, 0, 0.0, 2)),
        # empty input: n = 0, no answer
        ([], None, (None, 0, 0.0, 0)),
        # string equality splits "4" and "4.0" ...
        (["4", "4.0", "5", "5"], None, ("5", 2, 0.5, 4)),
        # ... the domain's equivalence merges them; representative is the first seen
        (["4", "4.0", "5", "5", "4.00"], same_number, ("4", 3, 0.6, 5)),
        # unanimous
        (["x"] * 10, None, ("x", 10, 1.0, 10)),
    ],
)
def test_majority_vote(answers, equivalent, expected):
    vote = majority_vote(answers, equivalent)
    assert (vote.answer, vote.count, vote.n) == expected[:1] + expected[1:2] + expected[3:]
    assert vote.agreement == pytest.approx(expected[2])


def test_group_answers_keeps_first_seen_order_and_indices():
    classes = group_answers(["b", None, "a", "b", "a", "c"])
    assert classes == [("b", [0, 3]), ("a", [2, 4]), ("c", [5])]


def test_equivalence_called_against_representative_only():
    calls = []

    def spy(a, b):
        calls.append((a, b))
        return a[0] == b[0]

    vote = majority_vote(["1a", "1b", "2a"], spy)
    assert vote.answer == "1a" and vote.count == 2
    assert all(a in {"1a", "2a"} for a, _ in calls)


@pytest.mark.parametrize(
    "answer, label, equivalent, expected",
    [
        ("4", "4", None, True),  # equal strings
        ("4.0", "4", same_number, True),  # equivalent under the domain
        ("4.0", "4", None, False),  # not equal as strings
        (None, "4", None, False),  # nothing extracted never agrees
        ("4", None, None, False),  # no label never agrees
    ],
)
def test_agrees(answer, label, equivalent, expected):
    assert agrees(answer, label, equivalent) is expected
