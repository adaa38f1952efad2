"""Rewards of the two roles, each returned with its named parts.

Challenger: rungs, so that a GRPO group of replies that are all short of a new question
still carries a gradient (Absolute Zero scores a malformed proposal -1 and a valid but useless
one -0.5):

1. malformed (the domain's format check fails): `invalid_reward` (-1);
2. a well-formed copy of an example shown in that reply's prompt: `copy_reward` (-0.5);
3. a new, well-formed question: the uncertainty reward of the frozen solver's vote; with
   `unanimous_reward` set, a new question on which every vote agrees scores that instead (too
   easy to teach the solver anything: Absolute Zero's "valid but useless", like a copy);
4. with `trivial_reward` set, a new question the domain answers without work (`Domain.trivial`:
   "x / 1", "x / x") scores that, without votes: a small solver may still split its votes on one.

Every rung then pays R-Zero's repetition penalty, computed over every rollout of the step
(malformed replies enter as empty text) and divided by their number, without a clamp at 0, as
R-Zero's public code does: a unique question pays 1 / (rollouts of the step). With the scope
"prompt", a reply pays instead the share of its own prompt's replies that are the same question
(repetition.repeats_within_prompts).
Solver: 1 when its answer agrees with the pseudo-label (the majority answer), else 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from coevolve.records import Reward
from coevolve.selfplay.repetition import repeats_within_prompts, repetition_penalty
from coevolve.selfplay.vote import Equivalence, agrees

__all__ = [
    "COPY",
    "MALFORMED",
    "NEW",
    "TRIVIAL",
    "challenger_reward",
    "challenger_rewards",
    "repetition_penalty",
    "solver_reward",
    "uncertainty_reward",
]

MALFORMED, COPY, NEW, TRIVIAL = "malformed", "copy", "new", "trivial"  # the challenger reward's rungs
KINDS = (MALFORMED, COPY, NEW, TRIVIAL)


def uncertainty_reward(agreement: float, peak: float = 0.5) -> float:
    """A tent over the agreement p: 1 at p = `peak`, 0 at p = 0 and at p = 1 (unanimous).

    With `peak` 0.5 it is R-Zero's 1 − 2·|p − 0.5|. A peak inside the dataset's agreement band
    pays most for questions the dataset keeps.

    >>> uncertainty_reward(0.5), uncertainty_reward(1.0), uncertainty_reward(0.8)
    (1.0, 0.0, 0.4)
    >>> uncertainty_reward(0.75, peak=0.75), uncertainty_reward(0.5, peak=0.75)
    (1.0, 0.666666666667)
    """
    if not 0.0 <= agreement <= 1.0:
        raise ValueError(f"agreement must lie in [0, 1], got {agreement}")
    if not 0.0 < peak < 1.0:
        raise ValueError(f"the uncertainty reward's peak must lie in (0, 1), got {peak}")
    side = peak if agreement <= peak else 1.0 - peak
    return round(1.0 - abs(agreement - peak) / side, 12)


def challenger_reward(
    kind: str, agreement: float | None, penalty: float, *, invalid_reward: float = -1.0,
    copy_reward: float = -0.5, peak: float = 0.5, unanimous_reward: float | None = None,
    trivial_reward: float | None = None,
) -> Reward:
    """One reply's reward: its rung (see the module docstring) minus its repetition penalty."""
    if kind not in KINDS:
        raise ValueError(f"unknown challenger reply kind {kind!r}; allowed: {', '.join(KINDS)}")
    parts = {"format_valid": float(kind != MALFORMED), "new_question": float(kind in (NEW, TRIVIAL)),
             "repetition_penalty": penalty, "trivial": float(kind == TRIVIAL)}
    if kind == MALFORMED:
        return Reward(total=invalid_reward - penalty, parts=parts)
    if kind == COPY:
        return Reward(total=copy_reward - penalty, parts=parts)
    if kind == TRIVIAL:
        if trivial_reward is None:
            raise ValueError("a trivial question is scored challenger.trivial_reward, which is unset")
        return Reward(total=trivial_reward - penalty, parts=parts)
    if agreement is None:
        raise ValueError("a new question needs the solver's agreement on it")
    uncertainty = uncertainty_reward(agreement, peak)
    parts = {**parts, "uncertainty": uncertainty, "unanimous": float(agreement == 1.0)}
    if agreement == 1.0 and unanimous_reward is not None:
        return Reward(total=unanimous_reward - penalty, parts=parts)
    return Reward(total=uncertainty - penalty, parts=parts)


def challenger_rewards(
    questions: Sequence[str | None],
    kinds: Sequence[str],
    agreements: Sequence[float | None],
    *,
    threshold: float = 0.5,
    invalid_reward: float = -1.0,
    copy_reward: float = -0.5,
    peak: float = 0.5,
    unanimous_reward: float | None = None,
    trivial_reward: float | None = None,
    prompts: Sequence[Hashable] | None = None,
) -> list[Reward]:
    """Rewards of every rollout of one challenger step.

    `questions[i]` is the parsed question (None: malformed), `kinds[i]` its rung, and
    `agreements[i]` the solver's agreement (needed for new questions only). The repetition
    penalty clusters all rollouts, malformed ones as empty text, and divides by their number;
    given `prompts[i]`, the prompt of rollout i, it is the share of that prompt's replies that
    repeat the question instead.
    """
    if not len(questions) == len(kinds) == len(agreements):
        raise ValueError(f"{len(questions)} questions, {len(kinds)} kinds and {len(agreements)} agreements")
    texts = [q or "" for q in questions]
    penalties = repetition_penalty(texts, threshold) if prompts is None else repeats_within_prompts(texts, prompts)
    return [challenger_reward(kind, agreement, penalty, invalid_reward=invalid_reward,
                              copy_reward=copy_reward, peak=peak, unanimous_reward=unanimous_reward,
                              trivial_reward=trivial_reward)
            for kind, agreement, penalty in zip(kinds, agreements, penalties, strict=True)]


def solver_reward(
    answer: str | None, pseudo_label: str | None, equivalent: Equivalence | None = None
) -> Reward:
    """1 if the solver's extracted answer is equivalent to the pseudo-label, else 0."""
    correct = float(agrees(answer, pseudo_label, equivalent))
    return Reward(
        total=correct,
        parts={"matches_pseudo_label": correct, "answer_extracted": float(answer is not None)},
    )
