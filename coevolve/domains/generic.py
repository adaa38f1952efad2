"""A domain configured entirely by a recipe's `domain.options`: a new task without Python.

Most tasks differ only in what the challenger is asked to write, how the solver is prompted and
how an answer is cut out and compared; here those are options, so a new domain is a YAML file
(docs/recipes.md, recipes/capitals-cpu.yaml). Seed questions and held-out sets with true answers
come from JSONL files (`coevolve.domains.files`). Every option is checked when the recipe is
loaded: a bad one is a `DomainOptionError` naming `domain.options.<key>`, before any model loads.
Relative paths in `seed_file` and `heldout_files` are resolved against the recipe's folder
(`Domain.path_options`).
"""

from __future__ import annotations

import difflib
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import regex

from coevolve.domains import register_domain
from coevolve.domains.answers import (
    MAX_NUMBER_CHARS,
    bounded_question_block,
    canonical_number,
    clean_answer,
    last_boxed,
    last_number,
    last_tagged,
    question_request,
    strip_end,
)
from coevolve.domains.base import Domain, DomainOptionError, solver_template
from coevolve.domains.files import QuestionFileError, load_questions
from coevolve.records import Question

T = TypeVar("T")
QUESTION_FORMATS = ("tag", "whole", "regex")
# A recipe's question_regex and answer_regex read at most this much of a completion, and give
# up (a miss) after this long: a backtracking pattern must not hang the driver.
MAX_REGEX_CHARS = 20_000
REGEX_TIMEOUT_S = 0.05
ANSWER_FORMATS = ("boxed", "tag", "regex", "last_number")
COMPARES = ("exact", "normalized", "numeric", "math_verify")
# Category names become TensorBoard tags (eval/accuracy/<category>): no slashes or spaces.
_CATEGORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# `\d+(?:\.\d*)?`, not `\d+\.?\d*`: the latter splits a digit run every way (quadratic)
_EXPONENT_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+")
_TRAILING_PUNCTUATION = ".,;:!?"
FILE_FORMAT = "a JSONL file, one {\"question\", \"answer\", \"category\"} object a line"


@dataclass(frozen=True)
class GenericConfig:
    """The parsed, validated options of a generic domain (defaults are the options' defaults)."""

    categories: tuple[tuple[str, str], ...]  # (name, the challenger's instruction), in order
    solver_template: str | None = None  # None: Domain.solver_prompt (step by step, \boxed{})
    question_format: str = "tag"
    question_regex: regex.Pattern[str] | None = None  # group 1 of the first match is the question
    max_question_chars: int = 2000
    answer_format: tuple[str, ...] = ("boxed",)  # tried in this order; the first hit counts
    answer_tag: str = "answer"
    answer_regex: regex.Pattern[str] | None = None  # group 1 of the last match is the answer
    compare: str = "normalized"
    rel_tolerance: float = 1e-6  # numeric: |a - b| <= max(rel * max(|a|, |b|), abs)
    abs_tolerance: float = 0.0
    timeout_s: float = 5.0  # math_verify: a slower check counts as a non-match
    seed_file: str | None = None
    heldout_files: tuple[str, ...] = ()


# --- option parsers: (key, raw value) -> parsed value, or DomainOptionError ---------------


def _categories(key: str, value: Any) -> tuple[tuple[str, str], ...]:
    allowed = "a non-empty mapping of category name -> the challenger's instruction"
    if not isinstance(value, Mapping) or not value:
        raise DomainOptionError(key, value, "not a non-empty mapping", allowed)
    for name, instruction in value.items():
        if not isinstance(name, str) or not _CATEGORY_NAME.fullmatch(name):
            raise DomainOptionError(f"{key}.{name}", name, "bad category name",
                                    "letters, digits, '_', '.' and '-' (no spaces or slashes)")
        if not isinstance(instruction, str) or not instruction.strip():
            raise DomainOptionError(f"{key}.{name}", instruction, "not an instruction",
                                    "a non-empty string telling the challenger what to write")
    return tuple((name, instruction.strip()) for name, instruction in value.items())


def _choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        if value not in choices:
            raise DomainOptionError(key, value, "not a known choice", f"one of {', '.join(choices)}")
        return value
    return parse


