"""The challenger's copy test (operator-aware canonical form) and the examples each prompt shows."""

import pytest

from coevolve.records import Question
from coevolve.selfplay.examples import OWN_CAPACITY, ExamplePool
from coevolve.selfplay.similarity import canonical_form, copies_shown


@pytest.mark.parametrize(
    "text, shown, expected",
    [
        ("What is 8 + 4?", ["What is 8 + 4?"], True),  # the same text
        ("what is 8+4", ["What is 8 + 4?"], True),  # case, spaces and the closing ? do not matter
        ("What is 8 * 4?", ["What is 8 + 4?"], False),  # another operator: ROUGE-L calls it equal
        ("What is 4 + 8?", ["What is 8 + 4?"], False),  # another order is another question
        ("What is 8 + 44?", ["What is 8 + 4?"], False),  # numbers are whole tokens
        ("What is (8 + 4) * 2?", ["What is 8 + 4 * 2?"], False),  # brackets count
        ("What is 8 + 4?", [], False),  # nothing shown: nothing to copy
        ("What is 8 + 4?", ["What is 1 + 1?", "what is 8 + 4 ?"], True),  # any shown example
    ],
)
def test_copies_shown(text, shown, expected):
    assert copies_shown(text, shown) is expected


def test_canonical_form_keeps_operators():
    assert canonical_form("What is 12 - 3 / 4?") == ("what", "is", "12", "-", "3", "/", "4")


def seeds(category: str, n: int) -> list[Question]:
    return [Question(f"{category}/{i}", category, f"What is {i} + 1?") for i in range(n)]


def test_examples_are_drawn_fresh_per_prompt_and_reproducibly():
    pool = ExamplePool({"add": seeds("add", 16)}, run_seed=0, shown=3)
    draws = [tuple(pool.draw("add", serial)) for serial in range(20)]
    assert all(len(set(d)) == 3 for d in draws)
    assert len(set(draws)) > 15  # not a sliding window over a fixed few
    assert draws == [tuple(ExamplePool({"add": seeds("add", 16)}, 0, 3).draw("add", s)) for s in range(20)]
    assert draws != [tuple(ExamplePool({"add": seeds("add", 16)}, 1, 3).draw("add", s)) for s in range(20)]


def test_own_accepted_questions_are_mixed_in_and_survive_a_state_round_trip():
    pool = ExamplePool({"add": seeds("add", 16)}, run_seed=0, shown=3, own_per_prompt=2)
    assert pool.draw("add", 0) and not set(pool.draw("add", 0)) & {"What is 90 + 9?"}
    pool.add_own("add", ["What is 90 + 9?", "What is 80 + 8?"])
    shown = pool.draw("add", 0)
    assert {"What is 90 + 9?", "What is 80 + 8?"} <= set(shown) and len(shown) == 3
    again = ExamplePool({"add": seeds("add", 16)}, run_seed=0, shown=3, own_per_prompt=2)
    again.load_state_dict(pool.state_dict())
    assert again.draw("add", 5) == pool.draw("add", 5)


def test_own_buffer_keeps_the_newest():
    pool = ExamplePool({}, run_seed=0, shown=2, own_per_prompt=2)
    pool.add_own("add", [f"q{i}" for i in range(OWN_CAPACITY + 5)])
    assert pool.own["add"][0] == "q5" and len(pool.own["add"]) == OWN_CAPACITY


def test_nothing_shown_when_seeds_per_prompt_is_zero():
    assert ExamplePool({"add": seeds("add", 4)}, run_seed=0, shown=0).draw("add", 3) == []
