"""The generic domain: every option, every error, and its life inside a recipe.

A recipe is the only way users configure it, so the recipe tests check that a bad option
fails at `load_recipe` naming the file and `domain.options.<key>`, that paths resolve
against the recipe's folder, and that switching domains drops the base's options.
"""

from __future__ import annotations

import json
import multiprocessing
import re
from pathlib import Path
from typing import Any

import pytest

from coevolve.domains import build_domain
from coevolve.domains.base import DomainOptionError
from coevolve.domains.generic import GenericDomain
from coevolve.recipe.load import RECIPES_DIR, RecipeError, load_recipe
from coevolve.records import Question

CATEGORIES = {"geo": "Ask about a capital.", "sums": "Ask for a sum."}
Q = Question("q", "geo", "What is the capital of France?")


def domain(**options: Any) -> GenericDomain:
    built = build_domain("generic", {"categories": CATEGORIES, **options})
    assert isinstance(built, GenericDomain)
    return built


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# ---------------------------------------------------------------- errors at construction


@pytest.mark.parametrize("options, key, says", [
    ({"categories": CATEGORIES, "comparison": "exact"}, "comparison", "did you mean compare"),  # typo
    ({}, "categories", "required"),  # no categories at all
    ({"categories": {}}, "categories", "non-empty mapping"),  # empty mapping
    ({"categories": ["geo"]}, "categories", "non-empty mapping"),  # a list, not a mapping
    ({"categories": {"a/b": "x"}}, "categories.a/b", "bad category name"),  # slash breaks tags
    ({"categories": {"geo": ""}}, "categories.geo", "not an instruction"),  # empty instruction
    ({"categories": CATEGORIES, "solver_template": "Answer: {q}"}, "solver_template", "{question}"),
    ({"categories": CATEGORIES, "question_format": "xml"}, "question_format", "tag, whole, regex"),
    ({"categories": CATEGORIES, "question_format": "regex"}, "question_regex", "required"),
    ({"categories": CATEGORIES, "question_format": "regex", "question_regex": "(unclosed"},
     "question_regex", "does not compile"),
    ({"categories": CATEGORIES, "question_format": "regex", "question_regex": "Q: .*"},
     "question_regex", "no capturing group"),
    ({"categories": CATEGORIES, "max_question_chars": 0}, "max_question_chars", "out of range"),
    ({"categories": CATEGORIES, "max_question_chars": "200"}, "max_question_chars", "wrong type"),
    ({"categories": CATEGORIES, "max_question_chars": True}, "max_question_chars", "wrong type"),
    ({"categories": CATEGORIES, "answer_format": "json"}, "answer_format", "boxed, tag"),
    ({"categories": CATEGORIES, "answer_format": ["boxed", "json"]}, "answer_format[1]", "not a known"),
    ({"categories": CATEGORIES, "answer_format": ["boxed", "boxed"]}, "answer_format", "without repeats"),
    ({"categories": CATEGORIES, "answer_format": []}, "answer_format", "non-empty list"),
    ({"categories": CATEGORIES, "answer_format": "regex"}, "answer_regex", "required"),
    ({"categories": CATEGORIES, "answer_format": "regex", "answer_regex": r"\d+"},
     "answer_regex", "no capturing group"),
    ({"categories": CATEGORIES, "answer_format": "tag", "answer_tag": "<ans>"}, "answer_tag", "tag name"),
    ({"categories": CATEGORIES, "compare": "fuzzy"}, "compare", "exact, normalized, numeric, math_verify"),
    ({"categories": CATEGORIES, "compare": "numeric", "rel_tolerance": -1}, "rel_tolerance", "out of range"),
    ({"categories": CATEGORIES, "compare": "numeric", "abs_tolerance": "1e-3"},  # YAML: a string
     "abs_tolerance", "wrong type"),
    ({"categories": CATEGORIES, "compare": "math_verify", "timeout_s": 0}, "timeout_s", "out of range"),
    # options that would silently do nothing with the formats chosen
    ({"categories": CATEGORIES, "answer_regex": "(x)"}, "answer_regex", "no effect"),
    ({"categories": CATEGORIES, "question_regex": "(x)"}, "question_regex", "no effect"),
    ({"categories": CATEGORIES, "answer_tag": "final"}, "answer_tag", "no effect"),
    ({"categories": CATEGORIES, "rel_tolerance": 0.1}, "rel_tolerance", "no effect"),
    ({"categories": CATEGORIES, "timeout_s": 3}, "timeout_s", "no effect"),
    ({"categories": CATEGORIES, "seed_file": ""}, "seed_file", "not a file path"),
    ({"categories": CATEGORIES, "heldout_files": [3]}, "heldout_files[0]", "not a file path"),
    ({"categories": CATEGORIES, "heldout_files": {"a": 1}}, "heldout_files", "list of file paths"),
    ({"categories": CATEGORIES, "seed_file": "/nonexistent/seeds.jsonl"}, "seed_file", "no such file"),
])
def test_bad_option_names_key_value_and_what_is_allowed(options, key, says):
    with pytest.raises(DomainOptionError) as caught:
        build_domain("generic", options)
    message = str(caught.value)
    assert caught.value.key == key
    assert message.startswith(f"domain.options.{key} = "), message
    assert says in message and "allowed:" in message, message


