"""Where each recipe value came from (a file, the command line, the schema), to name it in
errors, and the one error type of recipe loading."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

COMMAND_LINE = "command line"
SCHEMA_DEFAULT = "schema default (coevolve/recipe/schema.py)"


class RecipeError(ValueError):
    """A recipe that cannot be loaded; the message names the file, the key and the fix."""


class Sources:
    """Which layer (a file or the command line) last set each dotted key, to name it in errors."""

    def __init__(self) -> None:
        self._layers: list[tuple[str, set[str]]] = []

    def add(self, source: str, layer: DictConfig) -> None:
        self._layers.append((source, set(leaf_keys(raw(layer), prefix=""))))

    def forget(self, key: str) -> None:
        """Forget that earlier layers set `key` or anything below or above it."""
        self._layers = [(source, {k for k in set_keys if not related(k, key)})
                        for source, set_keys in self._layers]

    def of(self, *keys: str) -> str:
        """The last layer that set any of `keys` (or a key above or below one of them)."""
        for source, set_keys in reversed(self._layers):
            if any(related(key, other) for key in keys for other in set_keys):
                return source
        return SCHEMA_DEFAULT


def raw(config: DictConfig) -> dict[str, Any]:
    """`config` as plain Python, interpolations left as written."""
    container = OmegaConf.to_container(config, resolve=False)
    assert isinstance(container, dict)
    return container


def leaf_keys(node: Any, prefix: str) -> list[str]:
    """Dotted keys of the leaves of a nested dict; lists and empty dicts count as leaves."""
    if not isinstance(node, dict) or not node:
        return [prefix]
    keys: list[str] = []
    for key, value in node.items():
        keys.extend(leaf_keys(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}"))
    return keys


def related(key: str, other: str) -> bool:
    """Whether setting `other` sets `key`: the same key, one above it, or one below it."""
    return any(
        a == b or a.startswith(b + ".") or a.startswith(b + "[")
        for a, b in ((key, other), (other, key))
    )


def lookup(node: Any, key: str) -> Any:
    """The value at dotted `key` (list indices as `[i]`) in nested dicts, lists or dataclasses."""
    for part in key.replace("[", ".").replace("]", "").split("."):
        if isinstance(node, dict):
            node = node[part]
        elif isinstance(node, list):
            node = node[int(part)]
        else:
            node = getattr(node, part)
    return node
