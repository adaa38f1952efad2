"""Adaptive voting against full voting, on the same questions and the same answers.

The solver answers every question m times with the recipe's vote settings, in the order
drawn; samples are independent, so adaptive voting is replayed on each answer sequence
(`coevolve.selfplay.adaptive.replay`) exactly as if it sampled in rounds. Per setting: samples
drawn with and without it, the challenger reward's mean |difference|, and the share of band
decisions and kept pseudo-labels that change; then the share of informative solver groups
among kept questions, drawn uniformly versus by `selfplay/informative.py`'s weights.

    python tools/bench_adaptive.py --per-category 4 --samples 10
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from coevolve.domains import build_domain
from coevolve.recipe.load import DEFAULT_RECIPE, load_recipe
from coevolve.selfplay.adaptive import AdaptiveVoting, replay, vote_of_prefix
from coevolve.selfplay.filters import in_band
from coevolve.selfplay.informative import informative_probability, informative_weights
from coevolve.selfplay.rewards import uncertainty_reward


@dataclass(frozen=True)
class Comparison:
    setting: str
    questions: int
    samples_full: int
    samples_challenger: int
    samples_dataset: int
    reward_mean_abs_diff: float
    band_decisions_changed: float
    labels_changed: float | None  # among questions both keep; None when there are none

    @property
    def ratio_challenger(self) -> float:
        return self.samples_full / self.samples_challenger

    @property
    def ratio_dataset(self) -> float:
        return self.samples_full / self.samples_dataset


def compare(answers: list[list[str | None]], *, m: int, adaptive: AdaptiveVoting, band: tuple[float, float],
            equivalent, setting: str) -> Comparison:
    """Replay `adaptive` on every question's full answer sequence."""
    rounds = adaptive.rounds(m)
    reward_stop, band_stop = adaptive.reward_stop(equivalent), adaptive.band_stop(band, equivalent)
    used_reward, used_band, diffs, flips, label_flips, kept = [], [], [], 0, 0, 0
    for sequence in answers:
        full = vote_of_prefix(sequence, m, equivalent)
        k = replay(sequence, rounds, reward_stop)
        used_reward.append(k)
        diffs.append(abs(uncertainty_reward(vote_of_prefix(sequence, k, equivalent).agreement)
                         - uncertainty_reward(full.agreement)))
        k = replay(sequence, rounds, band_stop)
        used_band.append(k)
        short = vote_of_prefix(sequence, k, equivalent)
        keep_full, keep_short = _kept(full, band), _kept(short, band)
        flips += keep_full != keep_short
        if keep_full and keep_short:
            kept += 1
            label_flips += not equivalent(full.answer, short.answer)
    return Comparison(setting=setting, questions=len(answers), samples_full=m * len(answers),
                      samples_challenger=sum(used_reward), samples_dataset=sum(used_band),
                      reward_mean_abs_diff=float(np.mean(diffs)), band_decisions_changed=flips / len(answers),
                      labels_changed=label_flips / kept if kept else None)


def split_half_informative(answers, full_votes, *, band: tuple[float, float], group_size: int,
                           equivalent) -> dict:
    """Share of informative solver groups among kept questions, uniform vs weighted draws.

    Not circular: each question's weight (`informative_weights`, floor included) comes from
    how often the first half of its answers match its pseudo-label, and the chance of an
    informative group is judged on the second half.
    """
    weights, chances = [], []
    for sequence, vote in zip(answers, full_votes, strict=True):
        if not _kept(vote, band):
            continue
        half = len(sequence) // 2
        first, second = sequence[:half], sequence[half:]
        match = lambda part, label=vote.answer: sum(a is not None and equivalent(label, a) for a in part) / len(part)
        weights.extend(informative_weights([match(first)], group_size))
        chances.append(informative_probability(match(second), group_size))
    if not chances:
        return {"group_size": group_size, "questions_in_band": 0, "uniform": None, "weighted": None}
    weighted = sum(w * c for w, c in zip(weights, chances, strict=True)) / sum(weights)
    return {"group_size": group_size, "questions_in_band": len(chances),
            "uniform": float(np.mean(chances)), "weighted": float(weighted)}


def _kept(vote, band: tuple[float, float]) -> bool:
    return vote.answer is not None and in_band(vote.agreement, *band)