def _answer_formats(key: str, value: Any) -> tuple[str, ...]:
    """One extraction method, or a list tried in order (an explicit, documented fallback)."""
    formats = [value] if isinstance(value, str) else value
    allowed = f"one of {', '.join(ANSWER_FORMATS)}, or a non-empty list of them without repeats"
    if not isinstance(formats, list) or not formats or len(set(map(str, formats))) != len(formats):
        raise DomainOptionError(key, value, "not a format or a list of formats", allowed)
    for index, item in enumerate(formats):
        if item not in ANSWER_FORMATS:
            where = key if isinstance(value, str) else f"{key}[{index}]"
            raise DomainOptionError(where, item, "not a known answer format", allowed)
    return tuple(formats)


def _regex(key: str, value: Any) -> regex.Pattern[str]:
    """A recipe's pattern, compiled by the `regex` package: its searches take a time limit."""
    allowed = "a Python regular expression with at least one capturing group, e.g. 'is (\\w+)'"
    if not isinstance(value, str) or not value:
        raise DomainOptionError(key, value, "not a regular expression", allowed)
    try:
        pattern = regex.compile(value, flags=regex.VERSION0)  # the `re` module's syntax
    except regex.error as error:
        raise DomainOptionError(key, value, f"does not compile ({error})", allowed) from None
    if pattern.groups < 1:
        raise DomainOptionError(key, value, "has no capturing group", allowed)
    return pattern


def _tag_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _TAG_NAME.fullmatch(value):
        raise DomainOptionError(key, value, "not a tag name",
                                "letters, digits, '_' and '-', starting with a letter, e.g. answer")
    return value


def _number(low: float, strict: bool, integer: bool = False) -> Callable[[str, Any], Any]:
    kind = "an integer" if integer else "a number"
    allowed = f"{kind} {'>' if strict else '>='} {low}"

    def parse(key: str, value: Any) -> Any:
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not math.isfinite(value):
            raise DomainOptionError(key, value, "wrong type", allowed)
        if value < low or (strict and value == low):
            raise DomainOptionError(key, value, "out of range", allowed)
        return value if integer else float(value)
    return parse


