"""Recipes: the YAML that describes a run, loaded, type-checked and checked against the rules.

`load_recipe` is the entry point; `schema.py` holds the typed dataclasses with every default,
`load.py` files, inheritance and overrides, `typecheck.py` and `rules.py` the checks,
`sources.py` where each value came from, `diff.py` what changed between two recipes.
"""

from coevolve.recipe.load import DEFAULT_RECIPE, RECIPES_DIR, load_recipe
from coevolve.recipe.sources import RecipeError

__all__ = ["DEFAULT_RECIPE", "RECIPES_DIR", "RecipeError", "load_recipe"]
