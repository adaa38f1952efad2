"""Adaptive voting: rounds, stop rules, sampling in rounds and the replay used by the benchmark."""

import pytest

from coevolve.domains import build_domain
from coevolve.records import Question
from coevolve.selfplay.adaptive import (
    AdaptiveVoting,
    Rounds,
    band_rule,
    final_leader_range,
    leader_confidence,
    leader_counts,
    replay,
    reward_rule,
    sample_in_rounds,
)
from coevolve.selfplay.filters import TextFilter
from coevolve.selfplay.steps import build_solver_dataset, parse_questions, score_challenger

ARITH = build_domain("arithmetic")
BAND = (0.3, 0.8)


def test_rounds_sizes_cover_max_samples_exactly():
    assert Rounds(10, 4, 2).sizes() == [4, 2, 2, 2]
    assert Rounds(10, 3, 4).sizes() == [3, 4, 3]
    assert Rounds(6, 6, 2).sizes() == [6]
    with pytest.raises(ValueError, match="first_round"):
        Rounds(6, 7, 2)
    with pytest.raises(ValueError, match="round_size"):
        Rounds(6, 2, 0)


def test_leader_counts_ignore_missing_answers():
    assert leader_counts(["3", None, "3", "4", None]) == (2, 1)
    assert leader_counts([None, None]) == (0, 0)
    assert leader_counts(["3.0", "3"], ARITH.equivalent) == (2, 0)


def test_leader_confidence_is_adaptive_consistency_beta_rule():
    # Beta(v1 + 1, 1): P(x > 1/2) = 1 - 2^-(v1 + 1)
    assert leader_confidence(4, 0) == pytest.approx(1 - 0.5**5)
    assert leader_confidence(2, 2) == pytest.approx(0.5)
    assert leader_confidence(5, 1) > leader_confidence(4, 1) > leader_confidence(4, 2)


def test_final_leader_range():
    assert final_leader_range(3, 4, 10) == (3, 9)
    assert final_leader_range(7, 10, 10) == (7, 7)


def test_band_rule_stops_on_a_settled_leader_or_a_fixed_decision():
    loose = band_rule(BAND, confidence=0.95)
    strict = band_rule(BAND, confidence=0.999)
    # 4 of 4 agree: the leader is settled, but not the decision: P(p > 0.8) = 1 - 0.8^5 = 0.67
    assert not loose(["5"] * 4, 10)
    assert loose(["5"] * 20, 40)  # 20 of 20: P(p > 0.8) = 1 - 0.8^21 = 0.991
    assert not strict(["5"] * 20, 40)
    assert strict(["5"] * 9, 10)  # 9 or 10 of 10: outside the band either way
    assert strict(["5"] * 5 + ["6"] * 3 + ["7"], 10)  # ends at 5 or 6 of 10, inside, label fixed
    assert not strict(["5"] * 5 + ["6"] * 4, 10)  # inside either way, but "6" could still tie
    assert not loose(["5", "6", "7", "8"], 10)  # a four-way split: nothing is settled


def test_band_rule_checks_every_reachable_count_not_only_the_ends():
    # Leader 2 of 2 with 8 to go reaches 2..10 of 10: below, inside and above the band.
    rule = band_rule((0.3, 0.8), confidence=1.0)
    assert not rule(["1", "1"], 10)
    assert not band_rule((0.3, 0.8), 1.0)(["1", "1"], 3)  # 0.67 inside, 1.0 outside
    assert band_rule((0.6, 1.0), 1.0)(["1", "1"], 3)  # 0.67 and 1.0 both inside


def test_reward_rule_uses_the_tolerance_on_the_reachable_rewards():
    # 9 of 9 agree, one to go: p ends at 0.9 or 1.0, reward 0.2 or 0.0 (now 0.0).
    assert reward_rule(tolerance=0.2, confidence=1.0)(["4"] * 9, 10)
    assert not reward_rule(tolerance=0.1, confidence=1.0)(["4"] * 9, 10)
    assert reward_rule(tolerance=0.0, confidence=1.0)(["4"] * 10, 10)


class CountingSampler:
    """A SampleFn answering from a fixed stream per question; records every call."""

    def __init__(self, streams):
        self.streams = streams
        self.used = {q: 0 for q in streams}
        self.calls = []

    def __call__(self, messages, n):
        self.calls.append((len(messages), n))
        out = []
        for message in messages:
            key = next(k for k in self.streams if k in message)
            start = self.used[key]
            self.used[key] += n
            out.append([f"The answer is {a}." for a in self.streams[key][start:start + n]])
        return out


