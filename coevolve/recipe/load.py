"""Load a recipe: YAML files that inherit from a base, plus command-line overrides.

A recipe names a `base:` recipe and lists only what it changes, so the published R-Zero
setting lives in one file and every variant is short. Files are merged one at a time onto
`OmegaConf.structured(Recipe)` (EasyR1's flow), then the command line; `OmegaConf.to_object`
gives a typed `Recipe`. Every check that can be made before training is made before it starts
(types: `typecheck.py`; ranges, the domain and its categories: `rules.py`), and every error is
a `RecipeError` naming the file (or "command line"), the dotted key, the value and what is
allowed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    InterpolationKeyError,
    InterpolationResolutionError,
    OmegaConfBaseException,
    ValidationError,
)

from coevolve.recipe.rules import check_domain, check_rules
from coevolve.recipe.schema import Recipe
from coevolve.recipe.sources import COMMAND_LINE, RecipeError, Sources, lookup, raw
from coevolve.recipe.typecheck import check_shape, check_types, describe_key

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
DEFAULT_RECIPE = RECIPES_DIR / "arithmetic-cpu.yaml"
__all__ = ["DEFAULT_RECIPE", "RECIPES_DIR", "RecipeError", "load_recipe", "recipe_to_yaml"]


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """The typed `Recipe` of the YAML at `path` (with its bases) and `key=value` overrides.

    Raises RecipeError naming the file, the key, the bad value and what is allowed.
    """
    sources = Sources()
    config = OmegaConf.structured(Recipe)
    layers = _read_chain(Path(path))
    if overrides:
        layers.append((COMMAND_LINE, _parse_overrides(overrides)))
    for source, layer in layers:
        check_shape(raw(layer), Recipe, source, prefix="")
        config = _forget_other_domain(config, layer, sources)
        config = _merge(config, layer, source)
        sources.add(source, layer)
    recipe = _to_recipe(config, sources)
    check_types(recipe, sources, prefix="")
    check_rules(recipe, sources)
    check_domain(recipe, sources)
    return recipe


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML, to save next to a run; `load_recipe` reads it back."""
    return OmegaConf.to_yaml(OmegaConf.structured(recipe))


# --- reading files -------------------------------------------------------------------------


def _read_chain(path: Path) -> list[tuple[str, DictConfig]]:
    """The files of `path`'s base chain, root base first, each without its `base` key."""
    chain: list[tuple[str, DictConfig]] = []
    seen: list[Path] = []
    named_by: str | None = None
    current: Path | None = path
    while current is not None:
        if current.resolve() in seen:
            cycle = " -> ".join(str(p) for p in [*seen, current.resolve()])
            raise RecipeError(f"{named_by}: base = {str(current)!r} makes a cycle: {cycle}")
        seen.append(current.resolve())
        layer = _read_yaml(current, named_by)
        chain.append((str(current), layer))
        named_by = str(current)
        current = _pop_base(layer, current)
    return chain[::-1]


def _read_yaml(path: Path, named_by: str | None) -> DictConfig:
    """One recipe file as a DictConfig; RecipeError if missing, malformed or not a mapping."""
    if not path.is_file():
        if named_by is None:
            raise RecipeError(f"{path}: recipe file does not exist")
        raise RecipeError(
            f"{named_by}: base = {str(path)!r}: recipe file does not exist (a base path is "
            "relative to the folder of the file that names it)"
        )
    text = path.read_text()
    try:
        node = yaml.compose(text)  # the node kind, before OmegaConf turns a scalar into a key
        config = OmegaConf.load(path)
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: YAML syntax error: {error}") from error
    if node is not None and not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else f"the scalar {node.value!r}"
        raise RecipeError(f"{path}: the top level must be a mapping of recipe keys, not {kind}")
    assert isinstance(config, DictConfig)
    return config


