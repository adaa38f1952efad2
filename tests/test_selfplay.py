"""Challenger scoring and dataset building against a scripted fake solver."""

import pytest

from coevolve.domains import build_domain
from coevolve.selfplay.filters import TextFilter
from coevolve.selfplay.scoring import challenger_indicators
from coevolve.selfplay.steps import (
    ChallengerRewardSettings,
    build_solver_dataset,
    parse_questions,
    score_challenger,
)

ARITH = build_domain("arithmetic")


def scripted_solver(script):
    """A SampleFn answering each question (found in the prompt) from `script[question]`."""

    def sample(messages, n):
        out = []
        for message in messages:
            answers = next(v for k, v in script.items() if k in message)
            assert len(answers) == n
            out.append([f"The answer is {a}." if a is not None else "no idea" for a in answers])
        return out

    return sample


def test_score_challenger_rewards_split_votes_and_gates_format():
    completions = [
        "<question>What is 2 + 3?</question>",  # solver splits 2/4: uncertainty 1
        "<question>What is 4 * 5 * 6 * 7 * 8?</question>",  # too many terms for mul_small
        "<question>What is 9 - 4?</question>",  # solver unanimous: uncertainty 0
    ]
    categories = ["add_sub_small", "mul_small", "add_sub_small"]
    solver = scripted_solver({"2 + 3": ["5", "5", "6", "7"], "9 - 4": ["5", "5", "5", "5"]})
    items = score_challenger(ARITH, completions, categories=categories, shown=[[]] * 3, sample=solver, samples=4)
    assert [i.question is not None for i in items] == [True, False, True]
    assert items[0].vote.agreement == 0.5 and items[2].vote.agreement == 1.0
    # three rollouts, none like another: penalty 1/3 each, on every rung, no clamp
    assert [i.reward.total for i in items] == pytest.approx([1 - 1 / 3, -1 - 1 / 3, 0 - 1 / 3])


def test_trivial_questions_score_the_trivial_rung_without_votes_when_it_is_set():
    completions = ["<question>What is 9 / 1?</question>", "<question>What is 42 / 7?</question>"]
    solver = scripted_solver({"42 / 7": ["6", "6", "5", "6"], "9 / 1": ["9", "9", "8", "9"]})
    settings = ChallengerRewardSettings(trivial_reward=-0.5, uncertainty_peak=0.75)
    items = score_challenger(ARITH, completions, categories=["div_small"] * 2, shown=[[]] * 2,
                             sample=solver, samples=4, settings=settings)
    assert [i.trivial for i in items] == [True, False] and items[0].vote is None
    assert [i.reward.total for i in items] == pytest.approx([-0.5 - 1 / 2, 1 - 1 / 2])
    assert challenger_indicators(items, (0.6, 1.0))["challenger/trivial_share"] == 0.5
    # unset, the same division by 1 is voted on: its split votes pay the uncertainty reward
    plain = score_challenger(ARITH, completions, categories=["div_small"] * 2, shown=[[]] * 2, sample=solver,
                             samples=4, settings=ChallengerRewardSettings(uncertainty_peak=0.75))
    assert not plain[0].trivial and plain[0].reward.total == pytest.approx(1 - 1 / 2)


def test_the_prompt_scope_compares_replies_to_the_same_prompt_only():
    completions = ["<question>What is 7 * 8?</question>"] * 2 + ["<question>What is 7 * 9?</question>"] * 2
    solver = scripted_solver({"7 * 8": ["56", "56", "54", "56"], "7 * 9": ["63", "63", "62", "63"]})
    # the first three replies answer the prompt showing "What is 7 * 2?", the last one another
    shown = [["What is 7 * 2?"]] * 3 + [["What is 7 * 3?"]]
    items = score_challenger(ARITH, completions, categories=["mul_small"] * 4, shown=shown, sample=solver,
                             samples=4, settings=ChallengerRewardSettings(repetition_scope="prompt"))
    assert [i.reward.parts["repetition_penalty"] for i in items] == pytest.approx([2 / 3, 2 / 3, 1 / 3, 1.0])


def test_parse_questions_rejects_length_mismatch():
    with pytest.raises(ValueError, match="categories"):
        parse_questions(ARITH, ["a"], [], "q")


