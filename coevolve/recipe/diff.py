"""May this recipe resume that run? Compare the recipes value by value, not as text.

A run directory keeps the resolved recipe it was started with (`recipe.yaml`). A newer
coevolve may have added schema keys; a run started before them must still resume, as long
as the new keys sit at their defaults (the run then behaves as it did). Any value that
differs, including a new key set away from its default or a key the schema no longer has,
is refused with the list of keys, the old and the new value.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from coevolve.recipe.schema import Recipe

ABSENT = "<absent>"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; lists and scalars are leaves (an empty mapping has none)."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _as_tree(recipe: Recipe) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(recipe), resolve=False)


def recipe_differences(saved_yaml: str, current: Recipe) -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) of every key on which the two recipes disagree.

    A key the saved recipe lacks counts as its schema default there.
    """
    saved = _flatten(OmegaConf.to_container(OmegaConf.create(saved_yaml), resolve=False))
    now = _flatten(_as_tree(current))
    defaults = _flatten(_as_tree(Recipe()))
    differences = []
    for key in sorted(set(saved) | set(now)):
        old = saved.get(key, defaults.get(key, ABSENT))
        new = now.get(key, ABSENT)
        if old != new:
            differences.append((key, old, new))
    return differences


def describe(differences: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in differences)
