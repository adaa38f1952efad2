"""What the co-evolution loop needs from a trained role, and from the backend that builds both.

The loop (coevolve/run/loop.py) only ever talks to these protocols; `coevolve.backend.verl_backend`
implements them on verl and Ray, and tests/fake_backend.py implements them in plain Python so
every phase runs in milliseconds. Data flows one way: the backend calls the role's `Scorer`
on each generated batch and hands the `ScoredBatch` back inside the `StepBatch` of the step
it fed; the loop never reaches into the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from coevolve.domains.base import Domain
from coevolve.recipe.schema import Recipe
from coevolve.records import Question
from coevolve.run.sampling import SamplingParams
from coevolve.selfplay.curriculum import Bandit
from coevolve.selfplay.examples import ExamplePool
from coevolve.selfplay.scoring import ScoredBatch, Scorer

ROLES = ("challenger", "solver")


@dataclass(frozen=True)
class StepBatch:
    """What the loop learns from one training step of a role."""

    step: int
    categories: list[str]
    advantages: list[float]  # one per response (GRPO: the group-normalised reward)
    rewards: list[float]
    scored: ScoredBatch  # the scorer's result on this step's batch: metrics and sample rows


@dataclass(frozen=True, kw_only=True)
class RoleInputs:
    """Everything a backend needs to build one role, passed explicitly."""

    role: str  # "challenger" or "solver"
    recipe: Recipe
    domain: Domain
    categories: tuple[str, ...]
    examples: ExamplePool  # what each challenger prompt shows
    bandit: Bandit  # this role's curriculum: it picks every training prompt's category
    rng: np.random.Generator  # for the solver's question draws
    base_model: str
    run_dir: Path
    scorer: Scorer


class RoleTrainer(Protocol):
    """One role's policy, trained by GRPO a few steps at a time and sampled in between."""

    def train(self, steps: int, first_step: int, on_step: Callable[[StepBatch], None],
              on_metrics: Callable[[dict[str, float], int], None]) -> None:
        """Steps first_step..first_step+steps-1; `on_step` after each update, `on_metrics`
        with the engine's own metrics (logged under verl/<role>/)."""

    def serving(self, step: int) -> AbstractContextManager[Any]:
        """The role's samplers awake with its latest weights (nested sampling calls share it)."""

    def sample(self, messages: Sequence[str], params: SamplingParams, seed: int) -> list[list[str]]:
        """`params.n` completions per user message."""

    def release(self) -> None:
        """Free what the role's samplers hold (weights, caches) until it next samples or trains."""

    def set_questions(self, questions: Sequence[Question], agreements: Sequence[float]) -> None:
        """The solver's training questions for the next phase (pseudo-labelled)."""

    def save(self, path: Path, step: int) -> None:
        """Everything an exact resume needs (weights, optimizer) into `path`."""

    def restore(self, path: Path, step: int) -> None:
        """Load what `save` wrote."""

    def export_hf(self, path: Path) -> None:
        """The current weights as a Hugging Face model directory."""

    def shutdown(self) -> None:
        """Free the role's workers."""


class Backend(Protocol):
    """Starts the machinery (Ray), builds the roles, stops it all."""

    def prepare_model(self, recipe: Recipe) -> str:
        """The base model's directory (converted on first use where the recipe says so)."""

    def check_memory(self, recipe: Recipe, model: str, prompts: dict[str, str]) -> str | None:
        """Before the start: raise (a RecipeError naming the keys that help) if the run cannot fit
        in the memory available; a warning when the margin is thin. `prompts`: one per role."""

    def start(self, recipe: Recipe) -> None: ...

    def build_role(self, inputs: RoleInputs) -> RoleTrainer: ...

    def stop(self) -> None: ...

    def describe_failure(self, err: BaseException) -> str | None:
        """One line for an error of the backend's workers; None for any other."""
