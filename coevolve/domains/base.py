"""The interface every domain implements: what to ask for, how to read it, how to compare.

A domain knows its categories (the bandit's arms), writes the challenger's instruction for a
category, cuts the question out of the challenger's output, extracts an answer from the
solver's output, decides when two answers are the same, and, where it can, computes the
true answer (an oracle) or provides held-out questions with true answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from coevolve.records import Question


class DomainOptionError(ValueError):
    """A bad `domain.options` entry; `key` names it so a recipe can name the file that set it.

    The message reads `domain.options.<key> = <value>: <problem>; allowed: <what is>`.
    """

    def __init__(self, key: str, value: object, problem: str, allowed: str) -> None:
        self.key = key
        super().__init__(f"domain.options.{key} = {value!r}: {problem}; allowed: {allowed}")


def solver_template(key: str, value: object) -> str:
    """A solver prompt template: a string with a `{question}` placeholder."""
    if not isinstance(value, str) or "{question}" not in value:
        raise DomainOptionError(key, value, "not a template with a {question} placeholder",
                                "a string containing {question} (other braces are literal)")
    return value


class Domain(ABC):
    """Base class of all domains. Subclasses register themselves in `DOMAINS`."""

    name: str = ""
    # Options that hold file paths (a string or a list of strings). A recipe resolves a
    # relative one against the folder of the recipe file that sets it, as it does `base:`.
    path_options: tuple[str, ...] = ()

    @abstractmethod
    def categories(self) -> tuple[str, ...]:
        """All categories this domain can ask about, in a stable order."""

    @abstractmethod
    def challenger_prompt(self, category: str, seeds: Sequence[Question] = ()) -> str:
        """The user message asking the challenger for one question of `category`.

        `seeds` are optional example questions shown few-shot (SeRL-style self-instruction).
        """

    @abstractmethod
    def parse_question(self, completion: str, category: str) -> str | None:
        """The question text cut out of the challenger's completion, or None if malformed."""

    def solver_prompt(self, question: Question) -> str:
        """The user message that asks the solver to answer `question`.

        The format is described, not shown as a template: small models copy a literal
        `\\boxed{answer}` into their reply.
        """
        return f"{question.text}\n\nThink step by step, then write the final answer inside \\boxed{{}}."

    @abstractmethod
    def extract_answer(self, completion: str) -> str | None:
        """The final answer in the solver's completion, or None if there is none."""

    @abstractmethod
    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers mean the same thing."""

    def oracle(self, question: Question) -> str | None:
        """The true answer to a challenger's question, where the domain can compute it."""
        return None

    def trivial(self, text: str) -> bool:
        """Whether a question is answered without any work (in arithmetic, "x * 1" or "x / x"):
        the challenger's `trivial_reward` rung. No domain knows of trivial questions by default."""
        return False

    def seed_questions(self, category: str, n: int, seed: int) -> list[Question]:
        """Example questions of `category` to show the challenger few-shot (none by default)."""
        return []

    def heldout(self, per_category: int, seed: int) -> list[Question]:
        """Held-out questions with true answers (`Question.answer` set), per category."""
        return []

    def close(self) -> None:
        """Release what the domain holds (worker processes); the loop calls it at the end."""
        return None

    def check_category(self, category: str) -> None:
        """Raise ValueError naming the valid categories if `category` is not one of them."""
        if category not in self.categories():
            raise ValueError(
                f"unknown {self.name} category {category!r}; valid: {', '.join(self.categories())}"
            )
