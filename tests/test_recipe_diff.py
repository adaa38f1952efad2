"""Resuming across coevolve versions: recipes compared value by value, not as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from coevolve.recipe.diff import ABSENT, recipe_differences
from coevolve.recipe.load import DEFAULT_RECIPE, RecipeError, load_recipe, recipe_to_yaml
from coevolve.run.loop import CoEvolution
from helpers.fake_backend import FakeBackend


def older_version(text: str, *keys: str) -> str:
    """The YAML an older coevolve would have saved: without the given `section.key` lines."""
    lines = text.splitlines()
    for dotted in keys:
        section, key = dotted.split(".")
        start = lines.index(f"{section}:")
        lines = [line for i, line in enumerate(lines)
                 if not (i > start and line.startswith(f"  {key}:") and
                         all(not lines[j][:1].strip() for j in range(start + 1, i + 1)))]
    return "\n".join(lines) + "\n"


def test_a_new_key_at_its_default_is_accepted():
    recipe = load_recipe(DEFAULT_RECIPE)
    saved = older_version(recipe_to_yaml(recipe), "curriculum.initial_q", "dataset.min_words")
    assert "initial_q" not in saved and "min_words" not in saved
    assert recipe_differences(saved, recipe) == []


def test_a_new_key_away_from_its_default_and_a_changed_value_are_listed():
    recipe = load_recipe(DEFAULT_RECIPE)  # sets dataset.keep_seed_copies: true (default false)
    saved = older_version(recipe_to_yaml(load_recipe(DEFAULT_RECIPE, ["solver.lr=0.5"])),
                          "dataset.keep_seed_copies")
    assert recipe_differences(saved, recipe) == [("dataset.keep_seed_copies", False, True),
                                                 ("solver.lr", 0.5, 1e-5)]


def test_a_key_the_schema_no_longer_has_is_a_difference():
    recipe = load_recipe(DEFAULT_RECIPE)
    saved = recipe_to_yaml(recipe).replace("vote:\n", "vote:\n  retired_option: 3\n")
    assert recipe_differences(saved, recipe) == [("vote.retired_option", 3, ABSENT)]


def test_an_upgraded_run_directory_opens_and_is_rewritten_with_the_new_keys(tmp_path: Path):
    recipe = load_recipe(DEFAULT_RECIPE, [f"run_dir={tmp_path}"])
    old = older_version(recipe_to_yaml(recipe), "curriculum.initial_q", "resources.cpu_engine")
    assert "initial_q" not in old and "cpu_engine" not in old
    (tmp_path / "recipe.yaml").write_text(old)
    run = CoEvolution(recipe, FakeBackend())
    state = run._open_run_dir("base-model")
    assert state.completed == []
    assert (tmp_path / "recipe.yaml").read_text() == recipe_to_yaml(recipe)

    changed = load_recipe(DEFAULT_RECIPE, [f"run_dir={tmp_path}", "vote.samples=9"])
    with pytest.raises(RecipeError, match=r"vote.samples: 6 -> 9"):
        CoEvolution(changed, FakeBackend())._open_run_dir("base-model")
