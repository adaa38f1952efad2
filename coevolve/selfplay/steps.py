"""The co-evolution steps that sit between the trainers, as pure functions.

Given a domain and a way to sample the frozen solver (`SampleFn`), these functions turn
challenger completions into rewarded questions, and generated questions into the solver's
pseudo-labelled training set. Sampling is injected, so everything here is tested with a fake
solver in milliseconds, and the backend supplies batched HF generation or vLLM.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from coevolve.domains.base import Domain
from coevolve.records import AnswerGroup, Question, Reward, Vote
from coevolve.selfplay.adaptive import AdaptiveVoting, Rounds, SampleFn, StopRule, sample_in_rounds
from coevolve.selfplay.examples import as_questions
from coevolve.selfplay.filters import TextFilter, in_band
from coevolve.selfplay.rewards import COPY, MALFORMED, NEW, TRIVIAL, challenger_rewards
from coevolve.selfplay.similarity import copies_shown
from coevolve.selfplay.vote import agrees, majority_vote
from coevolve.stats import mean_or_none


def answer_groups(
    domain: Domain,
    questions: Sequence[Question],
    *,
    sample: SampleFn,
    n: int,
    adaptive: AdaptiveVoting | None = None,
    stop: StopRule | None = None,
) -> list[AnswerGroup]:
    """The solver's completions for each question, with the answers extracted.

    `n` per question, or, with `adaptive` and its `stop` rule, drawn in rounds and stopped
    per question once `stop` says more answers would not change its fate (at most `n`).
    """
    rounds = adaptive.rounds(n) if adaptive is not None else Rounds(n, n, n)
    return sample_in_rounds(questions, prompt=domain.solver_prompt, extract=domain.extract_answer, sample=sample,
                            rounds=rounds, stop=stop if adaptive is not None else None)


def votes(domain: Domain, groups: Sequence[AnswerGroup]) -> list[Vote]:
    """Majority vote of each group under the domain's equivalence."""
    return [majority_vote(g.answers, domain.equivalent) for g in groups]


@dataclass(frozen=True)
class ChallengerItem:
    """One challenger completion with what it was scored on."""

    completion: str
    category: str
    question: Question | None  # None when the format check failed
    vote: Vote | None  # None when the question was not voted on (malformed or a copy)
    reward: Reward
    copied: bool = False  # the question copies an example shown in its own prompt
    trivial: bool = False  # a new question scored the trivial rung, without votes

    @property
    def new_valid(self) -> bool:
        """A well-formed question that copies no example of its prompt."""
        return self.question is not None and not self.copied


def challenger_message(domain: Domain, category: str, shown: Sequence[str]) -> str:
    """The challenger's prompt for one question of `category`, showing the texts `shown`."""
    return domain.challenger_prompt(category, as_questions(category, shown))


# A chat template's control tokens, spelled as text (`<|im_end|>`, `<|im_start|>`,
# `<|endoftext|>`, `<|eot_id|>`): in a question they would become real control tokens of the
# solver's prompt when it is tokenized, ending the user turn and forging others.
CONTROL_TOKEN = re.compile(r"<\|[^\s|<>]{1,64}\|>")


def parse_questions(
    domain: Domain, completions: Sequence[str], categories: Sequence[str], id_prefix: str
) -> list[Question | None]:
    """Cut each completion's question out, None where the format check fails or the question
    spells a chat control token (CONTROL_TOKEN)."""
    if len(completions) != len(categories):
        raise ValueError(f"{len(completions)} completions but {len(categories)} categories")
    parsed = []
    for index, (completion, category) in enumerate(zip(completions, categories, strict=True)):
        text = domain.parse_question(completion, category)
        if text is not None and CONTROL_TOKEN.search(text):
            text = None
        parsed.append(None if text is None else Question(f"{id_prefix}{index}", category, text))
    return parsed


@dataclass(frozen=True)
class ChallengerRewardSettings:
    """How a challenger step is rewarded (the recipe's `challenger.*` reward keys)."""

    repetition_threshold: float = 0.5
    invalid_reward: float = -1.0
    copy_reward: float = -0.5
    uncertainty_peak: float = 0.5
    unanimous_reward: float | None = None
    trivial_reward: float | None = None  # None: trivial questions are voted on like any other
    repetition_scope: str = "step"  # "step" or "prompt": the rollouts a question is compared with


