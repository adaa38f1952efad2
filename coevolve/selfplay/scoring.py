"""Scoring a generated batch of either role: rewards, per-item extras, metrics and sample rows.

The backend calls a scorer with the batch's rollouts and hands the `ScoredBatch` back to the
loop with the training step it fed (`roles.StepBatch.scored`): nothing else carries a
step's metrics. Pure: the solver's votes come through a `SampleFn`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coevolve.domains.base import Domain
from coevolve.records import Rollout
from coevolve.selfplay.adaptive import AdaptiveVoting
from coevolve.selfplay.rewards import solver_reward
from coevolve.selfplay.steps import SampleFn, score_challenger
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


def score_challenger_batch(domain: Domain, rollouts: Sequence[Rollout], sample: SampleFn, samples: int,
                           repetition_threshold: float, invalid_reward: float, id_prefix: str,
                           adaptive: AdaptiveVoting | None, is_copy: Callable[[str], bool]) -> ScoredBatch:
    """R-Zero's challenger reward (selfplay.score_challenger) with the batch's metrics."""
    items = score_challenger(domain, [r.response for r in rollouts], [r.extra_info["category"] for r in rollouts],
                             sample, samples, repetition_threshold, invalid_reward, id_prefix=id_prefix,
                             adaptive=adaptive, is_copy=is_copy)
    valid = [i for i in items if i.vote is not None]
    metrics = {
        "challenger/copied_example_rate": mean_or_none(i.copied for i in items if i.question is not None),
        "challenger/vote_samples_per_question": mean_or_none(i.vote.n for i in valid),
        "challenger/format_valid_rate": mean_or_none(i.question is not None for i in items),
        "challenger/uncertainty_reward_mean": mean_or_none(i.reward.parts["uncertainty"] for i in valid),
        "challenger/repetition_penalty_mean": mean_or_none(i.reward.parts["repetition_penalty"] for i in valid),
        "challenger/solver_agreement_mean": mean_or_none(i.vote.agreement for i in valid),
    }
    rows = [(i.category, (i.question.text + (" (copy)" if i.copied else "")) if i.question else "(invalid)",
             f"{i.vote.agreement:.2f}" if i.vote else "-", f"{i.reward.total:.2f}", i.completion[:200])
            for i in items]
    return ScoredBatch([i.reward.total for i in items],
                       {"format_valid": [float(i.question is not None) for i in items]}, metrics, rows)


def score_solver_batch(domain: Domain, rollouts: Sequence[Rollout]) -> ScoredBatch:
    """The solver's reward (rewards.solver_reward: its answer matches the pseudo-label) and,
    where the item carries the oracle's answer, the labels' and the answers' true accuracy."""
    answers = [domain.extract_answer(r.response) for r in rollouts]
    rewards = [solver_reward(a, r.ground_truth, domain.equivalent).total for a, r in zip(answers, rollouts, strict=True)]
    truths = [r.extra_info.get("true_answer") or None for r in rollouts]
    checked = [(a, r.ground_truth, t) for a, r, t in zip(answers, rollouts, truths, strict=True) if t is not None]
    metrics = {
        "solver/answer_extracted_rate": mean_or_none(a is not None for a in answers),
        "solver/pseudo_label_accuracy": mean_or_none(agrees(p, t, domain.equivalent) for _, p, t in checked),
        "solver/true_reward_mean": mean_or_none(agrees(a, t, domain.equivalent) for a, _, t in checked),
    }
    rows = [(r.extra_info["category"], r.ground_truth, str(a), r.response[:200]) for a, r in zip(answers, rollouts, strict=True)]
    return ScoredBatch(rewards, {"matches_pseudo_label": rewards}, metrics, rows)