def test_file_errors_name_the_file_line_and_key(tmp_path):
    heldout = write_jsonl(tmp_path / "h.jsonl", [{"question": "a?", "answer": "1", "category": "geo"},
                                                 {"question": "b?", "category": "geo"}])
    with pytest.raises(DomainOptionError, match=r"heldout_files\[0\].*h.jsonl:2: key 'answer' is required"):
        domain(heldout_files=[str(heldout)])
    wrong = write_jsonl(tmp_path / "s.jsonl", [{"question": "a?", "category": "history"}])
    with pytest.raises(DomainOptionError, match=r"seed_file.*s.jsonl:1: category 'history'"):
        domain(seed_file=str(wrong))


def test_heldout_files_with_the_same_name_collide(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rows = [{"question": "q?", "answer": "1", "category": "geo"}]
    files = [str(write_jsonl(tmp_path / d / "set.jsonl", rows)) for d in ("a", "b")]
    with pytest.raises(DomainOptionError, match=r"heldout_files\[1\].*set:1 is also in an earlier file"):
        domain(heldout_files=files)


def test_a_null_option_is_its_default():
    built = domain(answer_format=None, answer_regex=None, compare=None, seed_file=None)
    assert built.config.answer_format == ("boxed",) and built.config.compare == "normalized"
    with pytest.raises(DomainOptionError, match="categories = None: required"):
        build_domain("generic", {"categories": None})
    with pytest.raises(DomainOptionError, match="unknown option"):  # null does not hide a typo
        domain(compar=None)


# ---------------------------------------------------------------- prompts and questions


def test_categories_keep_the_recipe_order_and_unknown_ones_are_refused():
    built = domain()
    assert built.categories() == ("geo", "sums")
    with pytest.raises(ValueError, match="valid: geo, sums"):
        built.challenger_prompt("history")


@pytest.mark.parametrize("question_format, has_tags, reply_line", [
    ("tag", True, "inside <question></question> tags"),  # the shared request with tags
    ("whole", False, "Reply with the question only, without its answer."),
    ("regex", False, None),  # the instruction itself describes the shape
])
def test_challenger_prompt_shows_instruction_seeds_and_format(question_format, has_tags, reply_line):
    extra = {"question_regex": "Q: (.*)"} if question_format == "regex" else {}
    built = domain(question_format=question_format, **extra)
    prompt = built.challenger_prompt("geo", [Question("s", "geo", "What is the capital of Peru?")])
    assert prompt.startswith("Ask about a capital.")
    assert ("<question>What is the capital of Peru?</question>" in prompt) == has_tags
    assert "What is the capital of Peru?" in prompt
    if reply_line is None:
        assert prompt.splitlines()[-1] == "What is the capital of Peru?"
    else:
        assert reply_line in prompt


@pytest.mark.parametrize("options, completion, expected", [
    ({}, "Sure! <question>What is 2+2?</question>", "What is 2+2?"),  # tag (default)
    ({}, "What is 2+2?", None),  # tag: no block
    ({"max_question_chars": 5}, "<question>What is 2+2?</question>", None),  # too long
    ({"question_format": "whole"}, "  What is 2+2?\n", "What is 2+2?"),  # the whole reply
    ({"question_format": "whole"}, "   ", None),  # empty reply
    ({"question_format": "whole", "max_question_chars": 5}, "What is 2+2?", None),
    ({"question_format": "regex", "question_regex": r"Q: (.*)"}, "ok\nQ: Sum 1 and 2\nQ: x", "Sum 1 and 2"),
    ({"question_format": "regex", "question_regex": r"Q: (.*)"}, "no question", None),  # no match
    ({"question_format": "regex", "question_regex": r"Q:(\s*)"}, "Q:  ", None),  # empty group
])
def test_parse_question(options, completion, expected):
    assert domain(**options).parse_question(completion, "geo") == expected


def test_solver_template_replaces_question_and_keeps_other_braces():
    built = domain(solver_template="{question}\nPut it in \\boxed{}.")
    assert built.solver_prompt(Q) == "What is the capital of France?\nPut it in \\boxed{}."
    default = domain().solver_prompt(Q)  # the base class's step-by-step \boxed{} request
    assert default.startswith(Q.text) and "\\boxed{}" in default and "{answer}" not in default


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize("options, completion, expected", [
    ({}, r"so \boxed{1} no \boxed{ Paris }", "Paris"),  # boxed (default): the last box
    ({}, "Paris", None),  # boxed: no box
    ({"answer_format": "tag"}, "<answer>Rome</answer> or <ANSWER> Paris </ANSWER>", "Paris"),  # last tag
    ({"answer_format": "tag"}, "<answer>Paris", None),  # unclosed tag: truncated
    ({"answer_format": "tag", "answer_tag": "final"}, "<final>7</final>", "7"),  # own tag name
    ({"answer_format": "regex", "answer_regex": r"is (\w+)"}, "It is Rome. No, it is Paris.", "Paris"),
    ({"answer_format": "regex", "answer_regex": r"is (\w+)?"}, "It is ", None),  # group did not match
    ({"answer_format": "last_number"}, "between 3 and 1,234.5 km", "1,234.5"),
    ({"answer_format": "last_number"}, "no digits", None),
    # a list is tried in order: the box wins over the last number when there is one
    ({"answer_format": ["boxed", "last_number"]}, r"\boxed{12} then 13", "12"),
    ({"answer_format": ["boxed", "last_number"]}, "I think 13", "13"),
])
def test_extract_answer(options, completion, expected):
    assert domain(**options).extract_answer(completion) == expected


@pytest.mark.parametrize("options, a, b, same", [
    ({"compare": "exact"}, "Paris", " Paris ", True),  # outer whitespace does not count
    ({"compare": "exact"}, "Paris", "paris", False),  # case does
    ({"compare": "exact"}, "", "", False),  # empty answers match nothing
    ({}, "New  Delhi.", "new delhi", True),  # normalized (default): case, spaces, final period
    ({}, "Paris!", "PARIS", True),
    ({}, "Paris", "Parish", False),
    ({}, "...", "", False),  # nothing left after normalising
    ({"compare": "numeric"}, "1,234.0", "1234", True),  # commas, trailing zeros
    ({"compare": "numeric"}, "$5$.", "5", True),  # dollars and a final period
    ({"compare": "numeric"}, "1.5e3", "1500", True),  # exponent
    ({"compare": "numeric"}, "1000.0001", "1000", True),  # within the default rel 1e-6
    ({"compare": "numeric"}, "1000.01", "1000", False),  # outside it
    ({"compare": "numeric"}, "25 km", "25", False),  # not a plain number
    ({"compare": "numeric", "rel_tolerance": 0.01}, "101", "100", True),  # relative: 1 %
    ({"compare": "numeric", "rel_tolerance": 0, "abs_tolerance": 0.5}, "0.4", "0", True),  # absolute
    ({"compare": "numeric", "rel_tolerance": 0, "abs_tolerance": 0.5}, "0.6", "0", False),
])
def test_equivalent(options, a, b, same):
    built = domain(**options)
    assert built.equivalent(a, b) is same
    assert built.equivalent(b, a) is same  # symmetric


def test_math_verify_compare_and_close_releases_the_worker():
    built = domain(compare="math_verify", timeout_s=30)
    try:
        assert built.equivalent("1,234", "1234")  # local numeric check, no worker
        assert built.equivalent(r"\frac{1}{2}", "0.5")  # math-verify in its worker
        assert not built.equivalent(r"\frac{1}{3}", "0.5")
        assert any(p.name == "coevolve-mathverify" for p in multiprocessing.active_children())
    finally:
        built.close()
    assert not any(p.name == "coevolve-mathverify" for p in multiprocessing.active_children())


# ---------------------------------------------------------------- seeds and held-out files


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [
        *({"question": f"Capital {i}?", "category": "geo"} for i in range(6)),
        {"question": "1+1?", "answer": "2", "category": "sums"},
    ])
    heldout = write_jsonl(tmp_path / "heldout.jsonl", [
        *({"question": f"Capital of {i}?", "answer": f"C{i}", "category": "geo"} for i in range(5)),
        {"question": "2+2?", "answer": 4, "category": "sums"},  # a number is read as text
    ])
    extra = write_jsonl(tmp_path / "extra.jsonl", [{"question": "3+3?", "answer": "6", "category": "sums"}])
    return {"seed_file": str(seeds), "heldout_files": [str(heldout), str(extra)]}


