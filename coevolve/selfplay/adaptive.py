"""Adaptive voting: sample the solver in rounds, stop a question once its fate is settled.

Voting is the dominant cost of R-Zero-style co-evolution (m answers per question), and a
question the solver agrees on after a few answers is easy, far from agreement 0.5 and outside
the band; later answers rarely change that. So every question gets a first round, then open
questions one more round at a time, up to m. The dataset's rule (`band_rule`) settles the band
decision and the label; the challenger's (`reward_rule`) the uncertainty reward, or the leader
by Adaptive-Consistency's Beta stopping rule (Aggarwal et al. 2023). That last case is not
exact: a question closed at 4 of 4 scores 0 where m answers might have scored a little more
(`make bench-adaptive` measures the gap). Votes report `n` = the answers actually drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scipy.stats import beta

from coevolve.records import AnswerGroup, Question, Vote
from coevolve.selfplay.filters import in_band
from coevolve.selfplay.rewards import uncertainty_reward
from coevolve.selfplay.vote import Equivalence, group_answers, majority_vote

# (user messages, samples per message) -> completions, one list of `n` per message
SampleFn = Callable[[Sequence[str], int], list[list[str]]]
# (answers drawn so far, samples allowed in all) -> whether the question may stop
StopRule = Callable[[Sequence[str | None], int], bool]


@dataclass(frozen=True)
class Rounds:
    """How many answers to draw per round, up to `max_samples` per question."""

    max_samples: int  # m
    first_round: int
    round_size: int

    def __post_init__(self) -> None:
        if not 1 <= self.first_round <= self.max_samples:
            raise ValueError(f"first_round must lie in [1, {self.max_samples}], got {self.first_round}")
        if self.round_size < 1:
            raise ValueError(f"round_size must be at least 1, got {self.round_size}")

    def sizes(self) -> list[int]:
        """Answers drawn in each round by a question that never stops early."""
        sizes, drawn = [self.first_round], self.first_round
        while drawn < self.max_samples:
            sizes.append(min(self.round_size, self.max_samples - drawn))
            drawn += sizes[-1]
        return sizes


def leader_counts(answers: Sequence[str | None], equivalent: Equivalence | None = None) -> tuple[int, int]:
    """Votes for the leading answer and for the runner-up (0 when there is none)."""
    sizes = sorted((len(members) for _, members in group_answers(answers, equivalent)), reverse=True)
    return (sizes[0] if sizes else 0), (sizes[1] if len(sizes) > 1 else 0)


def leader_confidence(leader: int, runner_up: int) -> float:
    """Adaptive-Consistency's P(the leader's share > the runner-up's) under Beta(v1+1, v2+1)."""
    return float(beta.sf(0.5, leader + 1, runner_up + 1))


def final_leader_range(leader: int, drawn: int, max_samples: int) -> tuple[int, int]:
    """Bounds of the leading answer's count after all `max_samples` answers.

    The final leader has at least today's leader count, and at most that plus every answer
    still to come (a runner-up that overtakes ends below that bound too).
    """
    remaining = max(max_samples - drawn, 0)
    return leader, leader + remaining


def band_rule(
    band: tuple[float, float], confidence: float, equivalent: Equivalence | None = None
) -> StopRule:
    """Stop once the band decision is settled, exactly or with posterior `confidence`.

    Exact: every final leader count still reachable gives the same decision. Otherwise the
    leader's share p has the posterior Beta(v1 + 1, k − v1 + 1), and the decision is settled
    when P(p inside the band) (or outside) reaches `confidence`. Either way the decision must
    be the one today's agreement v1 / k gives, because that is what the dataset filter reads.
    A kept question also needs a settled pseudo-label: the runner-up can no longer catch up,
    or the leader is settled by Adaptive-Consistency's rule.
    """

    def stop(answers: Sequence[str | None], max_samples: int) -> bool:
        drawn = len(answers)
        leader, runner_up = leader_counts(answers, equivalent)
        keep = in_band(leader / drawn, *band)
        low, high = final_leader_range(leader, drawn, max_samples)
        # The band is an interval: check every reachable count, not only the two ends.
        exact = {in_band(count / max_samples, *band) for count in range(low, high + 1)} == {keep}
        settled = exact or _band_posterior(leader, drawn, band, keep) >= confidence
        if not settled or not keep:
            return settled
        return leader - runner_up > max_samples - drawn or leader_confidence(leader, runner_up) >= confidence

    return stop


