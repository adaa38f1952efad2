"""Chance of an informative GRPO group, and drawing questions by it."""

import random

import pytest

from coevolve.records import Question
from coevolve.runstate import load_dataset, save_dataset
from coevolve.selfplay.informative import informative_probability, informative_weights


def test_informative_probability_matches_a_simulation():
    rng = random.Random(0)
    for p, g in ((0.3, 4), (0.8, 5), (0.5, 2)):
        groups = [[rng.random() < p for _ in range(g)] for _ in range(20000)]
        simulated = sum(len(set(group)) > 1 for group in groups) / len(groups)
        assert informative_probability(p, g) == pytest.approx(simulated, abs=0.01)


def test_informative_probability_edges_and_errors():
    assert informative_probability(0.0, 4) == 0.0 and informative_probability(1.0, 4) == 0.0
    assert informative_probability(0.5, 1) == 0.0  # one answer never disagrees with itself
    with pytest.raises(ValueError, match="p must"):
        informative_probability(1.2, 4)
    with pytest.raises(ValueError, match="group_size"):
        informative_probability(0.5, 0)


def test_weights_have_a_floor():
    weights = informative_weights([1.0, 0.5, 0.8], 4, floor=0.05)
    assert weights[0] == 0.05 and weights[1] == pytest.approx(0.875)
    assert weights[2] == pytest.approx(1 - 0.8**4 - 0.2**4)


def test_dataset_file_keeps_each_questions_vote_agreement(tmp_path):
    questions = [Question("a", "c", "What is 1 + 1?", "2", "majority_vote"), Question("b", "c", "Q?", "3")]
    save_dataset(questions, [0.5, 0.8], tmp_path / "d.jsonl")
    assert load_dataset(tmp_path / "d.jsonl") == (questions, [0.5, 0.8])
    with pytest.raises(ValueError):
        save_dataset(questions, [0.5], tmp_path / "e.jsonl")


@pytest.mark.parametrize("damage", [
    lambda text: text[: text.index("\n") + 9],  # truncated in the middle of the second row
    lambda text: text.replace('"vote_agreement"', '"agreement"', 1),  # a row without its agreement
    lambda text: text + "[1, 2]\n",  # a row that is no object
])
def test_a_damaged_solver_dataset_names_the_file_and_line(tmp_path, damage):
    from coevolve.runstate import RunDirError

    path = tmp_path / "d.jsonl"
    save_dataset([Question("q0", "c", "What is 1 + 1?", "2"), Question("q1", "c", "What is 2 + 2?", "4")],
                 [0.5, 0.8], path)
    path.write_text(damage(path.read_text()))
    with pytest.raises(RunDirError, match=r"d\.jsonl, line \d"):
        load_dataset(path)