def sample_answers(recipe, questions, m: int, seed: int) -> tuple[list[list[str | None]], float, int]:
    """Every question's m answers in drawn order, the seconds it took and the tokens made."""
    from coevolve.backend.generation.generator import HFGenerator
    from coevolve.backend.models import prepare_base_model
    from coevolve.run.sampling import vote_params

    v = recipe.vote
    sampler = HFGenerator(prepare_base_model(recipe), batch_size=v.batch_size, dtype=recipe.model.dtype,
                          engine=recipe.resources.cpu_engine)
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    params = vote_params(recipe, m)
    completions = sampler.generate([domain.solver_prompt(q) for q in questions], params, seed=seed)
    stats = sampler.last_stats
    return [[domain.extract_answer(c) for c in group] for group in completions], stats.seconds, stats.generated_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(DEFAULT_RECIPE))
    parser.add_argument("--per-category", type=int, default=4, help="questions per domain category")
    parser.add_argument("--samples", type=int, default=10, help="m, answers per question (R-Zero: 10)")
    parser.add_argument("--seed", type=int, default=777, help="question and sampling seed (not the training seed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    recipe = load_recipe(Path(args.recipe), [])
    domain = build_domain(recipe.domain.name, recipe.domain.options)
    categories = recipe.domain.categories or domain.categories()
    questions = [q for c in categories for q in domain.seed_questions(c, args.per_category, args.seed)]
    start = time.monotonic()
    answers, seconds, tokens = sample_answers(recipe, questions, args.samples, args.seed)
    band = (recipe.dataset.band_low, recipe.dataset.band_high)
    a = recipe.vote.adaptive
    settings = [(f"recipe: first {a.first_round}, +{a.round_size}, conf {a.confidence}, tol {a.reward_tolerance}",
                 AdaptiveVoting(a.first_round, a.round_size, a.confidence, a.reward_tolerance))]
    for first, confidence in ((3, 0.9), (4, 0.95), (4, 0.99), (6, 0.95)):
        settings.append((f"first {first}, +2, conf {confidence}, tol {a.reward_tolerance}",
                         AdaptiveVoting(first, 2, confidence, a.reward_tolerance)))
    results = [compare(answers, m=args.samples, adaptive=s, band=band, equivalent=domain.equivalent,
                       setting=name) for name, s in settings]

    g = recipe.solver.group_size
    full_votes = [vote_of_prefix(seq, args.samples, domain.equivalent) for seq in answers]
    informative = split_half_informative(answers, full_votes, band=band, group_size=g, equivalent=domain.equivalent)
    print(f"{len(questions)} questions x {args.samples} answers: {tokens} tokens in {seconds:.0f} s "
          f"({time.monotonic() - start:.0f} s in all)")
    print(f"{'setting':<52} {'full':>5} {'chall.':>6} {'ratio':>6} {'|dr|':>6} {'dataset':>7} "
          f"{'ratio':>6} {'band chg':>8} {'label chg':>9}")
    for r in results:
        print(f"{r.setting:<52} {r.samples_full:>5} {r.samples_challenger:>6} {r.ratio_challenger:>6.2f} "
              f"{r.reward_mean_abs_diff:>6.3f} {r.samples_dataset:>7} {r.ratio_dataset:>6.2f} "
              f"{r.band_decisions_changed:>8.1%} {r.labels_changed:>9.1%}")
    print(f"informative solver groups (G={g}) over {informative['questions_in_band']} kept questions, "
          f"weights from half the answers, judged on the other half: uniform {informative['uniform']}, "
          f"weighted {informative['weighted']}")
    agreement_hist = np.histogram([v.agreement for v in full_votes], bins=np.linspace(0, 1, 11))[0].tolist()
    print(f"agreement histogram of the full votes (0.0-0.1 ... 0.9-1.0): {agreement_hist}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "questions": len(questions), "samples": args.samples, "sampling_seconds": seconds, "tokens": tokens,
            "comparisons": [asdict(r) | {"ratio_challenger": r.ratio_challenger, "ratio_dataset": r.ratio_dataset}
                            for r in results],
            "informative_groups": informative, "agreement_hist": agreement_hist,
        }, indent=2))


if __name__ == "__main__":
    main()
