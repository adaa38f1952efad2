"""Procedurally generated reasoning tasks from reasoning-gym, grouped into categories.

reasoning-gym generates unlimited questions with true answers: few-shot examples for the
challenger and a held-out evaluation with ground truth beyond arithmetic. A category is a
named group of reasoning-gym tasks; the challenger's own questions have no oracle. Answers
match exactly after removing a surrounding `\\boxed{}` and squeezing whitespace: reasoning-gym's
full-credit rule (its partial credit for answers that merely contain the true one is no use
for a majority vote). reasoning_gym is imported only when a domain is built (its import takes
seconds: tools/cpu_figures.py).
"""

from __future__ import annotations

import difflib
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from coevolve.domains import register_domain
from coevolve.domains.answers import (
    answer_phrase,
    bounded_question_block,
    clean_answer,
    last_boxed,
    question_request,
)
from coevolve.domains.base import Domain
from coevolve.records import Question

DEFAULT_GROUPS: dict[str, list[str]] = {
    "arithmetic": ["basic_arithmetic", "chain_sum"],
    "algorithmic": ["letter_counting", "spell_backward", "word_sequence_reversal"],
    "logic": ["syllogism", "aiw"],
}
# Tasks whose items have answer=None: they need reasoning-gym's verifier (measured, 0.1.25).
NO_ANSWER_TASKS = frozenset({"boxnet", "graph_color", "propositional_logic", "rubiks_cube",
                             "rush_hour"})
MAX_NAMES_SHOWN = 30


@register_domain("reasoning_gym")
class ReasoningGymDomain(Domain):
    """Categories are groups of reasoning-gym tasks; see the module docstring.

    Options (a recipe's `domain.options`):
        groups: category name -> reasoning-gym task names (default: DEFAULT_GROUPS).
        task_options: task name -> keyword options of its dataset config (e.g. difficulty).
        prompt_examples: examples generated for the challenger's prompt when none are given.
        max_question_chars: a longer <question> block is rejected.
    """

    def __init__(self, groups: Mapping[str, Sequence[str]] | None = None,
                 task_options: Mapping[str, Mapping[str, Any]] | None = None,
                 prompt_examples: int = 2, max_question_chars: int = 2000) -> None:
        from reasoning_gym.factory import DATASETS

        self._groups = {name: tuple(tasks) for name, tasks in (groups or DEFAULT_GROUPS).items()}
        self._task_options = {task: dict(options) for task, options in (task_options or {}).items()}
        _validate(self._groups, self._task_options, valid=sorted(DATASETS))
        self.prompt_examples = prompt_examples
        self.max_question_chars = max_question_chars
        self._prompt_seeds: dict[str, list[Question]] = {}

    def categories(self) -> tuple[str, ...]:
        return tuple(self._groups)

    def tasks(self, category: str) -> tuple[str, ...]:
        """The reasoning-gym task names of `category`."""
        self.check_category(category)
        return self._groups[category]

    def challenger_prompt(self, category: str, seeds: Sequence[Question] = ()) -> str:
        """Asks for one new question like the examples: `seeds`, or else `prompt_examples`
        questions generated for the category (the same ones every time)."""
        examples = list(seeds) or self._default_seeds(category)
        instructions = [
            f"Write ONE new puzzle of the kind shown below (category: {category}).",
            "It must have one short answer that can be checked by exact match.",
        ]
        return question_request(instructions, [example.text for example in examples], "new question")

    def parse_question(self, completion: str, category: str) -> str | None:
        """The first non-empty <question> block (unclosed: to the end), if short enough."""
        self.check_category(category)
        return bounded_question_block(completion, self.max_question_chars)

    def extract_answer(self, completion: str) -> str | None:
        """The last box's content, else the last "answer is …"; whitespace squeezed.

        No last-number fallback: most reasoning-gym answers are not numbers.
        """
        for source in (last_boxed, answer_phrase):
            found = source(completion)
            if found is not None and _normalised(found):
                return _normalised(found)
        return None

    def equivalent(self, a: str, b: str) -> bool:
        """Exact match after removing a surrounding box and squeezing whitespace."""
        a, b = _normalised(a), _normalised(b)
        return bool(a) and a == b

    def seed_questions(self, category: str, n: int, seed: int) -> list[Question]:
        """`n` generated questions of `category` (with true answers) to show as examples.

        Drawn from a different stream than `heldout` for the same seed.
        """
        return self._generated(category, n, seed, purpose="seed")

    def heldout(self, per_category: int, seed: int) -> list[Question]:
        """`per_category` generated questions per category with true answers, spread evenly
        over the category's tasks; deterministic for a seed."""
        return [
            question
            for category in self.categories()
            for question in self._generated(category, per_category, seed, purpose="heldout")
        ]

    def _default_seeds(self, category: str) -> list[Question]:
        if category not in self._prompt_seeds:
            self._prompt_seeds[category] = self.seed_questions(category, self.prompt_examples, 0)
        return self._prompt_seeds[category]

    def _generated(self, category: str, n: int, seed: int, purpose: str) -> list[Question]:
        tasks = self.tasks(category)
        questions = []
        for index, task in enumerate(tasks):
            count = n // len(tasks) + (1 if index < n % len(tasks) else 0)
            for i, item in enumerate(self._items(task, count, seed, purpose)):
                questions.append(Question(
                    id=f"reasoning_gym/{purpose}/{seed}/{category}/{task}/{i}",
                    category=category, text=item["question"], answer=_answer(task, item),
                    label_source="oracle",
                ))
        return questions

    def _items(self, task: str, count: int, seed: int, purpose: str) -> list[dict[str, Any]]:
        """`count` items of `task` from a stream fixed by (purpose, task, seed)."""
        if count == 0:
            return []
        from reasoning_gym import create_dataset

        stream_seed = zlib.crc32(f"{purpose}/{task}/{seed}".encode())
        dataset = create_dataset(task, size=count, seed=stream_seed,
                                 **self._task_options.get(task, {}))
        return [dataset[i] for i in range(count)]


