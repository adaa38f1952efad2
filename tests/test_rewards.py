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
    "agreement, peak, expected",
    [
        (0.75, 0.75, 1.0),  # the peak moved into the default recipe's band 0.6-1.0
        (5 / 6, 0.75, 2 / 3),  # 5 of 6 votes: (1 - 5/6) / (1 - 0.75)
        (4 / 6, 0.75, 8 / 9),  # 4 of 6 votes: (4/6) / 0.75
        (0.5, 0.75, 2 / 3),  # an even split now pays less than a clear majority
        (1.0, 0.75, 0.0),  # unanimous still pays nothing
        (0.0, 0.75, 0.0),  # nobody agrees
    ],
)
def test_uncertainty_reward_peaks_where_asked(agreement, peak, expected):
    assert uncertainty_reward(agreement, peak) == pytest.approx(expected)


@pytest.mark.parametrize(
    "kind, agreement, penalty, expected_total",
    [
        ("new", 0.5, 0.0, 1.0),  # best case
        ("new", 0.5, 0.25, 0.75),  # the penalty subtracts
        ("new", 0.9, 0.5, -0.3),  # no clamp at 0: uncertainty 0.2 - 0.5, as R-Zero's code
        ("new", 1.0, 1 / 32, -1 / 32),  # unanimous and unique: just the penalty
        ("copy", None, 0.0, -0.5),  # a well-formed copy of a shown example: its own rung
        ("copy", None, 1 / 32, -0.5 - 1 / 32),  # rungs pay the penalty too
        ("malformed", None, 0.0, -1.0),  # format failure: the lowest rung
    ],
)
def test_challenger_reward_rungs(kind, agreement, penalty, expected_total):
    reward = challenger_reward(kind, agreement, penalty)
    assert reward.total == pytest.approx(expected_total)
    assert reward.parts["format_valid"] == float(kind != "malformed")
    assert reward.parts["new_question"] == float(kind == "new")


def test_challenger_reward_rungs_are_ordered_for_any_penalty():
    # malformed < copy < new (whose uncertainty is >= 0) whenever the penalties are equal
    for penalty in (0.0, 0.1, 0.5):
        bad, copy, new = (challenger_reward(k, 1.0, penalty).total for k in ("malformed", "copy", "new"))
        assert bad < copy < new


def test_challenger_reward_rejects_unknown_kind_and_missing_agreement():
    with pytest.raises(ValueError, match="unknown challenger reply kind 'valid'"):
        challenger_reward("valid", 0.5, 0.0)
    with pytest.raises(ValueError, match="agreement"):
        challenger_reward("new", None, 0.0)


def test_repetition_penalty_is_normalised_over_every_rollout_by_hand():
    # 8 rollouts of one step: two identical new questions (one cluster of 2), one other new
    # question, one copy, and four malformed replies (empty text: BLEU 0 with everything, so
    # each is its own cluster). Hand computation: the pair pays 2/8, every other reply 1/8.
    texts = ["What is 7 * 8?", "What is 7 * 8?", "Compute the product of seventeen and nine please",
             "What is 2 + 3?", None, None, None, None]
    kinds = ["new", "new", "new", "copy", "malformed", "malformed", "malformed", "malformed"]
    agreements = [0.5, 0.5, 1.0, None, None, None, None, None]
    rewards = challenger_rewards(texts, kinds, agreements)
    assert [r.parts["repetition_penalty"] for r in rewards] == pytest.approx([2 / 8] * 2 + [1 / 8] * 6)
    expected = [1 - 2 / 8, 1 - 2 / 8, 0 - 1 / 8, -0.5 - 1 / 8] + [-1 - 1 / 8] * 4
    assert [r.total for r in rewards] == pytest.approx(expected)


def test_a_lone_new_question_earns_its_votes_not_zero():
    # under the old rule (penalty over the new questions only, clamped) this scored exactly 0
    rewards = challenger_rewards(["What is 7 * 8?", None, None, None], ["new", "malformed", "malformed", "malformed"],
                                 [0.5, None, None, None])
    assert rewards[0].total == pytest.approx(1 - 1 / 4)


def test_challenger_rewards_check_lengths():
    with pytest.raises(ValueError, match="2 questions, 1 kinds"):
        challenger_rewards(["What is 2 + 3?", None], ["new"], [0.5, None])


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


@pytest.mark.parametrize(
    "agreement, expected_total",
    [
        (1.0, -0.5 - 1 / 32),  # every vote agrees: scored like a copy, penalty included
        (5 / 6, 2 / 3 - 1 / 32),  # one dissenting vote: the tent (peak 0.75) as before, 1 - (5/6 - 0.75) / 0.25
    ],
)
def test_a_unanimous_new_question_scores_the_unanimous_rung_when_set(agreement, expected_total):
    reward = challenger_reward("new", agreement, 1 / 32, peak=0.75, unanimous_reward=-0.5)
    assert reward.total == pytest.approx(expected_total)
    assert reward.parts["unanimous"] == float(agreement == 1.0) and reward.parts["new_question"] == 1.0
    # unset, the same unanimous question keeps the uncertainty reward's 0
    assert challenger_reward("new", 1.0, 0.0, peak=0.75).total == 0.0


def test_the_unanimous_rung_reaches_every_reward_of_a_step():
    rewards = challenger_rewards(["What is 9 / 1?", "What is 7 * 8?"], ["new", "new"], [1.0, 0.5],
                                 unanimous_reward=-0.25)
    assert [r.total for r in rewards] == pytest.approx([-0.25 - 1 / 2, 1 - 1 / 2])


def test_a_trivial_question_scores_the_trivial_rung_without_an_agreement():
    reward = challenger_reward("trivial", None, 1 / 32, trivial_reward=-0.5)
    assert reward.total == pytest.approx(-0.5 - 1 / 32)
    assert reward.parts["trivial"] == 1.0 and reward.parts["new_question"] == 1.0
    assert challenger_reward("new", 0.5, 0.0).parts["trivial"] == 0.0


def test_a_trivial_question_needs_the_trivial_rung_set():
    with pytest.raises(ValueError, match="challenger.trivial_reward"):
        challenger_reward("trivial", None, 0.0)


def test_the_prompt_scope_penalises_a_reply_by_its_own_prompt_s_repeats():
    questions = ["What is 7 * 8?", "What is 7 * 8?", "What is 7 * 9?", None]
    rewards = challenger_rewards(questions, ["new", "new", "new", "malformed"], [0.5, 0.5, 0.5, None],
                                 prompts=["p", "p", "p", "p"])
    # two of the prompt's four replies are 7 * 8: 1/2 each; 7 * 9 and the malformed reply 1/4
    assert [r.total for r in rewards] == pytest.approx([1 - 1 / 2, 1 - 1 / 2, 1 - 1 / 4, -1 - 1 / 4])
    # step-wide, BLEU puts all three questions in one cluster: the repeat earns nothing over 7 * 9
    step = challenger_rewards(questions, ["new", "new", "new", "malformed"], [0.5, 0.5, 0.5, None])
    assert step[0].total == step[2].total
