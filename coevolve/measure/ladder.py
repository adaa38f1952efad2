"""The baseline ladder: what the challenger, the curriculum and the pseudo-labels each add.

Every arm is the recipe with a few overrides, run with the same test questions (`eval.seed`)
and the same solver budget; seeds (`seed=`: sampling, bandits, examples shown, the generator's
draws) differ between the runs of one arm, and the same seeds are used in every arm, so that
arms are compared pair by pair on the same questions and seeds. With several seeds the paired
differences of all of them are pooled into one bootstrap interval (coevolve/stats.py).

The base model needs no run: every run evaluates it first (`eval_base`, greedy, the same in
every seed); its questions pair with every arm's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from coevolve.measure.report import EvalPoint, eval_point
from coevolve.runstate import RunDirError, read_json, write_atomically
from coevolve.stats import paired_interval

BASE = "base"
# arm -> recipe overrides; the base model is read from any run's eval_base.
ARMS: dict[str, tuple[str, ...]] = {
    # the solver trained on the base challenger's questions, rewarded for any extractable answer
    "format-only": ("challenger.steps=0", "solver.reward=format_only"),
    # R-Zero's "base challenger": the untrained challenger writes the dataset
    "base-challenger": ("challenger.steps=0",),
    "co-evolution": (),
    # no challenger: the domain's generator writes the questions, same filters, band, majority labels
    "generator-questions": ("challenger.steps=0", "dataset.source=generator"),
    # co-evolution with the oracle's answer as every kept question's label
    "true-labels": ("dataset.label=oracle",),
    # co-evolution with categories drawn uniformly
    "uniform-curriculum": ("curriculum.mode=uniform",),
}
# (arm, the arm it is compared with): each rung against the one it should beat
COMPARISONS = (
    ("format-only", BASE), ("base-challenger", BASE), ("co-evolution", BASE),
    ("base-challenger", "format-only"), ("co-evolution", "format-only"),
    ("co-evolution", "base-challenger"), ("generator-questions", "base-challenger"),
    ("true-labels", "co-evolution"), ("co-evolution", "uniform-curriculum"),
)


@dataclass(frozen=True)
class PooledGain:
    """Mean paired difference of accuracy (arm − other) over every seed's shared questions."""

    arm: str
    other: str
    seeds: int
    pairs: int
    difference: float
    low: float
    high: float


def pooled_gain(arm: str, other: str, runs: Mapping[str, Sequence[EvalPoint]]) -> PooledGain:
    """`runs[name][k]` is seed k's final evaluation of that arm (BASE: the base model's)."""
    if len(runs[arm]) != len(runs[other]):
        raise ValueError(f"{arm} has {len(runs[arm])} seeds and {other} {len(runs[other])}: pair the same seeds")
    before, after = [], []
    for mine, theirs in zip(runs[arm], runs[other], strict=True):
        shared = [q for q in theirs.correct if q in mine.correct]
        before += [float(theirs.correct[q]) for q in shared]
        after += [float(mine.correct[q]) for q in shared]
    if not before:
        raise ValueError(f"{arm} and {other} share no test question")
    low, high = paired_interval(before, after)
    return PooledGain(arm, other, len(runs[arm]), len(before), float(np.mean(after) - np.mean(before)), low, high)


def ladder_table(runs: Mapping[str, Sequence[EvalPoint]]) -> str:
    """Markdown: each arm's pooled accuracy, then every comparison with its pooled paired interval."""
    lines = ["| arm | seeds | accuracy (pooled) | gain over base (points) | paired 95 % interval |",
             "|---|---|---|---|---|"]
    for arm, points in runs.items():
        accuracy = np.mean([v for p in points for v in p.correct.values()])
        if arm == BASE:
            lines.append(f"| {arm} | {len(points)} | {accuracy:.3f} | - | - |")
            continue
        g = pooled_gain(arm, BASE, runs)
        lines.append(f"| {arm} | {len(points)} | {accuracy:.3f} | {100 * g.difference:+.1f} | "
                     f"[{100 * g.low:+.1f}, {100 * g.high:+.1f}] |")
    lines += ["", "| comparison | seeds | question pairs | difference (points) | paired 95 % interval |",
              "|---|---|---|---|---|"]
    for arm, other in COMPARISONS:
        if arm in runs and other in runs:
            g = pooled_gain(arm, other, runs)
            lines.append(f"| {arm} vs {other} | {g.seeds} | {g.pairs} | {100 * g.difference:+.1f} | "
                         f"[{100 * g.low:+.1f}, {100 * g.high:+.1f}] |")
    return "\n".join(lines) + "\n"


