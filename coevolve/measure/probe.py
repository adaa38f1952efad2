"""Is a model in the regime where majority-vote self-training can work? Measured, per category.

The solver is trained towards the majority of its own answers on in-band questions, which
teaches the right thing only where those labels are right more often than not (TTRL; R-Zero;
"You Need Reasoning to Learn Reasoning"). That can be measured before training, on held-out
questions with true answers, per category and vote temperature. Verdict, from the in-band
labels' accuracy a and its 95 % Wilson interval: `self-trainable` (interval above 0.5),
`likely` (a > 0.5), `not self-trainable` (a <= 0.5), `no evidence` (nothing in the band).
Pure Python: the caller samples (`coevolve/backend/commands/probe.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from coevolve.domains.base import Domain
from coevolve.measure.evaluation import ALL
from coevolve.records import Question
from coevolve.selfplay.filters import in_band
from coevolve.selfplay.vote import agrees, majority_vote
from coevolve.stats import Interval, error_bars, proportion, pyplot

SELF_TRAINABLE = "self-trainable"
LIKELY = "likely"
NOT_TRAINABLE = "not self-trainable"
NO_EVIDENCE = "no evidence"
TRAINABLE_VERDICTS = (SELF_TRAINABLE, LIKELY)


@dataclass(frozen=True)
class QuestionProbe:
    """One held-out question: its greedy answer and, at one temperature, m sampled answers."""

    question: Question
    greedy_answer: str | None
    sampled_answers: tuple[str | None, ...]


@dataclass(frozen=True)
class CellStats:
    """What the probe measured for one category (or `ALL`) at one temperature."""

    category: str
    temperature: float
    questions: int
    samples_per_question: int
    greedy: Interval  # greedy answer right
    greedy_extracted: Interval  # an answer could be read from the greedy completion
    sample_extracted: Interval  # ... from a sampled completion
    sample_accuracy: Interval  # a single sampled answer right (over all samples)
    majority_accuracy: Interval  # majority-of-m answer right (over questions)
    agreement_counts: tuple[int, ...]  # questions whose majority had c of m votes, c = 0..m
    in_band: Interval  # questions inside the band, over all questions
    in_band_label_accuracy: Interval  # in-band questions whose majority (the label) is right
    verdict: str

    @property
    def trainable(self) -> bool:
        return self.verdict in TRAINABLE_VERDICTS


def verdict(label_accuracy: Interval) -> str:
    """The category's verdict from its in-band label accuracy (see the module docstring)."""
    if label_accuracy.n == 0:
        return NO_EVIDENCE
    if label_accuracy.low > 0.5:
        return SELF_TRAINABLE
    if label_accuracy.k / label_accuracy.n > 0.5:
        return LIKELY
    return NOT_TRAINABLE


def probe_questions(domain: Domain, questions: Sequence[Question], greedy: Sequence[str],
                    sampled: Sequence[Sequence[str]]) -> list[QuestionProbe]:
    """Extract the answers of each question's greedy and sampled completions."""
    if not (len(questions) == len(greedy) == len(sampled)):
        raise ValueError(f"{len(questions)} questions, {len(greedy)} greedy completions and "
                         f"{len(sampled)} groups of samples: one of each per question")
    for question in questions:
        if question.answer is None:
            raise ValueError(f"held-out question {question.id} has no true answer")
    return [QuestionProbe(q, domain.extract_answer(g), tuple(domain.extract_answer(t) for t in s))
            for q, g, s in zip(questions, greedy, sampled, strict=True)]


def cell_stats(domain: Domain, probes: Sequence[QuestionProbe], *, category: str, temperature: float,
               band: tuple[float, float]) -> CellStats:
    """The statistics of `probes` (all of one category, or of every category for `ALL`)."""
    if not probes:
        raise ValueError(f"category {category}: no questions to probe")
    m = len(probes[0].sampled_answers)
    if any(len(p.sampled_answers) != m for p in probes):
        raise ValueError(f"category {category}: questions have different numbers of samples")
    same = domain.equivalent
    votes = [majority_vote(p.sampled_answers, same) for p in probes]
    right = [agrees(v.answer, p.question.answer, same) for v, p in zip(votes, probes, strict=True)]
    inside = [in_band(v.agreement, *band) for v in votes]
    counts = [0] * (m + 1)
    for vote in votes:
        counts[vote.count] += 1
    samples = [a for p in probes for a in p.sampled_answers]
    sample_right = sum(agrees(a, p.question.answer, same) for p in probes for a in p.sampled_answers)
    label_accuracy = proportion(sum(r for r, i in zip(right, inside, strict=True) if i), sum(inside))
    n = len(probes)
    return CellStats(
        category=category, temperature=temperature, questions=n, samples_per_question=m,
        greedy=proportion(sum(agrees(p.greedy_answer, p.question.answer, same) for p in probes), n),
        greedy_extracted=proportion(sum(p.greedy_answer is not None for p in probes), n),
        sample_extracted=proportion(sum(a is not None for a in samples), len(samples)),
        sample_accuracy=proportion(sample_right, len(samples)),
        majority_accuracy=proportion(sum(right), n),
        agreement_counts=tuple(counts),
        in_band=proportion(sum(inside), n),
        in_band_label_accuracy=label_accuracy,
        verdict=verdict(label_accuracy),
    )


@dataclass(frozen=True)
class Recommendation:
    """The temperature and categories the probe's measurements point to."""

    vote_temperature: float | None  # None: no temperature gave a single trainable category
    solver_temperature: float | None
    categories: tuple[str, ...]
    reason: str