def _validate(groups: Mapping[str, Sequence[str]], task_options: Mapping[str, Any],
              valid: Sequence[str]) -> None:
    """Raise ValueError on an empty group, an unknown or answerless task, or stray options."""
    if not groups or any(not tasks for tasks in groups.values()):
        raise ValueError(f"reasoning_gym groups must be non-empty, got {dict(groups)}")
    used = {task for tasks in groups.values() for task in tasks}
    for task in sorted(used):
        if task not in valid:
            close = difflib.get_close_matches(task, valid, n=3)
            shown = ", ".join(valid[:MAX_NAMES_SHOWN])
            raise ValueError(
                f"unknown reasoning-gym task {task!r}"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
                + f"; valid tasks ({len(valid)}): {shown}"
                + (", …" if len(valid) > MAX_NAMES_SHOWN else "")
            )
        if task in NO_ANSWER_TASKS:
            raise ValueError(f"reasoning-gym task {task!r} has no stored answers (it needs its "
                             f"own verifier); tasks without answers: {sorted(NO_ANSWER_TASKS)}")
    stray = sorted(set(task_options) - used)
    if stray:
        raise ValueError(f"task_options for tasks in no group: {stray}")


def _answer(task: str, item: Mapping[str, Any]) -> str:
    if item["answer"] is None:
        raise ValueError(f"reasoning-gym task {task!r} gave an item without an answer")
    return str(item["answer"])


def _normalised(answer: str) -> str:
    """`answer` without a surrounding box, outer `$`/period, and with whitespace squeezed."""
    answer = answer.strip()
    boxed = last_boxed(answer)
    if boxed is not None and answer.startswith(("\\boxed", "\\fbox")):
        answer = boxed
    return re.sub(r"\s+", " ", clean_answer(answer))
