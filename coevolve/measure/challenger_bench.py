"""The challenger bench: which reward and prompt design gives the question writer gradients.

A full run takes most of an hour to say whether the challenger learned. With the solver frozen,
the base challenger's replies under a variant's prompts, copy test and reward already show
whether GRPO can move it (`StepIndicators`). Two designs: "today" (a copy scores like a
malformed reply, ROUGE-L against every fixed example, a sliding window of examples, the penalty
among new questions clamped at 0, peak 0.5) and "rungs", the design of `coevolve.selfplay`.
Sampling is injected, so the indicators are tested on a fake sampler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from coevolve.domains.base import Domain
from coevolve.records import Question
from coevolve.selfplay.examples import ExamplePool
from coevolve.selfplay.filters import TextFilter, in_band
from coevolve.selfplay.repetition import repetition_penalty
from coevolve.selfplay.rewards import COPY, MALFORMED, NEW, challenger_rewards, uncertainty_reward
from coevolve.selfplay.similarity import copies_shown
from coevolve.selfplay.steps import SampleFn, answer_groups, challenger_message, parse_questions, votes
from coevolve.stats import mean_or_none

WriteFn = Callable[[list[str], int], list[list[str]]]  # messages, n -> n replies per message
TODAY_WINDOW_POOL = 16  # the fixed pool the sliding window of the earlier design walked over
TODAY_ROUGE = 0.95  # the default recipe's dataset.max_rouge_l, used as the copy test then


@dataclass(frozen=True)
class Variant:
    """One design: how examples are shown, how copies are judged, how replies are rewarded."""

    name: str
    design: str  # "today" or "rungs"
    peak: float = 0.5  # the uncertainty reward's peak
    copy_reward: float = -0.5  # rungs only
    own_examples: int = 0  # rungs only: own in-band questions mixed into the examples
    # Overrides of the recipe (None: the recipe's): the domain's `challenger_prompt` option,
    # examples per prompt (`challenger.seeds_per_prompt`), sampling temperature.
    prompt: str | None = None
    shown: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class StepIndicators:
    """The leading indicators of one bench step. new-valid: well-formed and not a copy of an
    example under the variant's copy test; groups with a gradient: GRPO groups (one prompt's
    replies) whose rewards differ; in-band: voted questions whose agreement is in the band."""

    replies: int
    well_formed_rate: float
    new_valid_rate: float
    groups_with_gradient: float
    uncertainty_mean: float | None  # None: no question was voted on
    in_band_share: float | None
    reward_mean: float


def today_rewards(texts: Sequence[str | None], kinds: Sequence[str], agreements: Sequence[float | None],
                  threshold: float = 0.5) -> list[float]:
    """The earlier reward: a copy or a malformed reply -1; a new question max(0, u − penalty), the
    penalty clustered among the new questions and divided by their number, u peaked at 0.5."""
    new = [i for i, kind in enumerate(kinds) if kind == NEW]
    penalties = dict(zip(new, repetition_penalty([texts[i] for i in new], threshold), strict=True))
    return [max(0.0, uncertainty_reward(agreements[i]) - penalties[i]) if i in penalties else -1.0
            for i in range(len(kinds))]


class ChallengerBench:
    """Bench steps of one variant: prompts, replies, copy test, votes, rewards, indicators."""

    def __init__(self, domain: Domain, categories: Sequence[str], variant: Variant, *,
                 seeds: dict[str, list[Question]], shown: int, band: tuple[float, float], run_seed: int) -> None:
        self.domain, self.categories, self.variant, self.band = domain, tuple(categories), variant, band
        self.window = {c: list(pool[:TODAY_WINDOW_POOL]) for c, pool in seeds.items()}
        self.window_texts = [q.text for pool in self.window.values() for q in pool]
        self.pool = ExamplePool(seeds, run_seed, shown, variant.own_examples)
        self.shown = shown
        self.rouge = TextFilter(max_rouge_l=TODAY_ROUGE)

    def shown_for(self, category: str, serial: int) -> list[str]:
        if self.variant.design == "today":
            window = self.window.get(category, [])
            return [window[(serial + k) % len(window)].text for k in range(min(self.shown, len(window)))]
        return self.pool.draw(category, serial)

    def is_copy(self, text: str, shown: Sequence[str]) -> bool:
        if self.variant.design == "today":
            return self.rouge.too_similar(text, self.window_texts)
        return copies_shown(text, shown)

    def step(self, step: int, *, batch: int, group: int, write: WriteFn, sample: SampleFn,
             samples: int) -> StepIndicators:
        """One step: `batch` prompts (categories in turn), `group` replies each, voted by `sample`."""
        categories = [self.categories[(step * batch + i) % len(self.categories)] for i in range(batch)]
        shown = [self.shown_for(c, step * batch + i) for i, c in enumerate(categories)]
        replies = write([challenger_message(self.domain, c, s) for c, s in zip(categories, shown, strict=True)], group)
        flat_categories = [c for c in categories for _ in range(group)]
        flat_shown = [s for s in shown for _ in range(group)]
        parsed = parse_questions(self.domain, [r for rs in replies for r in rs], flat_categories, f"bench{step}/")
        kinds = [MALFORMED if q is None else COPY if self.is_copy(q.text, s) else NEW
                 for q, s in zip(parsed, flat_shown, strict=True)]
        new = [q for q, k in zip(parsed, kinds, strict=True) if k == NEW]
        agreement_of = {q.id: v.agreement for q, v in
                        zip(new, votes(self.domain, answer_groups(self.domain, new, sample=sample, n=samples)), strict=True)}
        agreements = [None if q is None else agreement_of.get(q.id) for q in parsed]
        texts = [None if q is None else q.text for q in parsed]
        rewards = self._rewards(texts, kinds, agreements)
        self._remember(parsed, agreements)
        return indicators(kinds, agreements, rewards, group, self.band, self.variant.peak)

    def _rewards(self, texts, kinds, agreements) -> list[float]:
        if self.variant.design == "today":
            return today_rewards(texts, kinds, agreements)
        return [r.total for r in challenger_rewards(texts, kinds, agreements, copy_reward=self.variant.copy_reward,
                                                    peak=self.variant.peak)]

    def _remember(self, parsed: Sequence[Question | None], agreements: Sequence[float | None]) -> None:
        """New in-band questions join the examples of later prompts, as in the run."""
        for q, a in zip(parsed, agreements, strict=True):
            if q is not None and a is not None and in_band(a, *self.band):
                self.pool.add_own(q.category, [q.text])


def indicators(kinds: Sequence[str], agreements: Sequence[float | None], rewards: Sequence[float], group: int,
               band: tuple[float, float], peak: float) -> StepIndicators:
    """The indicators of one step's replies, laid out prompt by prompt, `group` replies each."""
    if len(kinds) % group:
        raise ValueError(f"{len(kinds)} replies do not split into groups of {group}")
    grouped = np.asarray(rewards, dtype=float).reshape(-1, group)
    voted = [a for a in agreements if a is not None]
    return StepIndicators(
        replies=len(kinds),
        well_formed_rate=float(np.mean([k != MALFORMED for k in kinds])),
        new_valid_rate=float(np.mean([k == NEW for k in kinds])),
        groups_with_gradient=float(np.mean(grouped.max(1) - grouped.min(1) > 1e-9)),
        uncertainty_mean=mean_or_none(uncertainty_reward(a, peak) for a in voted),
        in_band_share=mean_or_none(in_band(a, *band) for a in voted),
        reward_mean=float(np.mean(rewards)),
    )


def pooled(steps: Sequence[StepIndicators]) -> dict[str, float | None]:
    """A variant's indicators over its steps, each weighted by its replies (or voted questions)."""
    weights = [s.replies for s in steps]

    def weighted(values, w) -> float | None:
        pairs = [(v, x) for v, x in zip(values, w, strict=True) if v is not None and x > 0]
        return None if not pairs else float(np.average([v for v, _ in pairs], weights=[x for _, x in pairs]))

    voted = [s.replies * s.new_valid_rate for s in steps]
    return {
        "well_formed": weighted([s.well_formed_rate for s in steps], weights),
        "new_valid": weighted([s.new_valid_rate for s in steps], weights),
        "groups_with_gradient": weighted([s.groups_with_gradient for s in steps], weights),
        "uncertainty_mean": weighted([s.uncertainty_mean for s in steps], voted),
        "in_band_share": weighted([s.in_band_share for s in steps], voted),
        "reward_mean": weighted([s.reward_mean for s in steps], weights),
    }
