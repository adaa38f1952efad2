"""Rewards: the uncertainty curve's boundary values and the composed challenger/solver scores."""

import pytest

from coevolve.selfplay.rewards import (
    challenger_reward,
    challenger_rewards,
    solver_reward,
    uncertainty_reward,
)


@pytest.mark.parametrize(
    "agreement, expected",
    [
        (0.5, 1.0),  # an even split is the most informative question
        (0.0, 0.0),  # nobody agrees (degenerate): no reward
        (1.0, 0.0),  # unanimous: the solver already knows
        (0.3, 0.6),  # lower edge of the default dataset band
        (0.8, 0.4),  # upper edge of the default dataset band
        (0.7, 0.6),  # symmetric to 0.3
    ],
)
def test_uncertainty_reward(agreement, expected):
    assert uncertainty_reward(agreement) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [-0.01, 1.01])
def test_uncertainty_reward_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="agreement"):
        uncertainty_reward(bad)


@pytest.mark.parametrize(
    "valid, agreement, penalty, expected_total",
    [
        (True, 0.5, 0.0, 1.0),  # best case
        (True, 0.5, 0.25, 0.75),  # penalty subtracts
        (True, 0.9, 0.5, 0.0),  # clipped at 0, never negative for a valid question
        (False, 0.5, 0.0, -1.0),  # format failure gets the invalid reward
    ],
)
def test_challenger_reward(valid, agreement, penalty, expected_total):
    reward = challenger_reward(valid, agreement, penalty)
    assert reward.total == pytest.approx(expected_total)
    assert reward.parts["format_valid"] == float(valid)


def test_challenger_rewards_all_duplicates_get_full_penalty():
    questions = ["What is 2 + 3 ?"] * 4
    rewards = challenger_rewards(questions, [0.5] * 4)
    assert [r.parts["repetition_penalty"] for r in rewards] == [1.0] * 4
    assert [r.total for r in rewards] == [0.0] * 4


def test_challenger_rewards_all_distinct_get_one_over_n():
    questions = [
        "What is 2 + 3 ?",
        "Compute the product of seventeen and nine please",
        "How many primes lie below one hundred exactly ?",
        "Solve for x when x squared equals forty nine",
    ]
    rewards = challenger_rewards(questions, [0.5] * 4)
    assert [r.parts["repetition_penalty"] for r in rewards] == pytest.approx([0.25] * 4)
    assert [r.total for r in rewards] == pytest.approx([0.75] * 4)


def test_challenger_rewards_invalid_questions_do_not_count_in_the_batch():
    rewards = challenger_rewards(["What is 2 + 3 ?", None], [0.5, None], invalid_reward=-1.0)
    assert rewards[0].parts["repetition_penalty"] == 1.0  # alone among the valid questions
    assert rewards[1].total == -1.0


def test_challenger_rewards_valid_question_needs_agreement():
    with pytest.raises(ValueError, match="no agreement"):
        challenger_rewards(["What is 2 + 3 ?"], [None])


@pytest.mark.parametrize(
    "answer, label, expected",
    [
        ("12", "12", 1.0),  # agrees with the pseudo-label
        ("13", "12", 0.0),  # disagrees
        (None, "12", 0.0),  # nothing extracted
    ],
)
def test_solver_reward(answer, label, expected):
    reward = solver_reward(answer, label)
    assert reward.total == expected
    assert reward.parts["answer_extracted"] == float(answer is not None)
