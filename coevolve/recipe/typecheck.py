"""The recipe's type checker: every key known to the schema, every value of its type, with
messages that name the file, the key, the value and what is allowed."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from coevolve.recipe.schema import Recipe
from coevolve.recipe.sources import RecipeError, Sources


def check_shape(node: dict[str, Any], schema: type, source: str, prefix: str) -> None:
    """Unknown keys, and a mapping, list or scalar where the schema wants another kind."""
    hints = typing.get_type_hints(schema)
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            raise RecipeError(_unknown_key(source, dotted, name=str(key), valid=list(hints), prefix=prefix))
        hint = hints[key]
        if isinstance(value, str) and value.startswith("${"):
            continue  # an interpolation: checked once resolved
        if _kind(hint) not in ("any", _kind_of(value)):
            raise RecipeError(
                f"{source}: {dotted} = {value!r}: wrong type; expected {_describe(hint)}"
            )
        if is_dataclass(hint):
            check_shape(value, hint, source, f"{dotted}.")


def _unknown_key(source: str, key: str, *, name: str, valid: list[str], prefix: str) -> str:
    level = f"under {prefix[:-1]!r}" if prefix else "at the top level"
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
    return f"{source}: unknown key {key!r}; valid keys {level}: {', '.join(valid)}{hint}"


def _kind(hint: Any) -> str:
    """'mapping', 'list', 'scalar' or 'any': the YAML node kind a schema type accepts."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return "any"
    if is_dataclass(hint) or hint is dict or origin is dict:
        return "mapping"
    if hint is list or origin is list:
        return "list"
    return "scalar"


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    return "list" if isinstance(value, list) else "scalar"


def _describe(hint: Any) -> str:
    """A schema type in words, for error messages."""
    if is_dataclass(hint):
        return f"a mapping with keys {', '.join(f.name for f in fields(hint))}"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is list:
        return f"a list (each item {_describe(args[0]) if args else 'any value'})"
    if hint is dict or origin is dict:
        return "a mapping"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    names.update({type(None): "null", Any: "any value"})
    return names.get(hint, str(hint))


def describe_key(key: str) -> str:
    """The schema type of dotted `key` in words."""
    schema: Any = Recipe
    for part in key.split("[")[0].split("."):
        if not is_dataclass(schema):
            return "a value the schema accepts"
        schema = typing.get_type_hints(schema).get(part)
    return _describe(schema)


def check_types(obj: Any, sources: Sources, prefix: str) -> None:
    """Every typed value after conversion, for the few cases OmegaConf lets through.

    OmegaConf accepts a mapping inside a `list[str]` and an int in an `Optional[str]`.
    """
    hints = typing.get_type_hints(type(obj))
    for field in fields(obj):
        key, value = f"{prefix}{field.name}", getattr(obj, field.name)
        if is_dataclass(value):
            check_types(value, sources, f"{key}.")
        elif not _conforms(value, hints[field.name]):
            raise RecipeError(
                f"{sources.of(key)}: {key} = {value!r}: wrong type; "
                f"expected {_describe(hints[field.name])}"
            )


def _conforms(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)