def score_challenger(
    domain: Domain,
    completions: Sequence[str],
    *,
    categories: Sequence[str],
    shown: Sequence[Sequence[str]],
    sample: SampleFn,
    samples: int,
    settings: ChallengerRewardSettings = ChallengerRewardSettings(),
    id_prefix: str = "q",
    adaptive: AdaptiveVoting | None = None,
) -> list[ChallengerItem]:
    """The challenger's reward for a step's rollouts (the rungs of rewards.challenger_rewards).

    `shown[i]` are the example texts of completion i's prompt: a question equal to one of them in
    canonical form (similarity.copies_shown) is a copy, scored `copy_reward` without votes; with
    `settings.trivial_reward` set, so is a question the domain calls trivial (`Domain.trivial`).
    With `adaptive`, a new question's votes stop once its uncertainty reward is settled.
    """
    if len(shown) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(shown)} lists of shown examples")
    parsed = parse_questions(domain, completions, categories, id_prefix)
    copies = [q is not None and copies_shown(q.text, s) for q, s in zip(parsed, shown, strict=True)]
    trivial = [settings.trivial_reward is not None and q is not None and not copy and domain.trivial(q.text)
               for q, copy in zip(parsed, copies, strict=True)]
    new = [q for q, copy, easy in zip(parsed, copies, trivial, strict=True) if q is not None and not copy and not easy]
    stop = adaptive.reward_stop(domain.equivalent, settings.uncertainty_peak) if adaptive is not None else None
    groups = answer_groups(domain, new, sample=sample, n=samples, adaptive=adaptive, stop=stop)
    vote_of = dict(zip((q.id for q in new), votes(domain, groups), strict=True))
    voted = [vote_of.get(q.id) if q is not None else None for q in parsed]
    kinds = [MALFORMED if q is None else COPY if copy else TRIVIAL if easy else NEW
             for q, copy, easy in zip(parsed, copies, trivial, strict=True)]
    rewards = challenger_rewards(
        [None if q is None else q.text for q in parsed], kinds, [None if v is None else v.agreement for v in voted],
        threshold=settings.repetition_threshold, invalid_reward=settings.invalid_reward,
        copy_reward=settings.copy_reward, peak=settings.uncertainty_peak,
        unanimous_reward=settings.unanimous_reward, trivial_reward=settings.trivial_reward,
        prompts=[(c, *s) for c, s in zip(categories, shown, strict=True)] if settings.repetition_scope == "prompt"
        else None)
    return [
        ChallengerItem(c, cat, q, v, r, copy, easy)
        for c, cat, q, v, r, copy, easy in zip(completions, categories, parsed, voted, rewards, copies, trivial,
                                               strict=True)
    ]


@dataclass(frozen=True)
class SolverDataset:
    """The outcome of one dataset-building pass."""

    kept: list[Question]  # pseudo-labelled questions in the band, label_source "majority_vote"
    generated: int  # challenger completions
    format_valid: int  # completions with a parsable question
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count, before voting
    agreements: list[float] = field(default_factory=list)  # of every voted question
    label_correct: list[bool] = field(default_factory=list)  # kept questions with an oracle
    label_correct_all: list[bool] = field(default_factory=list)  # every voted question with one
    vote_samples: int = 0  # solver answers drawn to vote on the accepted questions
    kept_agreements: list[float] = field(default_factory=list)  # vote agreement of each kept question

    @property
    def pseudo_label_accuracy(self) -> float | None:
        """Share of kept pseudo-labels equal to the oracle's answer (None: no oracle)."""
        return mean_or_none(self.label_correct)

    @property
    def pseudo_label_accuracy_all(self) -> float | None:
        return mean_or_none(self.label_correct_all)


def build_solver_dataset(
    domain: Domain,
    parsed: Sequence[Question | None],
    *,
    sample: SampleFn,
    samples: int,
    band: tuple[float, float],
    text_filter: TextFilter,
    seeds: Sequence[str] = (),
    adaptive: AdaptiveVoting | None = None,
) -> SolverDataset:
    """Filter the challenger's questions, vote on them, keep the band, label by majority.

    With `adaptive`, a question's votes stop once its band decision is settled.
    """
    valid = [q for q in parsed if q is not None]
    accepted_idx, rejections = text_filter.apply([q.text for q in valid], seeds)
    accepted = [valid[i] for i in accepted_idx]
    rejected = Counter(r.reason for r in rejections)
    rejected["format_invalid"] = len(parsed) - len(valid)
    stop = adaptive.band_stop(band, domain.equivalent) if adaptive is not None else None
    groups = answer_groups(domain, accepted, sample=sample, n=samples, adaptive=adaptive, stop=stop)
    kept, kept_agreements, agreements, correct, correct_all = [], [], [], [], []
    for question, vote in zip(accepted, votes(domain, groups), strict=True):
        agreements.append(vote.agreement)
        truth = domain.oracle(question)
        right = None if truth is None else agrees(vote.answer, truth, domain.equivalent)
        if right is not None:
            correct_all.append(right)
        if vote.answer is None or not in_band(vote.agreement, *band):
            rejected["outside_band" if vote.answer is not None else "no_answer"] += 1
            continue
        kept.append(Question(question.id, question.category, question.text, vote.answer, "majority_vote"))
        kept_agreements.append(vote.agreement)
        if right is not None:
            correct.append(right)
    return SolverDataset(
        kept, len(parsed), len(valid), dict(rejected), agreements, correct, correct_all,
        vote_samples=sum(len(g.answers) for g in groups), kept_agreements=kept_agreements,
    )