def _path(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DomainOptionError(key, value, "not a file path", f"the path of {FILE_FORMAT}")
    return value


def _paths(key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise DomainOptionError(key, value, "not a list of file paths", f"a list of paths of {FILE_FORMAT}s")
    return tuple(_path(f"{key}[{index}]", item) for index, item in enumerate(items))


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "categories": _categories,
    "solver_template": solver_template,
    "question_format": _choice(QUESTION_FORMATS),
    "question_regex": _regex,
    "max_question_chars": _number(1, strict=False, integer=True),
    "answer_format": _answer_formats,
    "answer_tag": _tag_name,
    "answer_regex": _regex,
    "compare": _choice(COMPARES),
    "rel_tolerance": _number(0, strict=False),
    "abs_tolerance": _number(0, strict=False),
    "timeout_s": _number(0, strict=True),
    "seed_file": _path,
    "heldout_files": _paths,
}
assert set(_PARSERS) == {field.name for field in fields(GenericConfig)}


def parse_options(options: Mapping[str, Any]) -> GenericConfig:
    """The validated config of `options`; DomainOptionError names the first bad key.

    A null option is its default, so a child recipe can unset what its base set (a merge
    cannot delete a key).
    """
    for key in options:
        if key not in _PARSERS:
            close = difflib.get_close_matches(str(key), list(_PARSERS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise DomainOptionError(str(key), options[key], f"unknown option{hint}", ", ".join(_PARSERS))
    options = {key: value for key, value in options.items() if value is not None}
    if "categories" not in options:
        raise DomainOptionError("categories", None, "required",
                                "a non-empty mapping of category name -> the challenger's instruction")
    config = GenericConfig(**{key: _PARSERS[key](key, value) for key, value in options.items()})
    _check_consistent(config, options)
    return config


def _check_consistent(config: GenericConfig, given: Mapping[str, Any]) -> None:
    """A format that needs a regex has one, and no option is set where it has no effect."""
    if config.question_format == "regex" and config.question_regex is None:
        raise DomainOptionError("question_regex", None, "required by question_format = regex",
                                "a regular expression whose group 1 is the question")
    if config.answer_regex is None and "regex" in config.answer_format:
        raise DomainOptionError("answer_regex", None, "required by answer_format regex",
                                "a regular expression whose group 1 is the answer")
    unused = {
        "question_regex": config.question_format != "regex",
        "answer_regex": "regex" not in config.answer_format,
        "answer_tag": "tag" not in config.answer_format,
        "rel_tolerance": config.compare != "numeric",
        "abs_tolerance": config.compare != "numeric",
        "timeout_s": config.compare != "math_verify",
    }
    for key, has_no_effect in unused.items():
        if key in given and has_no_effect:
            raise DomainOptionError(key, given[key], "has no effect with the "
                                    "question_format, answer_format and compare chosen",
                                    "remove it, or choose the format or comparison that uses it")


# --- the domain ---------------------------------------------------------------------------


@register_domain("generic")
class GenericDomain(Domain):
    """A domain whose prompts, extraction and comparison are all recipe options.

    See `GenericConfig` for the options and their defaults, and docs/recipes.md for what
    each one does.
    """

    path_options = ("seed_file", "heldout_files")

    def __init__(self, **options: Any) -> None:
        self.config = parse_options(options)
        self._instructions = dict(self.config.categories)
        tag = self.config.answer_tag
        self._answer_tags = (re.compile(f"<{tag}>", re.IGNORECASE), re.compile(f"</{tag}>", re.IGNORECASE))
        self._seeds = self._load("seed_file", (self.config.seed_file,) if self.config.seed_file else (),
                                 require_answer=False)
        self._heldout = self._load("heldout_files", self.config.heldout_files, require_answer=True)
        self._math = None
        self.regex_timeouts = 0  # recipe-pattern searches given up (each one a miss)
        if self.config.compare == "math_verify":
            from coevolve.domains.math import MathDomain

            # Its equivalence (local checks, then math-verify in a killable worker started on
            # first use) does not depend on categories.
            self._math = MathDomain(categories=("any",), timeout_s=self.config.timeout_s)

    def categories(self) -> tuple[str, ...]:
        return tuple(self._instructions)

    def challenger_prompt(self, category: str, seeds: Sequence[Question] = ()) -> str:
        """The category's instruction, the seed examples, then how to reply.

        `tag` asks for <question> tags; `whole` for the question only; `regex` adds nothing,
        so the instruction itself must ask for the shape the regex reads.
        """
        self.check_category(category)
        instruction = self._instructions[category]
        examples = [seed.text for seed in seeds]
        if self.config.question_format == "tag":
            return question_request([instruction], examples, "question")
        lines = [instruction]
        if examples:
            lines.extend(["Examples:", *examples])
        if self.config.question_format == "whole":
            lines.append("Reply with the question only, without its answer.")
        return "\n".join(lines)

    def parse_question(self, completion: str, category: str) -> str | None:
        """The question cut out by `question_format`, or None if absent or too long."""
        self.check_category(category)
        limit = self.config.max_question_chars
        if self.config.question_format == "tag":
            return bounded_question_block(completion, limit)
        if self.config.question_format == "whole":
            text: str | None = completion.strip()
        else:
            assert self.config.question_regex is not None
            match = self._bounded(lambda text: self.config.question_regex.search(text, timeout=REGEX_TIMEOUT_S),
                                  completion)
            text = (match.group(1) or "").strip() if match else None
        return text if text and len(text) <= limit else None

    def solver_prompt(self, question: Question) -> str:
        if self.config.solver_template is None:
            return super().solver_prompt(question)
        return self.config.solver_template.replace("{question}", question.text)

    def extract_answer(self, completion: str) -> str | None:
        """The stripped answer from the first `answer_format` that finds a non-empty one."""
        for answer_format in self.config.answer_format:
            found = self._extract(answer_format, completion)
            if found is not None and found.strip():
                return found.strip()
        return None

    def equivalent(self, a: str, b: str) -> bool:
        """Whether `a` and `b` match under `compare`; an empty answer matches nothing."""
        compare = self.config.compare
        if compare == "exact":
            return bool(a.strip()) and a.strip() == b.strip()
        if compare == "normalized":
            return bool(normalized(a)) and normalized(a) == normalized(b)
        if compare == "numeric":
            x, y = as_number(a), as_number(b)
            return x is not None and y is not None and math.isclose(
                x, y, rel_tol=self.config.rel_tolerance, abs_tol=self.config.abs_tolerance)
        assert self._math is not None
        return self._math.equivalent(a, b)

    def seed_questions(self, category: str, n: int, seed: int) -> list[Question]:
        """Up to `n` of the seed file's questions of `category`, a sample fixed by `seed`."""
        self.check_category(category)
        pool = [question for question in self._seeds if question.category == category]
        rng = random.Random(f"generic/seed/{seed}/{category}")
        return rng.sample(pool, min(n, len(pool)))

    def heldout(self, per_category: int, seed: int) -> list[Question]:
        """Up to `per_category` held-out questions per category, in file order; the subset
        (when a category has more) is fixed by `seed`."""
        chosen: list[Question] = []
        for category in self.categories():
            pool = [question for question in self._heldout if question.category == category]
            if len(pool) > per_category:
                rng = random.Random(f"generic/heldout/{seed}/{category}")
                pool = [pool[i] for i in sorted(rng.sample(range(len(pool)), per_category))]
            chosen.extend(pool)
        return chosen

    def close(self) -> None:
        """Stop the math-verify worker, if one was started."""
        if self._math is not None:
            self._math.close()

    def _extract(self, answer_format: str, completion: str) -> str | None:
        if answer_format == "boxed":
            return last_boxed(completion)
        if answer_format == "last_number":
            return last_number(completion)
        if answer_format == "tag":
            return last_tagged(completion, *self._answer_tags)
        assert self.config.answer_regex is not None
        matches = self._bounded(lambda text: list(self.config.answer_regex.finditer(text, timeout=REGEX_TIMEOUT_S)),
                                completion)
        return matches[-1].group(1) if matches else None

    def _bounded(self, search: Callable[[str], T], completion: str) -> T | None:
        """A recipe pattern's search on at most MAX_REGEX_CHARS characters, under REGEX_TIMEOUT_S.

        A search that runs out of time is a miss (None), counted in `regex_timeouts`.
        """
        try:
            return search(completion[:MAX_REGEX_CHARS])
        except TimeoutError:
            self.regex_timeouts += 1
            return None

    def _load(self, key: str, paths: Sequence[str], require_answer: bool) -> list[Question]:
        """The questions of `paths`; a file error is a DomainOptionError naming `key`."""
        only = self.categories()[0] if len(self.categories()) == 1 else None
        questions: dict[str, Question] = {}
        for index, path in enumerate(paths):
            where = f"{key}[{index}]" if key == "heldout_files" else key
            try:
                loaded = load_questions(path, categories=self.categories(), default_category=only,
                                        require_answer=require_answer)
            except QuestionFileError as error:
                raise DomainOptionError(where, path, str(error), FILE_FORMAT) from None
            for question in loaded:
                if question.id in questions:
                    raise DomainOptionError(where, path, f"question id {question.id} is also in an "
                                            "earlier file (ids are <file name>:<line>)",
                                            "files with distinct names")
                questions[question.id] = question
        return list(questions.values())


def normalized(answer: str) -> str:
    """`answer` case-folded, whitespace collapsed, without trailing punctuation.

    >>> normalized("  New   Delhi. ")
    'new delhi'
    """
    return strip_end(" ".join(answer.casefold().split()), _TRAILING_PUNCTUATION)


def as_number(answer: str) -> float | None:
    """`answer` as a float if, once `$`, `*` and a final period are removed, it is a number.

    Thousands commas and exponents are accepted ("1,234.5", "1.5e3"); text with anything
    else ("25 km", "1/2") is not a number.

    >>> as_number("$1,234.50$."), as_number("1.5e3"), as_number("25 km")
    (1234.5, 1500.0, None)
    """
    text = clean_answer(answer)
    if len(text) > MAX_NUMBER_CHARS:
        return None
    canonical = canonical_number(text)
    if canonical is not None:
        return float(canonical)
    if _EXPONENT_NUMBER.fullmatch(text):
        value = float(text)
        return value if math.isfinite(value) else None
    return None
