"""Held-out grading: greedy and majority-of-k, per category."""

import pytest

from coevolve.domains import build_domain
from coevolve.measure.evaluation import score_answers
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


# --- coevolve eval: greedy and majority-of-k per set and category ----------------------------

from pathlib import Path  # noqa: E402

from coevolve.measure.evaluation import (  # noqa: E402
    ALL,
    EvalInputError,
    check_checkpoint,
    checkpoint_iteration,
    checkpoint_label,
    grade_checkpoint,
    heldout_questions,
    heldout_set,
)

# Two sets: a held-out file `gsm` (ids <stem>:<line>) and questions the domain generated.
TWO_SETS = [
    Question("gsm:1", "add_sub_small", "What is 1 + 2?", "3"),
    Question("gsm:2", "mul_small", "What is 3 * 3?", "9"),
    Question("arithmetic/heldout/1/add_sub_small/0", "add_sub_small", "What is 5 + 5?", "10"),
    Question("arithmetic/heldout/1/add_sub_small/1", "add_sub_small", "What is 2 + 2?", "4"),
]
GREEDY = ["3", "8", "10", "5"]  # right, wrong, right, wrong
SAMPLED = [["3", "3", "1"], ["9", "9", "8"], ["1", "2", "10"], ["4", "", ""]]  # majority: all right but #3


@pytest.mark.parametrize(
    "question, expected",
    [
        (Question("gsm8k:12", "c", "t"), "gsm8k"),  # a held-out file's stem
        (Question("arithmetic/heldout/1/c/0", "c", "t"), "arithmetic"),  # generated: the domain
        (Question(":3", "c", "t"), "arithmetic"),  # no stem before ':' is no set name
        (Question("a:b:c", "c", "t"), "a"),  # only the first ':' splits
    ],
)
def test_heldout_set(question, expected):
    assert heldout_set(question, "arithmetic") == expected


def test_table_rows_per_set_category_and_totals():
    result = grade_checkpoint(ARITH, TWO_SETS, greedy=GREEDY, sampled=SAMPLED, checkpoint="ckpt", domain_name="arithmetic")
    rows = {(r.set, r.category): (r.questions, r.greedy_correct, r.majority_correct) for r in result.rows}
    assert rows == {
        ("arithmetic", "add_sub_small"): (2, 1, 1),
        ("gsm", "add_sub_small"): (1, 1, 1),
        ("gsm", "mul_small"): (1, 0, 1),
        ("arithmetic", ALL): (2, 1, 1),  # per set, as there are two sets
        ("gsm", ALL): (2, 1, 2),
        (ALL, "add_sub_small"): (3, 2, 2),  # per category, over both sets
        (ALL, "mul_small"): (1, 0, 1),
        (ALL, ALL): (4, 2, 3),
    }
    assert result.rows[-1].set == result.rows[-1].category == ALL  # the total comes last
    assert result.k == 3


def test_single_set_table_does_not_repeat_rows_but_metrics_have_every_group():
    result = grade_checkpoint(ARITH, TWO_SETS[2:], greedy=GREEDY[2:], sampled=SAMPLED[2:], checkpoint="ckpt",
                              domain_name="arithmetic")
    assert [(r.set, r.category) for r in result.rows] == [("arithmetic", "add_sub_small"), (ALL, ALL)]
    assert result.metrics() == {
        "eval_checkpoint/questions/set/arithmetic/add_sub_small": 2,
        "eval_checkpoint/greedy_accuracy/set/arithmetic/add_sub_small": 0.5,
        "eval_checkpoint/majority_of_3_accuracy/set/arithmetic/add_sub_small": 0.5,
        "eval_checkpoint/questions/set/arithmetic": 2,
        "eval_checkpoint/greedy_accuracy/set/arithmetic": 0.5,
        "eval_checkpoint/majority_of_3_accuracy/set/arithmetic": 0.5,
        "eval_checkpoint/questions/category/add_sub_small": 2,
        "eval_checkpoint/greedy_accuracy/category/add_sub_small": 0.5,
        "eval_checkpoint/majority_of_3_accuracy/category/add_sub_small": 0.5,
        "eval_checkpoint/questions": 2,
        "eval_checkpoint/greedy_accuracy": 0.5,
        "eval_checkpoint/majority_of_3_accuracy": 0.5,
    }


def test_markdown_table_with_counts():
    result = grade_checkpoint(ARITH, TWO_SETS[:2], greedy=GREEDY[:2], sampled=SAMPLED[:2], checkpoint="ckpt",
                              domain_name="arithmetic")
    assert result.markdown() == (
        "| set | category | questions | greedy accuracy | majority-of-3 accuracy |\n"
        "|---|---|---|---|---|\n"
        "| gsm | add_sub_small | 1 | 1.000 (1/1) | 1.000 (1/1) |\n"
        "| gsm | mul_small | 1 | 0.000 (0/1) | 1.000 (1/1) |\n"
        "| all | all | 2 | 0.500 (1/2) | 1.000 (2/2) |\n"
    )