def _band_posterior(leader: int, drawn: int, band: tuple[float, float], keep: bool) -> float:
    """P(the leader's share is inside the band) if `keep`, else P(outside), under
    Beta(v1 + 1, k − v1 + 1)."""
    posterior = beta(leader + 1, drawn - leader + 1)
    inside = float(posterior.cdf(band[1]) - posterior.cdf(band[0]))
    return inside if keep else 1.0 - inside


def reward_rule(tolerance: float, confidence: float, equivalent: Equivalence | None = None,
                peak: float = 0.5) -> StopRule:
    """Stop when the uncertainty reward (peaked at `peak`) can move at most `tolerance`, or the
    leader is settled."""

    def stop(answers: Sequence[str | None], max_samples: int) -> bool:
        leader, runner_up = leader_counts(answers, equivalent)
        now = uncertainty_reward(leader / len(answers), peak)
        low, high = final_leader_range(leader, len(answers), max_samples)
        spread = max(abs(uncertainty_reward(c / max_samples, peak) - now) for c in range(low, high + 1))
        return spread <= tolerance or leader_confidence(leader, runner_up) >= confidence

    return stop


@dataclass(frozen=True)
class AdaptiveVoting:
    """The recipe's adaptive-voting settings (`vote.adaptive`), turned into stop rules."""

    first_round: int
    round_size: int
    confidence: float
    reward_tolerance: float

    def rounds(self, max_samples: int) -> Rounds:
        return Rounds(max_samples, min(self.first_round, max_samples), self.round_size)

    def reward_stop(self, equivalent: Equivalence | None = None, peak: float = 0.5) -> StopRule:
        return reward_rule(self.reward_tolerance, self.confidence, equivalent, peak)

    def band_stop(self, band: tuple[float, float], equivalent: Equivalence | None = None) -> StopRule:
        return band_rule(band, self.confidence, equivalent)


def sample_in_rounds(
    questions: Sequence[Question],
    *,
    prompt: Callable[[Question], str],
    extract: Callable[[str], str | None],
    sample: SampleFn,
    rounds: Rounds,
    stop: StopRule | None,
) -> list[AnswerGroup]:
    """Each question's completions, drawn round by round until `stop` closes it.

    Open questions advance in lockstep, so every round is one batched call to `sample`.
    With `stop=None` every question gets all `rounds.max_samples` answers in one call.
    """
    texts: list[list[str]] = [[] for _ in questions]
    answers: list[list[str | None]] = [[] for _ in questions]
    sizes = rounds.sizes() if stop is not None else [rounds.max_samples]
    open_idx = list(range(len(questions)))
    for size in sizes:
        if not open_idx:
            break
        drawn = sample([prompt(questions[i]) for i in open_idx], size)
        for i, completions in zip(open_idx, drawn, strict=True):
            texts[i].extend(completions)
            answers[i].extend(extract(c) for c in completions)
        open_idx = [i for i in open_idx if not stop(answers[i], rounds.max_samples)] if stop else []
    return [AnswerGroup(q.id, tuple(t), tuple(a)) for q, t, a in zip(questions, texts, answers, strict=True)]


def replay(answers: Sequence[str | None], rounds: Rounds, stop: StopRule) -> int:
    """How many of an already drawn sequence of answers adaptive voting would have used.

    Samples are independent, so consuming a full vote's answers in their drawn order is
    the same experiment as sampling in rounds; the benchmark compares both this way.
    """
    drawn = 0
    for size in rounds.sizes():  # the sizes add up to max_samples
        drawn += size
        if stop(answers[:drawn], rounds.max_samples):
            break
    return drawn


def vote_of_prefix(answers: Sequence[str | None], used: int, equivalent: Equivalence | None = None) -> Vote:
    """The majority vote over the first `used` answers."""
    return majority_vote(list(answers[:used]), equivalent)
