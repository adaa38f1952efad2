"""docs/recipes.md follows the code: every recipe key and every generic-domain option is
listed there with the default the code has, and nothing listed there is gone from the code."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from coevolve.domains.generic import GenericConfig
from coevolve.recipe.schema import Recipe

DOC = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
ROW = re.compile(r"^\| `([^`]+)` \| (.*?) \|", re.MULTILINE)


def rendered(value: Any) -> str:
    """A default as the doc writes it: YAML flow style in backticks."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return f"`{text.removesuffix('...').strip()}`"


def schema_defaults(schema: type = Recipe, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, default) of every leaf of the recipe schema."""
    instance = schema()
    for field in dataclasses.fields(schema):
        value = getattr(instance, field.name)
        if dataclasses.is_dataclass(value):
            yield from schema_defaults(type(value), f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", value


def documented() -> dict[str, str]:
    """Key -> default cell of every table row of the doc (generic options and recipe keys)."""
    rows = ROW.findall(DOC.read_text())
    return {key: default.strip() for key, default in rows}


SCHEMA = dict(schema_defaults())
OPTIONS = {field.name: field.default for field in dataclasses.fields(GenericConfig)}


@pytest.mark.parametrize("key", sorted(SCHEMA))
def test_every_recipe_key_is_documented_with_its_default(key):
    rows = documented()
    assert key in rows, f"docs/recipes.md lists no row for recipe key {key}"
    assert rows[key] == rendered(SCHEMA[key]), f"{key}: doc says {rows[key]}, schema {rendered(SCHEMA[key])}"


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_every_generic_option_is_documented_with_its_default(option):
    rows = documented()
    assert option in rows, f"docs/recipes.md lists no row for generic option {option}"
    default = OPTIONS[option]
    if default is dataclasses.MISSING:
        assert rows[option] == "(required)"
    elif isinstance(default, tuple) and len(default) == 1:  # a one-item list is written alone
        assert rows[option] == rendered(default[0])
    else:
        assert rows[option] == rendered(default)


def test_no_documented_key_is_gone_from_the_code():
    stale = sorted(set(documented()) - set(SCHEMA) - set(OPTIONS))
    assert not stale, f"docs/recipes.md documents keys the code no longer has: {stale}"


def code_blocks(language: str, section: str) -> list[str]:
    """The ```language blocks of the doc section whose heading starts with `section`."""
    text = DOC.read_text().split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_the_module_class_example_loads_as_written(tmp_path, monkeypatch):
    from coevolve.recipe.load import RECIPES_DIR, RecipeError, load_recipe

    (source,), (recipe_text,) = code_blocks("python", "A domain with code"), code_blocks("yaml", "A domain with code")
    (tmp_path / "mydomains").mkdir()
    (tmp_path / "mydomains" / "palindromes.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe_path = tmp_path / "palindromes.yaml"
    recipe_path.write_text(recipe_text.replace("base: base.yaml", f"base: {RECIPES_DIR / 'base.yaml'}"))
    recipe = load_recipe(recipe_path)
    assert recipe.domain.name == "mydomains.palindromes:Palindromes"
    assert recipe.domain.options == {"max_letters": 8}
    with pytest.raises(RecipeError, match=r"command line: domain.options.max_letters = 2: too small"):
        load_recipe(recipe_path, ["domain.options.max_letters=2"])