def test_seed_questions_are_a_seeded_sample_of_the_category(files):
    built = domain(**files)
    first = built.seed_questions("geo", 3, seed=1)
    assert len(first) == 3 and {q.category for q in first} == {"geo"}
    assert first == built.seed_questions("geo", 3, seed=1)  # deterministic
    assert any(built.seed_questions("geo", 3, seed=s) != first for s in range(2, 8))  # seed matters
    assert [q.text for q in built.seed_questions("sums", 5, seed=1)] == ["1+1?"]  # all there is
    assert domain().seed_questions("geo", 3, seed=1) == []  # no seed file


def test_heldout_takes_up_to_per_category_from_every_file(files):
    built = domain(**files)
    everything = built.heldout(per_category=10, seed=0)
    assert [q.category for q in everything] == ["geo"] * 5 + ["sums"] * 2
    assert {q.answer for q in everything if q.category == "sums"} == {"4", "6"}
    assert all(q.label_source == "heldout" for q in everything)
    few = built.heldout(per_category=2, seed=0)
    assert [q.category for q in few] == ["geo", "geo", "sums", "sums"]
    assert few == built.heldout(per_category=2, seed=0)  # deterministic
    assert any(built.heldout(per_category=2, seed=s) != few for s in range(1, 8))
    assert domain().heldout(per_category=5, seed=0) == []  # no held-out files