# --- an archive of finished runs, so that seeds run on different days pool into one ladder ----

ARCHIVE_FILE = "{arm}-seed{seed}.json"


@dataclass(frozen=True)
class ArchivedRun:
    """One finished run of the ladder: its base model's and its kept solver's evaluation files
    (`eval/<phase>.json`, as written), and where it came from."""

    arm: str
    seed: int
    source: dict  # commit, overrides, kept iteration, per-iteration summary: for the reader
    base: dict
    final: dict

    def points(self) -> tuple[EvalPoint, EvalPoint]:
        kept = self.source.get("kept_iteration")
        return eval_point(0, self.base), eval_point(1 if kept is None else int(kept), self.final)


def archive_path(folder: Path, arm: str, seed: int) -> Path:
    return Path(folder) / ARCHIVE_FILE.format(arm=arm, seed=seed)


def write_archived(folder: Path, run: ArchivedRun) -> Path:
    """One JSON file per (arm, seed), replaced atomically."""
    path = archive_path(folder, run.arm, run.seed)
    write_atomically(path, json.dumps({"arm": run.arm, "seed": run.seed, "source": run.source,
                                       "base": run.base, "final": run.final}, indent=1) + "\n")
    return path


def read_archived_run(path: Path) -> ArchivedRun:
    """One archived run; a file that is not one is named."""
    raw = read_json(path, "an archived ladder run of coevolve")
    try:
        run = ArchivedRun(str(raw["arm"]), int(raw["seed"]), dict(raw["source"]), dict(raw["base"]),
                          dict(raw["final"]))
        run.points()
    except (KeyError, TypeError, ValueError) as err:
        raise RunDirError(f"{path}: not an archived ladder run ({type(err).__name__}: {err}); "
                          "delete it or write it again with tools/baselines.py --archive") from None
    return run


def read_archived(folder: Path) -> dict[tuple[str, int], ArchivedRun]:
    """Every archived run of `folder` by (arm, seed); a file that is not one is named."""
    runs = {}
    for path in sorted(Path(folder).glob("*-seed*.json")):
        run = read_archived_run(path)
        if path.name != archive_path(folder, run.arm, run.seed).name:
            raise RunDirError(f"{path}: holds arm {run.arm!r} seed {run.seed}; the file name must say so")
        runs[(run.arm, run.seed)] = run
    return runs


def compare_archived(runs: Sequence[ArchivedRun], others: Sequence[ArchivedRun]) -> PooledGain:
    """Pooled paired difference of two sets of archived runs (final test evaluations), paired by
    seed: each seed once in each set."""
    mine, theirs = _by_seed(runs), _by_seed(others)
    if not mine or set(mine) != set(theirs):
        raise ValueError(f"pair the same seeds: {sorted(mine)} against {sorted(theirs)}")
    seeds = sorted(mine)
    finals = {"runs": [mine[s].points()[1] for s in seeds], "others": [theirs[s].points()[1] for s in seeds]}
    return replace(pooled_gain("runs", "others", finals), arm=runs[0].arm, other=others[0].arm)


def _by_seed(runs: Sequence[ArchivedRun]) -> dict[int, ArchivedRun]:
    seeds = [run.seed for run in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed twice in one set: {sorted(seeds)}")
    return {run.seed: run for run in runs}
