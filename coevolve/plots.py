"""PNG figures of the probe and of a run's report, drawn with matplotlib (Agg, no display).

Kept apart from the numbers they draw (`coevolve/probe.py`, `coevolve/report.py`) so those
stay plain Python; matplotlib is imported only when a figure is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from coevolve.probe import Interval, ProbeReport
    from coevolve.report import RunReport


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _error_bars(values: Sequence["Interval"]) -> tuple[list[float], list[list[float]]]:
    """Heights (0 where n = 0) and asymmetric error bars of intervals."""
    heights = [v.k / v.n if v.n else 0.0 for v in values]
    below = [h - v.low if v.n else 0.0 for h, v in zip(heights, values)]
    above = [v.high - h if v.n else 0.0 for h, v in zip(heights, values)]
    return heights, [below, above]


def plot_probe(report: "ProbeReport", path: Path) -> Path:
    """One panel per temperature: per category, greedy and majority accuracy and the in-band
    label accuracy with its 95 % interval, against the 0.5 line self-training needs."""
    plt = _pyplot()
    temperatures = sorted({c.temperature for c in report.cells})
    fig, axes = plt.subplots(1, len(temperatures), figsize=(4.5 * len(temperatures), 4.2),
                             sharey=True, squeeze=False)
    for ax, temperature in zip(axes[0], temperatures):
        cells = [c for c in report.cells if c.temperature == temperature]
        x = list(range(len(cells)))
        width = 0.27
        for offset, name, values in ((-width, "greedy", [c.greedy for c in cells]),
                                     (0.0, "majority of m", [c.majority_accuracy for c in cells]),
                                     (width, "in-band label", [c.in_band_label_accuracy for c in cells])):
            heights, errors = _error_bars(values)
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


def plot_report(report: "RunReport", path: Path) -> Path:
    """Four panels over iterations: held-out accuracy per category (95 % CI), pseudo-label
    accuracy of kept questions, questions kept, and the challenger's mean reward."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0][0]
    for category in report.categories:
        points = [(e.iteration, e.per_category[category]) for e in report.evals if category in e.per_category]
        heights, errors = _error_bars([p[1] for p in points])
        ax.errorbar([p[0] for p in points], heights, yerr=errors, capsize=2, marker=".", label=category,
                    alpha=0.7)
    overall = [(e.iteration, e.overall) for e in report.evals]
    heights, errors = _error_bars([p[1] for p in overall])
    ax.errorbar([p[0] for p in overall], heights, yerr=errors, capsize=3, marker="o", color="black",
                linewidth=2.5, label="all")
    ax.set(title="held-out greedy accuracy (0 = base model)", xlabel="iteration", ylim=(0, 1))
    ax.legend(fontsize=7, ncol=2)
    _line(axes[0][1], [(i.iteration, i.pseudo_label_accuracy) for i in report.iterations],
          "pseudo-label accuracy of kept questions", (0, 1), floor=0.5)
    _line(axes[1][0], [(i.iteration, i.questions_kept) for i in report.iterations], "questions kept")
    _line(axes[1][1], [(i.iteration, i.challenger_reward) for i in report.iterations],
          "challenger reward (mean over its steps)")
    iterations = [e.iteration for e in report.evals] or [0]
    for ax in axes.flat:
        ax.set_xticks(iterations)
        ax.set_xlim(min(iterations) - 0.3, max(iterations) + 0.3)
    fig.suptitle(f"run {report.name}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _line(ax, points: Sequence[tuple[int, float | None]], title: str,
          ylim: tuple[float, float] | None = None, floor: float | None = None) -> None:
    points = [(x, y) for x, y in points if y is not None]
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    if floor is not None:
        ax.axhline(floor, color="black", linestyle="--", linewidth=0.8)
    ax.set(title=title, xlabel="iteration")
    if ylim:
        ax.set_ylim(*ylim)
