"""The challenger bench's leading indicators on a scripted fake challenger and solver."""

import pytest

from coevolve.domains import build_domain
from coevolve.measure.challenger_bench import ChallengerBench, Variant, indicators, pooled, today_rewards

ARITH = build_domain("arithmetic")
CATEGORY = "add_sub_small"


def fake_writer(replies_of_prompt):
    """A WriteFn: the same scripted replies for every prompt, checked to come `n` at a time."""

    def write(messages, n):
        assert n == len(replies_of_prompt)
        return [list(replies_of_prompt) for _ in messages]

    return write


def fake_solver(answers_of):
    """A SampleFn answering each question from `answers_of[expression]` (first `n` answers)."""

    def sample(messages, n):
        return [[f"The answer is {a}." for a in next(v for k, v in answers_of.items() if k in m)[:n]]
                for m in messages]

    return sample


def bench(design: str, shown: int = 0, peak: float = 0.5) -> ChallengerBench:
    seeds = {CATEGORY: ARITH.seed_questions(CATEGORY, 16, 0)}
    return ChallengerBench(ARITH, [CATEGORY], Variant(design, design, peak=peak), seeds=seeds, shown=shown,
                           band=(0.6, 1.0), run_seed=0)


# A group of 4 replies: one new question split 3/4 (in the band), one unanimous new question,
# one malformed reply, and one well-formed copy of the first seed example.
SEED = ARITH.seed_questions(CATEGORY, 16, 0)[0].text
REPLIES = [f"<question>{q}</question>" for q in ("What is 7 + 8?", "What is 2 + 2?", "I like cats", SEED)]
SOLVER = fake_solver({"7 + 8": ["15", "15", "15", "14"], "2 + 2": ["4"] * 4, SEED.removeprefix("What is ")[:-1]:
                      ["1", "2", "3", "4"]})


def test_indicators_of_the_rungs_design():
    b = bench("rungs", shown=0)  # nothing shown: the seed text counts as new here
    step = b.step(0, batch=2, group=4, write=fake_writer(REPLIES), sample=SOLVER, samples=4)
    assert step.replies == 8
    assert step.well_formed_rate == pytest.approx(3 / 4)
    assert step.new_valid_rate == pytest.approx(3 / 4)
    assert step.groups_with_gradient == 1.0  # malformed -1 beside new questions
    assert step.in_band_share == pytest.approx(2 / 3)  # 0.75 and 1.0 in; the seed's own vote not
    assert b.pool.own[CATEGORY][:2] == ["What is 7 + 8?", "What is 2 + 2?"]  # in-band ones remembered


def test_a_copy_of_a_shown_example_is_a_copy_only_when_shown():
    b = bench("rungs", shown=16)  # all 16 seeds shown in every prompt
    step = b.step(0, batch=1, group=4, write=fake_writer(REPLIES), sample=SOLVER, samples=4)
    assert step.new_valid_rate == pytest.approx(2 / 4)  # the seed's copy no longer counts


def test_groups_of_malformed_and_copies_have_a_gradient_only_with_the_copy_rung():
    replies = ["nonsense", f"<question>{SEED}</question>"] * 2
    today = bench("today", shown=3).step(0, batch=1, group=4, write=fake_writer(replies), sample=SOLVER, samples=4)
    rungs = bench("rungs", shown=16).step(0, batch=1, group=4, write=fake_writer(replies), sample=SOLVER, samples=4)
    assert today.groups_with_gradient == 0.0  # every reply -1: no gradient
    assert rungs.groups_with_gradient == 1.0  # -1 vs -0.5
    assert today.new_valid_rate == rungs.new_valid_rate == 0.0


@pytest.mark.parametrize(
    "kinds, agreements, expected",
    [
        # a lone new question: penalty 1/1 among new questions, clamped at 0
        (["new", "malformed"], [0.5, None], [0.0, -1.0]),
        # two distinct new questions split evenly: 1 - 1/2 each; a copy -1
        (["new", "new", "copy"], [0.5, 0.5, None], [0.5, 0.5, -1.0]),
    ],
)
def test_today_rewards(kinds, agreements, expected):
    texts = ["What is 7 + 8?", "Compute the product of seventeen and nine please", "What is 1 + 1?"][:len(kinds)]
    texts = [t if k != "malformed" else None for t, k in zip(texts, kinds, strict=True)]
    assert today_rewards(texts, kinds, agreements) == pytest.approx(expected)


def test_pooled_weights_by_replies_and_voted_questions():
    a = indicators(["new", "new", "malformed", "malformed"], [0.75, 1.0, None, None], [1, 0, -1, -1], 2,
                   (0.6, 1.0), 0.75)
    b = indicators(["malformed", "malformed"], [None, None], [-1, -1], 2, (0.6, 1.0), 0.75)
    assert a.groups_with_gradient == 0.5 and b.uncertainty_mean is None
    result = pooled([a, b])
    assert result["well_formed"] == pytest.approx(2 / 6)
    assert result["uncertainty_mean"] == pytest.approx(0.5)  # (1 + 0) / 2, b has no votes
    assert result["groups_with_gradient"] == pytest.approx((0.5 * 4 + 0 * 2) / 6)


def test_indicators_reject_ragged_groups():
    with pytest.raises(ValueError, match="groups of 4"):
        indicators(["new"] * 3, [0.5] * 3, [0.0] * 3, 4, (0.6, 1.0), 0.5)
