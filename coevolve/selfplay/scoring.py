"""Scoring a generated batch of either role: rewards, per-item extras, metrics and sample rows.

The backend calls a scorer with the batch's rollouts and hands the `ScoredBatch` back to the
loop with the training step it fed (`roles.StepBatch.scored`): nothing else carries a
step's metrics. Pure: the solver's votes come through a `SampleFn`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coevolve.domains.base import Domain
from coevolve.records import Rollout
from coevolve.selfplay.adaptive import AdaptiveVoting
from coevolve.selfplay.filters import in_band
from coevolve.selfplay.rewards import solver_reward
from coevolve.selfplay.steps import ChallengerItem, ChallengerRewardSettings, SampleFn, score_challenger
from coevolve.selfplay.vote import agrees
from coevolve.stats import mean_or_none

CHALLENGER_ROWS = ("category", "question", "solver agreement", "reward", "completion")
SOLVER_ROWS = ("category", "pseudo-label", "answer", "completion")


@dataclass(frozen=True)
class ScoredBatch:
    """What scoring one generated batch gives: one reward per rollout, extra per-rollout columns
    for verl's batch, the batch's metrics (None: not measured) and sample rows for TensorBoard."""

    rewards: list[float]
    extras: dict[str, list[Any]] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    rows: list[tuple[str, ...]] = field(default_factory=list)


Scorer = Callable[[Sequence[Rollout]], ScoredBatch]


SHOWN_KEY = "shown_examples"  # a challenger item's extra_info: JSON list of the texts its prompt showed


def shown_of(rollout: Rollout) -> list[str]:
    """The example texts shown in the prompt of a challenger rollout."""
    return json.loads(rollout.extra_info.get(SHOWN_KEY) or "[]")


@dataclass(frozen=True)
class ChallengerScoring:
    """What the challenger's scorer needs besides the rollouts."""

    sample: SampleFn
    samples: int
    settings: ChallengerRewardSettings
    band: tuple[float, float]  # the dataset's agreement band
    id_prefix: str = "q"
    adaptive: AdaptiveVoting | None = None


def challenger_indicators(items: Sequence[ChallengerItem], band: tuple[float, float]) -> dict[str, float | None]:
    """The challenger's leading indicators of one batch (None: nothing to measure)."""
    voted = [i for i in items if i.vote is not None]
    return {
        "challenger/format_valid_rate": mean_or_none(i.question is not None for i in items),
        "challenger/copied_example_rate": mean_or_none(i.copied for i in items if i.question is not None),
        "challenger/new_valid_rate": mean_or_none(i.new_valid for i in items),
        "challenger/uncertainty_reward_mean": mean_or_none(i.reward.parts["uncertainty"] for i in voted),
        "challenger/in_band_share": mean_or_none(in_band(i.vote.agreement, *band) for i in voted),
        # every vote agreed: too easy for the solver to learn from (challenger.unanimous_reward)
        "challenger/unanimous_share": mean_or_none(i.vote.agreement == 1.0 for i in voted),
        # new questions the domain answers without work, scored without votes (challenger.trivial_reward)
        "challenger/trivial_share": mean_or_none(i.trivial for i in items if i.new_valid),
        "challenger/repetition_penalty_mean": mean_or_none(i.reward.parts["repetition_penalty"] for i in items),
        "challenger/solver_agreement_mean": mean_or_none(i.vote.agreement for i in voted),
        "challenger/vote_samples_per_question": mean_or_none(i.vote.n for i in voted),
    }


def score_challenger_items(domain: Domain, rollouts: Sequence[Rollout], how: ChallengerScoring) -> list[ChallengerItem]:
    """selfplay.score_challenger on rollouts, each judged against the examples of its prompt."""
    return score_challenger(domain, [r.response for r in rollouts],
                            categories=[r.extra_info["category"] for r in rollouts],
                            shown=[shown_of(r) for r in rollouts], sample=how.sample, samples=how.samples,
                            settings=how.settings,
                            id_prefix=how.id_prefix, adaptive=how.adaptive)


def challenger_batch(items: Sequence[ChallengerItem], band: tuple[float, float]) -> ScoredBatch:
    """Rewards, metrics and sample rows of scored challenger items."""
    rows = [(i.category, (i.question.text + (" (copy)" if i.copied else "")) if i.question else "(invalid)",
             f"{i.vote.agreement:.2f}" if i.vote else "-", f"{i.reward.total:.2f}", i.completion[:200])
            for i in items]
    return ScoredBatch([i.reward.total for i in items],
                       {"format_valid": [float(i.question is not None) for i in items]},
                       challenger_indicators(items, band), rows)


def score_solver_batch(domain: Domain, rollouts: Sequence[Rollout], reward: str = "pseudo_label") -> ScoredBatch:
    """The solver's reward (rewards.solver_reward: its answer matches the pseudo-label; with
    `reward` "format_only", any extractable answer scores 1) and, where the item carries the
    oracle's answer, the labels' and the answers' true accuracy."""
    if reward not in ("pseudo_label", "format_only"):
        raise ValueError(f"solver reward {reward!r}; allowed: pseudo_label, format_only")
    answers = [domain.extract_answer(r.response) for r in rollouts]
    if reward == "format_only":
        rewards = [float(a is not None) for a in answers]
    else:
        rewards = [solver_reward(a, r.ground_truth, domain.equivalent).total
                   for a, r in zip(answers, rollouts, strict=True)]
    truths = [r.extra_info.get("true_answer") or None for r in rollouts]
    checked = [(a, r.ground_truth, t) for a, r, t in zip(answers, rollouts, truths, strict=True) if t is not None]
    metrics = {
        "solver/answer_extracted_rate": mean_or_none(a is not None for a in answers),
        "solver/pseudo_label_accuracy": mean_or_none(agrees(p, t, domain.equivalent) for _, p, t in checked),
        "solver/true_reward_mean": mean_or_none(agrees(a, t, domain.equivalent) for a, _, t in checked),
    }
    rows = [(r.extra_info["category"], r.ground_truth, str(a), r.response[:200]) for a, r in zip(answers, rollouts, strict=True)]
    return ScoredBatch(rewards, {"matches_pseudo_label": rewards}, metrics, rows)
