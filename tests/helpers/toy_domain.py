"""A domain that a randomly initialised tiny model can play, for end-to-end tests.

Any non-empty text is a question; a response's answer is its length modulo 3, so random
responses split their votes; the true answer of a question is its word count modulo 3.
Loaded by recipes as `helpers.toy_domain:ToyDomain` (tests/ on the Python path).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from coevolve.domains.base import Domain
from coevolve.records import Question


class ToyDomain(Domain):
    name = "toy"

    def categories(self) -> tuple[str, ...]:
        return ("short", "long")

    def challenger_prompt(self, category: str, seeds: Sequence[Question] = ()) -> str:
        return f"Write a {category} question."

    def parse_question(self, completion: str, category: str) -> str | None:
        text = " ".join(completion.split())
        return text[:200] or None

    def extract_answer(self, completion: str) -> str | None:
        text = completion.strip()
        return str(len(text) % 3) if text else None

    def equivalent(self, a: str, b: str) -> bool:
        return a == b

    def oracle(self, question: Question) -> str | None:
        return str(len(question.text.split()) % 3)

    def generate(self, category: str, rng: random.Random) -> str:
        """A question of the domain's own generator (dataset.source: generator)."""
        return " ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(2, 6)))

    def heldout(self, per_category: int, seed: int) -> list[Question]:
        rng = random.Random(seed)
        out = []
        for category in self.categories():
            for i in range(per_category):
                text = " ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(2, 6)))
                q = Question(f"toy/{category}/{i}", category, text)
                out.append(Question(q.id, q.category, q.text, self.oracle(q), "oracle"))
        return out
