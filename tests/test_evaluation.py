"""Held-out grading: greedy and majority-of-k, per category."""

import pytest

from coevolve.domains import build_domain
from coevolve.evaluation import score_answers
from coevolve.records import Question

ARITH = build_domain("arithmetic")
QS = [
    Question("a", "add_sub_small", "What is 1 + 2?", "3"),
    Question("b", "add_sub_small", "What is 5 + 5?", "10"),
    Question("c", "mul_small", "What is 3 * 3?", "9"),
]


@pytest.mark.parametrize(
    "completions, overall, per_category",
    [
        # greedy: one completion each; the last number is the answer
        ([["3"], ["11"], ["The answer is 9."]], 2 / 3, {"add_sub_small": 0.5, "mul_small": 1.0}),
        # majority of 3 overrides one wrong sample
        ([["3", "4", "3"], ["10", "10", "1"], ["8", "9", "8"]], 2 / 3,
         {"add_sub_small": 1.0, "mul_small": 0.0}),
        # nothing extractable is wrong, not an error
        ([["no"], ["idea"], [""]], 0.0, {"add_sub_small": 0.0, "mul_small": 0.0}),
    ],
)
def test_score_answers(completions, overall, per_category):
    result, _ = score_answers(ARITH, QS, completions)
    assert result.accuracy == pytest.approx(overall)
    metrics = result.metrics()
    for category, value in per_category.items():
        assert metrics[f"eval/accuracy/{category}"] == pytest.approx(value)
    assert result.total == {"add_sub_small": 2, "mul_small": 1}


def test_question_without_answer_is_an_error():
    with pytest.raises(ValueError, match="no true answer"):
        score_answers(ARITH, [Question("x", "mul_small", "What is 2 * 2?")], [["4"]])