STREAMS = {"2 + 2": ["4"] * 10, "9 + 9": ["18", "17", "18", "19", "17", "18", "16", "18", "18", "17"]}
QUESTIONS = [Question("a", "add_sub_small", "What is 2 + 2?"), Question("b", "add_sub_small", "What is 9 + 9?")]


def test_sample_in_rounds_stops_each_question_on_its_own():
    sampler = CountingSampler(STREAMS)
    groups = sample_in_rounds(QUESTIONS, prompt=ARITH.solver_prompt, extract=ARITH.extract_answer, sample=sampler,
                              rounds=Rounds(10, 4, 2), stop=reward_rule(0.1, 0.95, ARITH.equivalent))
    assert len(groups[0].answers) == 4  # unanimous after the first round: leader settled
    assert len(groups[1].answers) == 10  # a split vote runs to m
    assert sampler.calls == [(2, 4), (1, 2), (1, 2), (1, 2)]  # one batched call per round
    assert groups[1].answers == tuple(STREAMS["9 + 9"])


def test_sample_in_rounds_without_a_rule_draws_m_at_once():
    sampler = CountingSampler(STREAMS)
    groups = sample_in_rounds(QUESTIONS, prompt=ARITH.solver_prompt, extract=ARITH.extract_answer, sample=sampler,
                              rounds=Rounds(10, 4, 2), stop=None)
    assert sampler.calls == [(2, 10)] and [len(g.answers) for g in groups] == [10, 10]


def test_replay_matches_sampling_in_rounds():
    rounds, rule = Rounds(10, 4, 2), band_rule(BAND, 0.95, ARITH.equivalent)
    sampler = CountingSampler(STREAMS)
    groups = sample_in_rounds(QUESTIONS, prompt=ARITH.solver_prompt, extract=ARITH.extract_answer, sample=sampler,
                              rounds=rounds, stop=rule)
    for question, group in zip(QUESTIONS, groups, strict=True):
        full = [ARITH.extract_answer(f"The answer is {a}.") for a in STREAMS[next(k for k in STREAMS if k in question.text)]]
        assert replay(full, rounds, rule) == len(group.answers)


ADAPTIVE = AdaptiveVoting(first_round=4, round_size=2, confidence=0.95, reward_tolerance=0.1)


def test_score_challenger_with_adaptive_voting_saves_samples_on_easy_questions():
    completions = ["<question>What is 2 + 2?</question>", "<question>What is 9 + 9?</question>"]
    sampler = CountingSampler(STREAMS)
    items = score_challenger(ARITH, completions, categories=["add_sub_small"] * 2, shown=[[]] * 2, sample=sampler,
                             samples=10,
                             adaptive=ADAPTIVE)
    assert [i.vote.n for i in items] == [4, 10]
    assert items[0].vote.agreement == 1.0 and items[1].vote.agreement == pytest.approx(0.5)
    full = score_challenger(ARITH, completions, categories=["add_sub_small"] * 2, shown=[[]] * 2,
                            sample=CountingSampler(STREAMS), samples=10)
    assert [i.reward.total for i in items] == [i.reward.total for i in full]


def test_build_solver_dataset_with_adaptive_voting_counts_samples():
    parsed = parse_questions(ARITH, ["<question>What is 2 + 2?</question>", "<question>What is 9 + 9?</question>"],
                             ["add_sub_small"] * 2, "it/")
    result = build_solver_dataset(ARITH, parsed, sample=CountingSampler(STREAMS), samples=10, band=BAND,
                                  text_filter=TextFilter(1, 50, (), 1.0), adaptive=ADAPTIVE)
    # 4 of 4 agreeing does not settle "outside the band" (P(p > 0.8) = 0.67): both run to m
    assert result.vote_samples == 10 + 10
    assert [q.text for q in result.kept] == ["What is 9 + 9?"]
    assert result.kept[0].answer == "18"


def test_band_rule_keeps_sampling_a_kept_question_until_its_label_is_settled():
    rule = band_rule(BAND, confidence=0.999)
    # 3 vs 3 with 4 to go: kept either way (3..7 of 10), but the label is a coin toss
    assert not rule(["1"] * 3 + ["2"] * 3, 10)
    # 4 vs 2 with 2 to go: kept either way (4..6), and "2" could still tie
    assert not rule(["1"] * 4 + ["2"] * 2 + ["3"] * 2, 10)
    # 5 vs 1 with 2 to go: kept either way (5..7), and "1" stays the label
    assert rule(["1"] * 5 + ["2"] + ["3"] * 2, 10)
