"""General math problems, R-Zero's setting: answers are compared by math-verify, not by string.

No oracle: training relies on the solver's majority vote, with answers grouped by
mathematical equivalence (`\\frac{1}{2}` ~ `0.5`, `x+1` ~ `1+x`) checked by math-verify in a
killable worker (`coevolve.domains.mathverify`) after two cheap local checks. Held-out
evaluation reads the benchmark files the user names (`heldout_files`; nothing is shipped or
downloaded): each file is one held-out set named by its stem (`math500.jsonl` -> ids
`math500:<line>`), a line's `category` one of the domain's; a benchmark without topics (GSM8K,
AIME) gets `heldout_category`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import PurePath

from coevolve.domains import register_domain
from coevolve.domains.answers import (
    answer_phrase,
    bounded_question_block,
    canonical_number,
    clean_answer,
    last_boxed,
    last_number,
    question_request,
)
from coevolve.domains.base import Domain, DomainOptionError
from coevolve.domains.files import QuestionFileError, load_questions
from coevolve.domains.mathverify import TimedVerifier
from coevolve.records import Question

DEFAULT_CATEGORIES = (
    "algebra",
    "arithmetic",
    "geometry",
    "number_theory",
    "counting_probability",
    "precalculus",
)
# How the challenger is told about a category; other category names are shown as words.
DESCRIPTIONS = {
    "algebra": "algebra (equations, inequalities, polynomials, functions)",
    "arithmetic": "arithmetic (fractions, percentages, ratios, word problems)",
    "geometry": "geometry (lengths, angles, areas, volumes)",
    "number_theory": "number theory (divisibility, primes, remainders, digits)",
    "counting_probability": "counting and probability (combinations, permutations, chances)",
    "precalculus": "precalculus (trigonometry, complex numbers, vectors, sequences)",
}


@register_domain("math")
class MathDomain(Domain):
    """Free-form math problems with math-verify equivalence.

    Options (a recipe's `domain.options`):
        categories: the category names (default: DEFAULT_CATEGORIES).
        timeout_s: time limit of one math-verify check; a timeout is a non-match.
        cache_size: number of answer pairs whose equivalence is remembered.
        max_question_chars: a longer <question> block is rejected.
        heldout_files: JSONL benchmark files (question, answer, optional category), one held-out
            set per file, named by its stem; every question of every file is evaluated.
        heldout_category: the category of a held-out line without one (None: such a line is
            an error naming the file and line).
    """

    path_options = ("heldout_files",)  # resolved against the recipe's folder by the loader

    def __init__(self, categories: Sequence[str] = DEFAULT_CATEGORIES, *, timeout_s: float = 5.0,
                 cache_size: int = 100_000, max_question_chars: int = 2000,
                 heldout_files: Sequence[str] = (), heldout_category: str | None = None) -> None:
        if not categories or len(set(categories)) != len(categories):
            raise ValueError(f"math categories must be non-empty and distinct, got {categories}")
        self._categories = tuple(categories)
        self.heldout_files = _checked_heldout_files(heldout_files)
        if heldout_category is not None and heldout_category not in self._categories:
            raise DomainOptionError("heldout_category", heldout_category, "not one of the categories",
                                    f"null or one of {', '.join(self._categories)}")
        self.heldout_category = heldout_category
        self.timeout_s = timeout_s
        self.max_question_chars = max_question_chars
        self._verifier: TimedVerifier | None = None  # started on the first non-trivial check
        self._verified = functools.lru_cache(maxsize=cache_size)(self._verify)

    def categories(self) -> tuple[str, ...]:
        return self._categories

    def challenger_prompt(self, category: str, seeds: Sequence[Question] = ()) -> str:
        self.check_category(category)
        topic = DESCRIPTIONS.get(category, category.replace("_", " "))
        instructions = [
            f"Write ONE new, challenging but solvable math problem in {topic}.",
            "It must have a single final answer that is a number or a short expression: "
            "no proofs, no multiple parts.",
        ]
        return question_request(instructions, [seed.text for seed in seeds], "problem")

    def parse_question(self, completion: str, category: str) -> str | None:
        """The first non-empty <question> block (unclosed: to the end), if short enough."""
        self.check_category(category)
        return bounded_question_block(completion, self.max_question_chars)

    def extract_answer(self, completion: str) -> str | None:
        """The answer from the first source that has one: the last box, then the last
        "answer is …", then the last number. Plain numbers come out canonical ("1,234" -> "1234").
        """
        for source in (last_boxed, answer_phrase, last_number):
            found = source(completion)
            answer = clean_answer(found) if found is not None else ""
            if answer:
                return canonical_number(answer) or answer
        return None

    def equivalent(self, a: str, b: str) -> bool:
        """Mathematical equivalence; symmetric, and cached per pair.

        Identical answers (ignoring whitespace) match and two plain numbers are compared exactly,
        both without math-verify; anything else goes to math-verify under `timeout_s` (which
        refuses answers over MAX_ANSWER_CHARS or with a `$` inside: they match only themselves).
        """
        a, b = clean_answer(a), clean_answer(b)
        if not a or not b:
            return False
        if _without_spaces(a) == _without_spaces(b):
            return True
        a_number, b_number = canonical_number(a), canonical_number(b)
        if a_number is not None and b_number is not None:
            return a_number == b_number
        first, second = sorted((a, b))  # one order for both calls makes the answer symmetric
        return self._verified(first, second)

    def heldout(self, per_category: int, seed: int) -> list[Question]:
        """Every question of `heldout_files`, in file order.

        Files are read here, not when the domain is built, so a recipe whose benchmark paths
        are still placeholders can be checked and dry-run; a real run reads them before it
        starts anything. Benchmarks are evaluated whole (`per_category` and `seed` do not cut
        them), so accuracies compare with published numbers.
        """
        questions: list[Question] = []
        for path in self.heldout_files:
            try:
                questions += load_questions(path, categories=self._categories,
                                            default_category=self.heldout_category, require_answer=True)
            except QuestionFileError as error:
                raise QuestionFileError(f"domain.options.heldout_files: {error} (each entry must be "
                                        "a JSONL benchmark file you provide)") from error
        return questions

    def close(self) -> None:
        """Stop the math-verify worker (a later check starts a new one)."""
        if self._verifier is not None:
            self._verifier.close()

    def _verify(self, a: str, b: str) -> bool:
        if self._verifier is None:
            self._verifier = TimedVerifier(self.timeout_s)
        return self._verifier.equivalent(a, b)


def _checked_heldout_files(files: Sequence[str]) -> tuple[str, ...]:
    """The held-out paths, if they name distinct sets; the files themselves are read later."""
    allowed = "a list of JSONL paths with distinct file stems without ':' (a stem names a set)"
    if isinstance(files, str) or not all(isinstance(f, str) and f for f in files):
        raise DomainOptionError("heldout_files", files, "must be a list of paths", allowed)
    stems = [PurePath(f).stem for f in files]
    for stem in stems:
        if ":" in stem or stems.count(stem) > 1:
            problem = "holds ':'" if ":" in stem else "is the stem of two files"
            raise DomainOptionError("heldout_files", files, f"set name {stem!r} {problem}", allowed)
    return tuple(files)


def _without_spaces(answer: str) -> str:
    # Only for the identity check; math-verify gets the spaces (\sin x is not \sinx).
    return re.sub(r"\s+", "", answer)
