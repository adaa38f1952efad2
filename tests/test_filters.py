"""The agreement band's edges and SeRL's text filters."""

import pytest

from coevolve.selfplay.filters import TextFilter, in_band


@pytest.mark.parametrize(
    "agreement, low, high, expected",
    [
        (0.3, 0.3, 0.8, True),  # lower edge is inside
        (0.8, 0.3, 0.8, True),  # upper edge is inside
        (3 / 10, 0.3, 0.8, True),  # 3 of 10 votes, a float that is not exactly 0.3
        (0.8 - 1e-6, 0.3, 0.8, True),  # just inside
        (0.29, 0.3, 0.8, False),  # just below
        (0.81, 0.3, 0.8, False),  # just above
        (1.0, 0.3, 0.8, False),  # unanimous: nothing to learn
        (0.0, 0.0, 0.0, True),  # a degenerate band of one point
    ],
)
def test_in_band(agreement, low, high, expected):
    assert in_band(agreement, low, high) is expected


@pytest.mark.parametrize("low, high", [(0.8, 0.3), (-0.1, 0.5), (0.2, 1.5)])
def test_in_band_rejects_bad_band(low, high):
    with pytest.raises(ValueError, match="band"):
        in_band(0.5, low, high)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("What is 2?", "too_short"),  # three words
        ("word " * 151, "too_long"),  # over 150 words
        ("Look at the Image and count the apples", "blacklisted_word"),  # any case
        ("Count the figures in this table please", "blacklisted_word"),  # plural
        ("What is the configuration of a filesystem?", None),  # "file" inside a word is fine
        ("What is 12 plus 30 minus 4?", None),  # an ordinary question
    ],
)
def test_text_filter_reason(text, reason):
    assert TextFilter().reason(text) == reason


def test_text_filter_rejects_near_copies_of_seeds_and_of_accepted():
    questions = [
        "What is the sum of 12 and 30 plus 4?",  # near copy of the seed
        "How many legs do three spiders and two ants have?",  # accepted
        "How many legs do three spiders and two ants have in total?",  # near copy of accepted
        "Multiply 7 by 8 and then subtract 5 from it.",  # accepted
    ]
    seeds = ["What is the sum of 12 and 30 plus 5?"]
    accepted, rejected = TextFilter().apply(questions, seeds)
    assert accepted == [1, 3]
    assert [(r.index, r.reason) for r in rejected] == [
        (0, "similar_to_seed"),
        (2, "similar_to_accepted"),
    ]
