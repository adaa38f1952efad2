"""The baseline ladder: each arm's recipe runs on the fake backend and does what its name says;
pooled paired gains by hand."""

from __future__ import annotations

import json

import pytest
from test_loop import recipe

from coevolve.measure.ladder import ARMS, BASE, ladder_table, pooled_gain
from coevolve.measure.report import EvalPoint
from coevolve.run.console import Console
from coevolve.run.loop import CoEvolution
from coevolve.stats import proportion
from helpers.fake_backend import FakeBackend


def run_arm(tmp_path, arm: str):
    backend = FakeBackend()
    state = CoEvolution(recipe(tmp_path, *ARMS[arm]), backend, Console(live=False)).run()
    kept = [json.loads(line) for line in (tmp_path / "data" / "iter_001" / "solver_dataset.jsonl").read_text()
            .splitlines()]
    return state, backend, kept


def test_format_only_rewards_any_extracted_answer(tmp_path):
    state, backend, _ = run_arm(tmp_path, "format-only")
    solver = state.metrics["1/solver"]
    assert solver["solver/reward_mean"] == pytest.approx(solver["solver/answer_extracted_rate"])
    assert backend.roles["challenger"].version == 0  # the base challenger's questions


def test_base_challenger_is_never_trained(tmp_path):
    _, backend, _ = run_arm(tmp_path, "base-challenger")
    assert backend.roles["challenger"].version == 0 and backend.roles["solver"].version > 0


def test_co_evolution_trains_both(tmp_path):
    _, backend, _ = run_arm(tmp_path, "co-evolution")
    assert backend.roles["challenger"].version > 0 and backend.roles["solver"].version > 0


def test_generator_questions_come_from_the_domain_not_the_challenger(tmp_path):
    _, backend, kept = run_arm(tmp_path, "generator-questions")
    # the toy generator writes digits; the fake challenger writes words
    assert kept and all(q["text"].replace(" ", "").isdigit() for q in kept)
    assert all(q["label_source"] == "majority_vote" for q in kept)
    assert "challenger.sample(12x1)" not in backend.calls  # the 12 dataset questions were not written by it


def test_true_labels_are_the_oracles(tmp_path):
    _, _, kept = run_arm(tmp_path, "true-labels")
    assert kept and all(q["label_source"] == "oracle" for q in kept)
    assert all(q["answer"] == str(len(q["text"].split()) % 3) for q in kept)  # the toy domain's oracle


def test_uniform_curriculum_never_moves_a_bandit(tmp_path):
    state, _, _ = run_arm(tmp_path, "uniform-curriculum")
    for bandit in state.bandits.values():
        assert bandit["updates"] == 0 and len(set(bandit["q"].values())) == 1


def point(correct: dict[str, bool]) -> EvalPoint:
    k = sum(correct.values())
    return EvalPoint(1, proportion(k, len(correct)), {}, correct, {q: "c" for q in correct})


def test_pooled_gain_pairs_each_seed_on_its_shared_questions():
    base = [point({"a": False, "b": False, "c": True}), point({"a": False, "b": False, "c": True})]
    arm = [point({"a": True, "b": False, "c": True}), point({"a": True, "b": True, "c": True})]
    g = pooled_gain("co-evolution", BASE, {BASE: base, "co-evolution": arm})
    # pairs: seed 0 (+1, 0, 0), seed 1 (+1, +1, 0): mean 3/6
    assert g.pairs == 6 and g.seeds == 2 and g.difference == pytest.approx(0.5)
    assert g.low <= 0.5 <= g.high
    assert "| co-evolution vs base | 2 | 6 | +50.0 |" in ladder_table({BASE: base, "co-evolution": arm})


def test_pooled_gain_needs_the_same_seeds():
    with pytest.raises(ValueError, match="pair the same seeds"):
        pooled_gain("co-evolution", BASE, {BASE: [point({"a": True})], "co-evolution": []})