def recommend(cells: Sequence[CellStats]) -> Recommendation:
    """Pick the temperature whose trainable categories give the most right in-band labels net
    of wrong ones (k - (n - k), summed): a label that is right teaches, a wrong one un-teaches,
    and more in-band questions mean more training data. Ties go to the higher label accuracy.

    The solver samples its training groups at the same temperature, so that a group's share of
    answers equal to the label is what the vote measured.
    """
    per_category = [c for c in cells if c.category != ALL]
    temperatures = sorted({c.temperature for c in per_category})
    best: tuple[tuple[int, float], float, tuple[str, ...]] | None = None
    for temperature in temperatures:
        chosen = [c for c in per_category if c.temperature == temperature and c.trainable]
        if not chosen:
            continue
        k = sum(c.in_band_label_accuracy.k for c in chosen)
        n = sum(c.in_band_label_accuracy.n for c in chosen)
        score = (2 * k - n, k / n)
        if best is None or score > best[0]:
            best = (score, temperature, tuple(c.category for c in chosen))
    if best is None:
        return Recommendation(None, None, (), "no category at any temperature has in-band labels "
                              "that are right more often than not: self-training would teach the "
                              "solver its own errors; try a better solver prompt or a stronger model")
    (net, accuracy), temperature, categories = best
    return Recommendation(temperature, temperature, categories,
                          f"at T={temperature:g} the in-band labels of these categories are right "
                          f"{accuracy:.0%} of the time (net {net} right labels over wrong ones)")


@dataclass(frozen=True)
class ProbeReport:
    """Every cell (category x temperature, plus `ALL` per temperature) and the recommendation."""

    band: tuple[float, float]
    cells: tuple[CellStats, ...]
    recommendation: Recommendation

    def to_json(self) -> dict[str, Any]:
        return {"band": list(self.band), "cells": [asdict(c) for c in self.cells],
                "recommendation": asdict(self.recommendation)}


def build_report(domain: Domain, by_temperature: dict[float, Sequence[QuestionProbe]],
                 band: tuple[float, float]) -> ProbeReport:
    """Cells per category and overall for each temperature, then the recommendation."""
    cells = []
    for temperature, probes in sorted(by_temperature.items()):
        categories = list(dict.fromkeys(p.question.category for p in probes))
        for category in categories:
            cells.append(cell_stats(domain, [p for p in probes if p.question.category == category],
                                    category=category, temperature=temperature, band=band))
        cells.append(cell_stats(domain, probes, category=ALL, temperature=temperature, band=band))
    return ProbeReport(band, tuple(cells), recommend(cells))


TABLE_HEADER = ("T", "category", "questions", "greedy", "extracted", "sample acc", "majority acc",
                "in band", "in-band label acc [95% CI]", "verdict")


def table(report: ProbeReport) -> list[tuple[str, ...]]:
    """The report's rows as text cells in the order of `TABLE_HEADER`."""
    rows = []
    for c in report.cells:
        label = c.in_band_label_accuracy
        label_text = "-" if label.n == 0 else (f"{label.k}/{label.n} = {label.k / label.n:.2f} "
                                               f"[{label.low:.2f}, {label.high:.2f}]")
        rows.append((f"{c.temperature:g}", c.category, str(c.questions), _share(c.greedy),
                     _share(c.sample_extracted), _share(c.sample_accuracy), _share(c.majority_accuracy),
                     _share(c.in_band), label_text, c.verdict))
    return rows


def probe_markdown(report: ProbeReport) -> str:
    """The table and the recommendation as markdown."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table(report)]
    r = report.recommendation
    lines += ["", f"band: {report.band[0]:g}-{report.band[1]:g}"]
    if r.vote_temperature is None:
        lines.append(f"recommendation: none. {r.reason}")
    else:
        lines.append(f"recommendation: vote.temperature={r.vote_temperature:g} "
                     f"solver.temperature={r.solver_temperature:g} "
                     f"domain.categories=[{','.join(r.categories)}]; {r.reason}")
    return "\n".join(lines) + "\n"


def _share(value: Interval) -> str:
    return "-" if value.n == 0 else f"{value.k / value.n:.2f}"


def plot_probe(report: ProbeReport, path: Path) -> Path:
    """One panel per temperature: per category, greedy and majority accuracy and the in-band
    label accuracy with its 95 % interval, against the 0.5 line self-training needs."""
    plt = pyplot()
    temperatures = sorted({c.temperature for c in report.cells})
    fig, axes = plt.subplots(1, len(temperatures), figsize=(4.5 * len(temperatures), 4.2),
                             sharey=True, squeeze=False)
    for ax, temperature in zip(axes[0], temperatures, strict=True):
        cells = [c for c in report.cells if c.temperature == temperature]
        x = list(range(len(cells)))
        width = 0.27
        for offset, name, values in ((-width, "greedy", [c.greedy for c in cells]),
                                     (0.0, "majority of m", [c.majority_accuracy for c in cells]),
                                     (width, "in-band label", [c.in_band_label_accuracy for c in cells])):
            heights, errors = error_bars(values)
            ax.bar([i + offset for i in x], heights, width, yerr=errors, capsize=2, label=name)
        ax.axhline(0.5, color="black", linestyle="--", linewidth=0.8)
        ax.set_xticks(x, [c.category for c in cells], rotation=45, ha="right", fontsize=8)
        ax.set_title(f"T = {temperature:g}")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("accuracy (95 % CI)")
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle("probe: is the majority right on the questions the band keeps?")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
