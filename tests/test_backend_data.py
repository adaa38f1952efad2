"""Conversion between coevolve's records and verl's items and batches (no Ray, no training)."""

import itertools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

from verl import DataProto  # noqa: E402

from coevolve.backend import data as vdata  # noqa: E402
from coevolve.domains import build_domain  # noqa: E402
from coevolve.records import Question  # noqa: E402
from coevolve.selfplay.curriculum import Bandit  # noqa: E402
from coevolve.selfplay.examples import ExamplePool  # noqa: E402
from coevolve.selfplay.scoring import SHOWN_KEY  # noqa: E402

ARITH = build_domain("arithmetic")


class CharTokenizer:
    """Decodes ids as characters (id 0 is a special token to skip)."""

    def batch_decode(self, rows, skip_special_tokens=True):
        return ["".join(chr(t) for t in row if t != 0) for row in rows]


def generated_batch():
    # two rows: prompts of width 2 (left-padded), responses of width 3 (right-padded)
    prompts = torch.tensor([[0, 72], [72, 73]])
    responses = torch.tensor([[65, 66, 0], [67, 0, 0]])
    attention = torch.tensor([[0, 1, 1, 1, 0], [1, 1, 1, 0, 0]])
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": attention,
                 "advantages": torch.tensor([[0.5, 0.5, 9.0], [-1.0, 9.0, 9.0]]),
                 "response_mask": torch.tensor([[1, 1, 0], [1, 0, 0]]),
                 "token_level_scores": torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])},
        non_tensors={"extra_info": np.array([{"category": "a"}, {"category": "b"}], dtype=object),
                     "reward_model": np.array([{"ground_truth": "7"}, {"ground_truth": "8"}], dtype=object)},
    )


def test_decode_rollouts_keeps_row_order_and_cuts_padding():
    rollouts = vdata.decode_rollouts(generated_batch(), CharTokenizer())
    assert [(r.response, r.ground_truth, r.extra_info["category"]) for r in rollouts] == [
        ("AB", "7", "a"), ("C", "8", "b")]


def test_sequence_advantages_average_over_response_tokens_only():
    batch = generated_batch()
    assert vdata.sequence_advantages(batch) == pytest.approx([0.5, -1.0])  # the 9.0s are masked
    assert vdata.sequence_rewards(batch) == pytest.approx([1.0, 0.0])
    assert vdata.categories_of(batch) == ["a", "b"]


def test_challenger_prompts_encode_the_category_in_the_index():
    seeds = {c: ARITH.seed_questions(c, 4, 0) for c in ARITH.categories()}
    dataset = vdata.ChallengerPrompts(ARITH, ARITH.categories(), ExamplePool(seeds, run_seed=0, shown=2))
    index = dataset.index_of("mul_small", 5)
    item = dataset[index]
    assert item["extra_info"]["category"] == "mul_small"
    shown = [q.text for q in seeds["mul_small"] if f"<question>{q.text}</question>" in item["raw_prompt"][0]["content"]]
    assert len(shown) == 2  # two of the category's seeds, drawn for this prompt
    # the texts shown travel with the item, so the scorer judges copies against this prompt's
    assert sorted(json.loads(item["extra_info"][SHOWN_KEY])) == sorted(shown)
    assert item["index"] == index


def test_solver_questions_carry_pseudo_label_and_oracle():
    questions = [Question("q1", "add_sub_small", "What is 2 + 2?", "5", "majority_vote")]
    item = vdata.SolverQuestions(ARITH, questions)[0]
    assert item["reward_model"]["ground_truth"] == "5"  # trained on the pseudo-label
    assert item["extra_info"]["true_answer"] == "4"  # measured against the oracle
    with pytest.raises(ValueError, match="empty"):
        vdata.SolverQuestions(ARITH, [])


def test_curriculum_sampler_draws_allowed_categories_and_picker_cycles():
    questions = [Question(f"q{i}", c, "What is 1 + 1?", "2") for i, c in
                 enumerate(["add_sub_small"] * 3 + ["mul_small"] * 2)]
    dataset = vdata.SolverQuestions(ARITH, questions, oracle=False)
    pick = vdata.solver_picker(dataset, np.random.default_rng(0))
    sampler = vdata.CurriculumSampler(Bandit(ARITH.categories(), seed=0), pick,
                                      allowed=sorted(dataset.by_category), batch_size=4)
    drawn = list(itertools.islice(iter(sampler), 40))
    assert {dataset.questions[i].category for i in drawn} == {"add_sub_small", "mul_small"}
    fresh = vdata.solver_picker(dataset, np.random.default_rng(1))
    passes = [sorted(fresh("add_sub_small") for _ in range(3)) for _ in range(2)]
    assert passes == [[0, 1, 2], [0, 1, 2]]  # every question once per pass, then reshuffled


def test_weighted_picker_draws_within_the_category_in_proportion_to_weights():
    questions = [Question(f"q{i}", c, "What is 1 + 1?", "2") for i, c in
                 enumerate(["add_sub_small"] * 3 + ["mul_small"])]
    dataset = vdata.SolverQuestions(ARITH, questions, oracle=False)
    pick = vdata.weighted_picker(dataset, [0.1, 0.6, 0.3, 0.05], np.random.default_rng(0))
    drawn = [pick("add_sub_small") for _ in range(4000)]
    assert set(drawn) == {0, 1, 2}
    assert [drawn.count(i) / len(drawn) for i in range(3)] == pytest.approx([0.1, 0.6, 0.3], abs=0.03)
    assert pick("mul_small") == 3
    with pytest.raises(ValueError, match="weights"):
        vdata.weighted_picker(dataset, [1.0], np.random.default_rng(0))