def test_greedy_only_has_no_majority_column_tag_or_json_key():
    result = grade_checkpoint(ARITH, TWO_SETS, greedy=GREEDY, sampled=None, checkpoint="ckpt", domain_name="arithmetic")
    assert result.k == 1
    assert result.header() == ("set", "category", "questions", "greedy accuracy")
    assert all(len(cells) == 4 for cells in result.table())
    assert not [tag for tag in result.metrics() if "majority" in tag]
    data = result.to_json()
    assert data["rows"][-1] == {"set": ALL, "category": ALL, "questions": 4, "greedy_correct": 2,
                                "majority_correct": None, "greedy_accuracy": 0.5, "majority_accuracy": None}
    assert "majority_answer" not in data["questions"][0]


def test_json_has_every_question_graded():
    data = grade_checkpoint(ARITH, TWO_SETS, greedy=GREEDY, sampled=SAMPLED, checkpoint="ckpt", domain_name="arithmetic").to_json()
    assert [q["id"] for q in data["questions"]] == [q.id for q in TWO_SETS]
    assert data["questions"][3] == {
        "id": TWO_SETS[3].id, "set": "arithmetic", "category": "add_sub_small", "true_answer": "4",
        "greedy_answer": "5", "greedy_correct": False, "majority_answer": "4",
        "majority_agreement": pytest.approx(1 / 3), "majority_correct": True,
    }


def test_sample_groups_must_match_questions():
    with pytest.raises(ValueError, match="4 questions but 3 groups"):
        grade_checkpoint(ARITH, TWO_SETS, greedy=GREEDY, sampled=SAMPLED[:3], checkpoint="ckpt", domain_name="arithmetic")


class NoHeldoutDomain(type(ARITH)):
    """Arithmetic without held-out questions, like a domain that has no files configured."""

    name = "no-heldout"

    def heldout(self, per_category: int, seed: int) -> list[Question]:
        return []


class TooFewDomain(type(ARITH)):
    """Arithmetic refusing more held-out questions than it has, as arithmetic's heldout does."""

    name = "too-few"

    def heldout(self, per_category: int, seed: int) -> list[Question]:
        raise ValueError(f"only 81 distinct questions, {per_category} asked")


@pytest.mark.parametrize(
    "domain, categories, per_category, match",
    [
        (NoHeldoutDomain(), (), 2, "no-heldout has no held-out questions"),  # nothing to evaluate on
        (TooFewDomain(), (), 100, "eval.per_category = 100 .only 81"),  # the domain's reason is kept
    ],
)
def test_heldout_questions_errors(domain, categories, per_category, match):
    with pytest.raises(EvalInputError, match=match):
        heldout_questions(domain, categories, per_category=per_category, seed=1)


def test_heldout_questions_keep_the_recipe_categories():
    questions = heldout_questions(ARITH, ["mul_small"], per_category=3, seed=1)
    assert [q.category for q in questions] == ["mul_small"] * 3


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda tmp: tmp / "missing", "missing: no such directory"),  # a typo in the path
        (lambda tmp: tmp, "no config.json in it"),  # a folder that is not a model
    ],
)
def test_check_checkpoint_errors(tmp_path, make, match):
    with pytest.raises(EvalInputError, match=match):
        check_checkpoint(make(tmp_path))


def test_check_checkpoint_accepts_a_model_directory(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    check_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "checkpoint, label, iteration",
    [
        ("runs/r/checkpoints/iter_001/solver", "iter_001_solver", 1),  # a role of the run
        ("runs/r/checkpoints/iter_012/challenger", "iter_012_challenger", 12),
        (".cache/models/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct", 0),  # the base model
        ("runs/other/checkpoints/iter_003/solver", "other_iter_003_solver", 3),  # another run's
        ("/models/my-solver", "my-solver", 0),
    ],
)
def test_checkpoint_label_and_iteration(tmp_path, monkeypatch, checkpoint, label, iteration):
    monkeypatch.chdir(tmp_path)
    assert checkpoint_label(Path(checkpoint), Path("runs/r")) == label
    assert checkpoint_iteration(Path(checkpoint)) == iteration


def test_a_dev_split_left_empty_by_the_test_split_says_which_keys_to_lower(tmp_path):
    from coevolve.domains.generic import GenericDomain

    path = tmp_path / "capitals.jsonl"
    path.write_text("".join(f'{{"question": "Capital number {i}?", "answer": "C{i}"}}\n' for i in range(49)))
    domain = GenericDomain(categories={"capitals": "Ask."}, heldout_files=[str(path)])
    # 49 questions, 70 asked for the test split and 10 for dev: the test split takes them all
    with pytest.raises(EvalInputError, match=r"the test split took all 49 .* lower eval\.per_category"):
        heldout_questions(domain, [], per_category=70, seed=1, dev_per_category=10, split="dev")
