"""How long the run has left: an ETA that counts start-up and learns each phase's speed.

A phase's cost is counted in work units from the plan's generation budget
(`plan.iteration_budget`): one per generated token, `TRAINED_TOKEN_UNITS` per token that also
goes through a GRPO update. Before anything is measured the ETA uses `PRIOR_SECONDS_PER_UNIT`;
then the machine's measured speed scales the prior, and a phase kind that has finished once
uses its own seconds per unit. `Progress` is the console's view: one bar per phase and the ETA.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from coevolve.recipe.schema import Recipe
from coevolve.run.console import Console, PhaseBar
from coevolve.run.plan import iteration_budget
from coevolve.runstate import BASE_EVAL, Phase

# Fitted (least squares over the 9 phases) to a default run on a 2-core AMD EPYC machine,
# SmolLM2-135M in float32, with the fast CPU engine: ~1.75 ms per budgeted generated token,
# a token that is also trained on ~15 times that (its forward and backward passes in the
# update); starting Ray, both trainers and their rollout servers ~65 s. Only the first ETA
# rests on these; the rest is measured.
PRIOR_SECONDS_PER_UNIT = 0.00175
TRAINED_TOKEN_UNITS = 15.0
PRIOR_STARTUP_SECONDS = 65.0


def phase_units(recipe: Recipe, heldout: int, heldout_votes: int) -> dict[str, float]:
    """Work units of each phase kind of one iteration ('eval_base' costs what 'eval' does)."""
    units: dict[str, float] = {}
    for g in iteration_budget(recipe, heldout, heldout_votes):
        units[g.phase] = units.get(g.phase, 0.0) + g.max_tokens * (TRAINED_TOKEN_UNITS if g.trained else 1.0)
    if recipe.challenger.steps == 0:  # the base challenger: its phase trains nothing
        units["challenger"] = 0.0
    units[BASE_EVAL] = units["eval"]
    return units


def phase_kind(phase: Phase) -> str:
    """The kind of work a phase is: the base evaluation is an evaluation."""
    return "eval" if phase.name == BASE_EVAL else phase.name


@dataclass
class Eta:
    """Seconds left for the pending phases; `finish` each phase (and start-up) as it ends."""

    units: dict[str, float]  # phase name -> units
    pending: list[Phase]
    startup_pending: bool = True
    prior_rate: float = PRIOR_SECONDS_PER_UNIT
    prior_startup: float = PRIOR_STARTUP_SECONDS
    _measured_seconds: float = 0.0
    _measured_prior: float = 0.0
    _rates: dict[str, list[float]] = field(default_factory=dict)  # kind -> [seconds, units]

    def speed(self) -> float:
        """Measured / prior seconds so far: > 1 on a slower machine than the prior's."""
        return self._measured_seconds / self._measured_prior if self._measured_prior else 1.0

    def phase_seconds(self, phase: Phase) -> float:
        """The expected wall time of `phase`."""
        units = self.units[phase.name]
        seconds, measured_units = self._rates.get(phase_kind(phase), (0.0, 0.0))
        if measured_units:
            return units * seconds / measured_units
        return units * self.prior_rate * self.speed()

    def remaining(self, current: Phase | None = None, fraction_done: float = 0.0,
                  seconds_in_current: float = 0.0) -> float:
        """Seconds left, the current phase counted by its expected time minus what it has had
        (never below its not-done fraction's share)."""
        total = self.prior_startup * self.speed() if self.startup_pending else 0.0
        for phase in self.pending:
            expected = self.phase_seconds(phase)
            if phase == current:
                expected = max(expected - seconds_in_current, expected * (1.0 - fraction_done))
            total += expected
        return total

    def finish_startup(self, seconds: float) -> None:
        if self.startup_pending:
            self.startup_pending = False
            self._measured(seconds, self.prior_startup)

    def finish(self, phase: Phase, seconds: float) -> None:
        if phase in self.pending:
            self.pending.remove(phase)
        units = self.units[phase.name]
        if units <= 0:
            return
        self._measured(seconds, units * self.prior_rate)
        rate = self._rates.setdefault(phase_kind(phase), [0.0, 0.0])
        rate[0] += seconds
        rate[1] += units

    def _measured(self, seconds: float, prior: float) -> None:
        self._measured_seconds += seconds
        self._measured_prior += prior


def clock(seconds: float | None) -> str:
    """'1h02m', '12m05s' or '?'."""
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    if hours:
        return f"{hours}h{rest // 60:02d}m"
    return f"{rest // 60}m{rest % 60:02d}s"


def eta_for(recipe: Recipe, pending: Iterable[Phase], heldout: int, heldout_votes: int) -> Eta:
    return Eta(phase_units(recipe, heldout, heldout_votes), list(pending))


# The numbers a phase's bar shows, by phase kind: metric tag -> short name.
BAR_NUMBERS = {
    "challenger": {"challenger/reward_mean": "reward", "challenger/format_valid_rate": "valid rate",
                   "challenger/new_valid_rate": "new valid", "challenger/informative_group_rate": "groups w/ gradient",
                   "challenger/in_band_share": "in band"},
    "solver": {"solver/reward_mean": "reward", "solver/pseudo_label_accuracy": "label acc",
               "solver/true_reward_mean": "true reward"},
    "dataset": {"dataset/questions_generated": "written", "dataset/questions_format_valid": "valid",
                "dataset/questions_kept": "kept", "dataset/kept_informative": "informative",
                "dataset/pseudo_label_accuracy": "label acc",
                "dataset/label_flip_rate": "flips"},
    "eval": {"eval/accuracy": "held-out acc", "eval/majority_vote_accuracy": "majority acc",
             "eval/in_band_label_accuracy": "in-band label acc"},
}
COUNTS = ("written", "valid", "kept", "informative")  # bar numbers that are counts, not rates


def bar_numbers(kind: str, metrics: Mapping[str, float | None]) -> dict[str, str]:
    """The key numbers of a phase of `kind` found in `metrics`, formatted for the console."""
    return {name: f"{metrics[tag]:.0f}" if name in COUNTS else f"{metrics[tag]:.2f}"
            for tag, name in BAR_NUMBERS.get(kind, {}).items() if metrics.get(tag) is not None}


class Progress:
    """The console's view of the run: one bar per phase with its key numbers, the run's ETA."""

    def __init__(self, console: Console, eta: Eta) -> None:
        self.console = console
        self.eta = eta
        self._bar: PhaseBar | None = None
        self._phase: Phase | None = None
        self._phase_started = 0.0

    def run_eta(self) -> str:
        if self._phase is None or self._bar is None:
            return clock(self.eta.remaining())
        return clock(self.eta.remaining(self._phase, self._bar.n / self._bar.total,
                                        time.monotonic() - self._phase_started))

    @contextmanager
    def phase(self, phase: Phase, total: int, unit: str) -> Iterator[None]:
        self._phase, self._phase_started = phase, time.monotonic()
        with self.console.bar(f"iteration {phase.iteration} {phase.name}", total, unit) as bar:
            self._bar = bar
            bar.show({"run ETA": self.run_eta()})
            try:
                yield
            finally:
                self._bar, self._phase = None, None

    def show(self, metrics: Mapping[str, float | None], advance: int = 0) -> None:
        """Move the bar on, with the phase's key numbers found in `metrics`."""
        if self._bar is None:
            return
        self._bar.show({**bar_numbers(phase_kind(self._phase), metrics), "run ETA": self.run_eta()}, advance)

    def finish(self, phase: Phase, seconds: float) -> None:
        self.eta.finish(phase, seconds)
