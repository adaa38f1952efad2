"""The math domain's held-out benchmark files: one set per file, categories the domain's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coevolve.domains.files import QuestionFileError
from coevolve.domains.math import MathDomain
from coevolve.recipe.load import RECIPES_DIR, RecipeError, load_recipe


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture
def benchmarks(tmp_path: Path) -> list[str]:
    math500 = _write(tmp_path / "math500.jsonl", [
        {"question": "Solve 2x = 4.", "answer": "2", "category": "algebra"},
        {"question": "How many primes are below 10?", "answer": 4, "category": "number_theory"},
    ])
    gsm8k = _write(tmp_path / "gsm8k.jsonl", [  # no topics in GSM8K
        {"question": "Ann has 3 pens and buys 2. How many now?", "answer": "5"},
    ])
    return [math500, gsm8k]


def test_every_line_of_every_file_is_a_labelled_heldout_question(benchmarks):
    domain = MathDomain(heldout_files=benchmarks, heldout_category="arithmetic")
    questions = domain.heldout(per_category=1, seed=0)  # benchmarks are never cut
    assert [q.id for q in questions] == ["math500:1", "math500:2", "gsm8k:1"]  # set = file stem
    assert [q.category for q in questions] == ["algebra", "number_theory", "arithmetic"]
    assert [q.answer for q in questions] == ["2", "4", "5"]  # numbers become strings
    assert {q.label_source for q in questions} == {"heldout"}


def test_no_files_no_heldout():
    assert MathDomain().heldout(per_category=50, seed=0) == []


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"question": "x?", "answer": "1"}], "no 'category' key"),  # no category, no default
        ([{"question": "x?", "answer": "1", "category": "math500"}], "not one of the domain's categories"),
        ([{"question": "x?", "category": "algebra"}], "'answer' is required"),  # held-out needs truth
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path, rows, message):
    path = _write(tmp_path / "bench.jsonl", rows)
    with pytest.raises(QuestionFileError, match=message) as caught:
        MathDomain(heldout_files=[path]).heldout(per_category=1, seed=0)
    assert f"{path}:1" in str(caught.value) and "heldout_files" in str(caught.value)


def test_missing_file_fails_when_read_not_when_built(tmp_path):
    domain = MathDomain(heldout_files=[str(tmp_path / "absent.jsonl")])  # a dry run needs no file
    with pytest.raises(QuestionFileError, match="absent.jsonl: no such file"):
        domain.heldout(per_category=1, seed=0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"heldout_files": "math500.jsonl"}, "must be a list"),  # a bare string, not a list
        ({"heldout_files": ["a/math.jsonl", "b/math.jsonl"]}, "stem of two files"),  # same set name
        ({"heldout_files": ["a/x:y.jsonl"]}, "holds ':'"),  # ':' ends the set name in an id
        ({"heldout_category": "gsm8k"}, "not one of the categories"),
    ],
)
def test_bad_options_are_rejected_when_built(options, message):
    with pytest.raises(ValueError, match=message):
        MathDomain(**options)


def test_recipe_names_the_option_it_rejects():
    # the recipe loader names where the bad value came from and the dotted key
    with pytest.raises(RecipeError, match="command line: domain.options.heldout_category = 'chemistry'"):
        load_recipe(RECIPES_DIR / "math.yaml", ["domain.options.heldout_category=chemistry"])