def test_a_single_category_is_the_default_category_of_rows(tmp_path):
    seeds = write_jsonl(tmp_path / "s.jsonl", [{"question": "Capital of Peru?"}])
    built = build_domain("generic", {"categories": {"geo": "Ask."}, "seed_file": str(seeds)})
    assert [q.category for q in built.seed_questions("geo", 2, 0)] == ["geo"]


# ---------------------------------------------------------------- inside a recipe


def recipe_file(folder: Path, options: dict[str, Any], base: str = "arithmetic-cpu.yaml") -> Path:
    """A recipe in `folder` deriving from the shipped `base` with the generic domain."""
    path = folder / "child.yaml"
    body = {"base": str(RECIPES_DIR / base), "name": "child",
            "domain": {"name": "generic", "options": options},
            "challenger": {"seeds_per_prompt": 0}}  # no seed_file: nothing to show
    path.write_text(json.dumps(body))  # JSON is YAML
    return path


def test_recipe_drops_the_base_domains_options_when_the_domain_changes(tmp_path):
    # arithmetic-cpu.yaml sets domain.options.require_tags, which generic would refuse
    recipe = load_recipe(recipe_file(tmp_path, {"categories": CATEGORIES}))
    assert recipe.domain.name == "generic"
    assert recipe.domain.options == {"categories": CATEGORIES}
    # the same domain keeps merging options from its base
    same = load_recipe(RECIPES_DIR / "arithmetic-cpu.yaml", ["domain.options.max_terms=3"])
    assert same.domain.options == {"require_tags": False, "solver_template": "{question} Be brief.",
                                   "challenger_prompt": "partial", "max_terms": 3}