def _pop_base(layer: DictConfig, path: Path) -> Path | None:
    """Remove `base` from `layer`; the path it names, relative to `path`'s folder."""
    if "base" not in layer:
        return None
    base = OmegaConf.to_container(layer, resolve=False)["base"]
    del layer["base"]
    if not isinstance(base, str) or not base:
        raise RecipeError(f"{path}: base = {base!r}: expected the path of a recipe YAML file")
    return Path(os.path.normpath(path.parent / base))


def _parse_overrides(overrides: Sequence[str]) -> DictConfig:
    """`key=value` strings as one DictConfig; values are parsed as YAML, like in a file."""
    layers = []
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or not key.strip() or key != key.strip():
            raise RecipeError(
                f"{COMMAND_LINE}: malformed override {override!r}; expected key=value "
                "with a dotted key, e.g. solver.steps=3"
            )
        if key == "base":
            raise RecipeError(f"{COMMAND_LINE}: {override!r}: base can only be set in a file")
        try:
            layers.append(OmegaConf.from_dotlist([override]))
        except (yaml.YAMLError, OmegaConfBaseException) as error:
            raise RecipeError(f"{COMMAND_LINE}: override {override!r}: {error}") from error
    merged = OmegaConf.merge(*layers)
    assert isinstance(merged, DictConfig)
    return merged


# --- merging, with the source of every key ------------------------------------------------


def _forget_other_domain(config: DictConfig, layer: DictConfig, sources: Sources) -> DictConfig:
    """`config` without its domain options and categories (trained and evaluated) if `layer`
    names another domain.

    Options and categories belong to the domain they were written for (arithmetic's
    `require_tags` means nothing to `generic`), so a recipe that switches `domain.name`
    starts from none rather than inheriting its base's.
    """
    domain = raw(layer).get("domain")
    if not isinstance(domain, dict) or "name" not in domain:
        return config
    if domain["name"] == raw(config)["domain"]["name"]:
        return config
    config.domain.options = {}
    config.domain.categories = []
    config.eval.categories = []
    for key in ("domain.options", "domain.categories", "eval.categories"):
        sources.forget(key)
    return config


def _merge(config: DictConfig, layer: DictConfig, source: str) -> DictConfig:
    """`layer` merged onto `config`; a value OmegaConf cannot convert is a RecipeError."""
    try:
        merged = OmegaConf.merge(config, layer)
    except OmegaConfBaseException as error:
        key, value = _failing_key(error, layer)
        raise RecipeError(f"{source}: {key}{value}: wrong type; expected {describe_key(key)} "
                          f"({error.msg.splitlines()[0]})") from error
    assert isinstance(merged, DictConfig)
    return merged


def _to_recipe(config: DictConfig, sources: Sources) -> Recipe:
    """The typed Recipe; interpolations are resolved here, so their errors surface here."""
    try:
        recipe = OmegaConf.to_object(config)
    except OmegaConfBaseException as error:
        key, value = _failing_key(error, config)
        raise RecipeError(f"{sources.of(key)}: {key}{value}: {error.msg.splitlines()[0]}; "
                          f"allowed: {_allowed_after(error, key)}") from error
    assert isinstance(recipe, Recipe)
    return recipe


def _failing_key(error: OmegaConfBaseException, config: DictConfig) -> tuple[str, str]:
    """The key an OmegaConf error names ("<top level>" if none) and " = <its raw value in
    `config`>" ("" at the top level), as both RecipeErrors of this module show them."""
    if not error.full_key:
        return "<top level>", ""
    return error.full_key, f" = {lookup(raw(config), error.full_key)!r}"


def _allowed_after(error: OmegaConfBaseException, key: str) -> str:
    """What `key` may hold, given the error raised while resolving it."""
    if isinstance(error, InterpolationKeyError):
        return "an interpolation ${...} that names an existing key, e.g. ${name}"
    if isinstance(error, InterpolationResolutionError) and not isinstance(error, ValidationError):
        return "${key} or a registered resolver, e.g. ${oc.env:VAR}"
    return describe_key(key)