def test_build_solver_dataset_filters_votes_and_labels():
    questions = parse_questions(
        ARITH,
        [
            "<question>What is 12 + 30?</question>",  # 3/5 agree on the right answer: kept
            "<question>What is 7 + 8?</question>",  # 4/5 agree on a wrong answer: kept, label wrong
            "<question>What is 6 + 1?</question>",  # unanimous: outside the band
            "nonsense",  # format invalid
            "<question>What is 7 + 8?</question>",  # exact copy of an accepted question
        ],
        ["add_sub_small"] * 5,
        "it0/",
    )
    solver = scripted_solver(
        {
            "12 + 30": ["42", "42", "42", "41", None],
            "7 + 8": ["16", "16", "16", "16", "15"],
            "6 + 1": ["7"] * 5,
        }
    )
    result = build_solver_dataset(
        ARITH, questions, sample=solver, samples=5, band=(0.3, 0.8), text_filter=TextFilter()
    )
    assert [(q.text, q.answer) for q in result.kept] == [
        ("What is 12 + 30?", "42"),
        ("What is 7 + 8?", "16"),
    ]
    assert all(q.label_source == "majority_vote" for q in result.kept)
    assert result.generated == 5 and result.format_valid == 4
    assert result.rejected == {"format_invalid": 1, "similar_to_accepted": 1, "outside_band": 1}
    assert result.agreements == pytest.approx([0.6, 0.8, 1.0])
    assert result.pseudo_label_accuracy == pytest.approx(0.5)  # kept: one right, one wrong
    assert result.pseudo_label_accuracy_all == pytest.approx(2 / 3)


def test_score_challenger_judges_copies_against_the_examples_of_their_own_prompt():
    completions = ["<question>What is 2 + 3?</question>", "<question>What is 7 + 1?</question>",
                   "<question>What is 9 - 4?</question>", "<question>What is 9 + 4?</question>"]
    shown = [["What is 9 - 4?"],  # another prompt's example: 2 + 3 is new here
             ["what is 7+1"],  # the same question in other spacing and case: a copy
             ["What is 9 - 4?", "What is 1 + 1?"],  # shown in this prompt: a copy
             ["What is 9 - 4?"]]  # differs only by its operator: new
    solver = scripted_solver({"2 + 3": ["5", "6"], "9 + 4": ["13", "12"]})
    items = score_challenger(ARITH, completions, categories=["add_sub_small"] * 4, shown=shown, sample=solver, samples=2)
    assert [i.copied for i in items] == [False, True, True, False]
    assert [i.new_valid for i in items] == [True, False, False, True]
    assert items[1].vote is None and items[2].vote is None  # copies are not voted on
    penalty = 1 / 4  # four rollouts, no two alike under 1 - BLEU < 0.5
    assert [i.reward.total for i in items] == pytest.approx([1 - penalty, -0.5 - penalty, -0.5 - penalty,
                                                             1 - penalty])


def test_score_challenger_needs_the_shown_examples_of_every_completion():
    with pytest.raises(ValueError, match="2 completions but 1 lists of shown examples"):
        score_challenger(ARITH, ["a", "b"], categories=["add_sub_small"] * 2, shown=[[]], sample=scripted_solver({}),
                         samples=2)


def test_the_challengers_indicators_count_unanimous_questions_among_the_voted():
    from coevolve.records import Question, Reward, Vote
    from coevolve.selfplay.scoring import challenger_indicators
    from coevolve.selfplay.steps import ChallengerItem

    def item(agreement):
        vote = None if agreement is None else Vote("4", round(agreement * 6), agreement, 6)
        question = None if agreement is None else Question("q", "c", "What is 2 + 2?")
        parts = {"uncertainty": 0.0, "repetition_penalty": 0.0}
        return ChallengerItem("reply", "c", question, vote, Reward(total=0.0, parts=parts))

    metrics = challenger_indicators([item(1.0), item(1.0), item(4 / 6), item(None)], band=(0.6, 1.0))
    assert metrics["challenger/unanimous_share"] == pytest.approx(2 / 3)  # of the 3 voted, not of all 4
    assert metrics["challenger/in_band_share"] == 1.0
