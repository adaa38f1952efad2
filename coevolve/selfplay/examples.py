"""The examples shown in each challenger prompt: fresh per prompt, mixed with its own questions.

A fixed window over a fixed pool shows the same few questions in every run, and a small
challenger copies them. As in SeRL and Absolute Zero, every prompt draws its examples at random
(seeded by the run's seed, the category and the prompt's serial) from the category's pool
(`challenger.example_pool`) and up to `challenger.own_examples` of the challenger's own new,
in-band questions. A reply is judged a copy only against the texts shown in its prompt
(`similarity.copies_shown`); the pool is run state, so a resumed run shows the same.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from coevolve.records import Question

OWN_CAPACITY = 64  # accepted questions kept per category (the oldest leave first)


@dataclass
class ExamplePool:
    """Per category: the domain's example questions and the challenger's own accepted ones."""

    seeds: Mapping[str, Sequence[Question]]
    run_seed: int
    shown: int  # examples per prompt (`challenger.seeds_per_prompt`)
    own_per_prompt: int = 0  # of which at most this many are the challenger's own questions
    own: dict[str, list[str]] = field(default_factory=dict)

    def draw(self, category: str, serial: int | str) -> list[str]:
        """The texts shown in prompt `serial` of `category`: own questions first drawn, then seeds,
        shuffled together; deterministic for (run seed, category, serial, buffer)."""
        if self.shown <= 0:
            return []
        rng = random.Random(f"examples/{self.run_seed}/{category}/{serial}/{len(self.own.get(category, []))}")
        own = list(dict.fromkeys(self.own.get(category, [])))
        mine = rng.sample(own, min(self.own_per_prompt, len(own), self.shown))
        seeds = [q.text for q in self.seeds.get(category, ()) if q.text not in mine]
        picked = mine + rng.sample(seeds, min(self.shown - len(mine), len(seeds)))
        rng.shuffle(picked)
        return picked

    def add_own(self, category: str, texts: Sequence[str]) -> None:
        """Remember accepted questions of `category` (at most OWN_CAPACITY, newest kept)."""
        kept = self.own.setdefault(category, [])
        kept.extend(texts)
        del kept[:-OWN_CAPACITY]

    def state_dict(self) -> dict[str, list[str]]:
        return {category: list(texts) for category, texts in self.own.items()}

    def load_state_dict(self, state: Mapping[str, Sequence[str]]) -> None:
        self.own = {category: list(texts) for category, texts in state.items()}


def as_questions(category: str, texts: Sequence[str]) -> list[Question]:
    """Shown texts as the `Question`s a domain's `challenger_prompt` takes."""
    return [Question(f"shown/{category}/{i}", category, text) for i, text in enumerate(texts)]