def test_a_command_line_domain_switch_drops_the_files_options():
    recipe = load_recipe(RECIPES_DIR / "arithmetic-cpu.yaml",
                         ["domain.name=generic", "domain.options.categories.geo=Ask.", "challenger.seeds_per_prompt=0"])
    assert recipe.domain.options == {"categories": {"geo": "Ask."}}


def test_recipe_resolves_paths_against_the_recipe_folder(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "held.jsonl", [{"question": "q?", "answer": "a", "category": "geo"}])
    path = recipe_file(tmp_path, {"categories": CATEGORIES, "heldout_files": ["data/held.jsonl"]})
    monkeypatch.chdir(Path(__file__).parent)  # anywhere but the recipe's folder
    recipe = load_recipe(path)
    assert recipe.domain.options["heldout_files"] == [str(tmp_path / "data" / "held.jsonl")]
    # on the command line a relative path is relative to the current directory
    with pytest.raises(RecipeError, match=r"command line: domain.options.heldout_files\[0\].*no such file"):
        load_recipe(path, ["domain.options.heldout_files=[data/held.jsonl]"])


@pytest.mark.parametrize("options, overrides, source, key", [
    ({"categories": CATEGORIES, "compare": "fuzzy"}, [], "child.yaml", "compare"),  # set in the file
    ({"categories": CATEGORIES}, ["domain.options.answer_format=json"], "command line", "answer_format"),
    ({"categories": {"geo": ""}}, [], "child.yaml", "categories.geo"),  # nested key
])
def test_bad_option_fails_at_load_naming_the_source_and_key(tmp_path, options, overrides, source, key):
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe_file(tmp_path, options), overrides)
    message = str(caught.value)
    assert re.match(rf"\S*{re.escape(source)}: domain.options.{re.escape(key)} = ", message), message


def test_a_child_recipe_can_unset_an_option_of_its_base_with_null():
    recipe = load_recipe(RECIPES_DIR / "capitals-cpu.yaml",
                         ["domain.options.answer_format=boxed", "domain.options.answer_regex=null"])
    built = build_domain(recipe.domain.name, recipe.domain.options)
    assert built.extract_answer(r"\boxed{Lima}") == "Lima"


def test_the_worked_example_recipe_loads_with_its_files():
    recipe = load_recipe(RECIPES_DIR / "capitals-cpu.yaml")
    built = build_domain(recipe.domain.name, recipe.domain.options)
    assert built.categories() == ("europe", "asia", "africa", "americas")
    heldout = built.heldout(recipe.eval.per_category, recipe.eval.seed)
    assert len(heldout) == 32 and all(q.answer for q in heldout)
    # what SmolLM2-135M-Instruct writes (measured) is read as intended
    assert built.extract_answer("The capital of Malaysia is Kuala Lumpur.") == "Kuala Lumpur"
    assert built.parse_question("Sure. Which city is the capital of Peru?\nLima.", "americas") == \
        "Which city is the capital of Peru?"
    assert len(built.seed_questions("asia", recipe.challenger.seeds_per_prompt, 0)) == 3
