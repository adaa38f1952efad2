"""A backend in plain Python for the loop's tests: deterministic sampling and 'training'.

Each role holds a weight version (the number of updates it has had). A completion is a
deterministic function of the prompt, the sample index, the seed and that version, so a run
resumed from a checkpoint redoes exactly what an uninterrupted run did. Training steps build a
batch like verl would (a curriculum-chosen category per prompt, `group_size` responses each),
call the role's scorer, normalise rewards within each group (GRPO) and report the step.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from coevolve.records import Question, Rollout
from coevolve.run.roles import RoleInputs, StepBatch
from coevolve.run.sampling import SamplingParams
from coevolve.selfplay.scoring import SHOWN_KEY
from coevolve.selfplay.steps import challenger_message

WORDS = ("seven", "blue", "river", "stone", "quiet", "north", "apple", "cloud")


class FakeWorkerError(RuntimeError):
    """What a worker of the fake backend raises when told to fail."""


def _draw(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


class FakeRole:
    """One role: `version` counts its updates; save/restore/export write small JSON files."""

    def __init__(self, inputs: RoleInputs, calls: list[str], fail_in_train: bool = False,
                 peers: dict[str, FakeRole] | None = None) -> None:
        self.inputs = inputs
        # Samplers hold weights from `serving` until `release`; `beside_others` counts samplings
        # and trainings that began while another role still held its samplers.
        self.peers = peers if peers is not None else {}
        self.holding, self.releases, self.beside_others = False, 0, 0
        self.role = inputs.role
        self.version = 0
        self.questions: list[Question] = []
        self.calls = calls
        self.fail_in_train = fail_in_train

    def complete(self, message: str, k: int, seed: int, params: SamplingParams) -> str:
        """A question (challenger) or an answer text (solver), fixed by its inputs."""
        draw = _draw(self.role, message, k, 0 if params.temperature == 0 else seed, self.version)
        words = [WORDS[(draw >> (3 * i)) % len(WORDS)] for i in range(2 + draw % 4)]
        return " ".join(words) + ("?" if self.role == "challenger" else "")

    def _check_alone(self) -> None:
        self.beside_others += any(p.holding for name, p in self.peers.items() if name != self.role)

    def release(self) -> None:
        self.holding = False
        self.releases += 1

    def sample(self, messages: Sequence[str], params: SamplingParams, seed: int) -> list[list[str]]:
        self._check_alone()
        self.calls.append(f"{self.role}.sample({len(messages)}x{params.n})")
        return [[self.complete(m, k, seed, params) for k in range(params.n)] for m in messages]

    def train(self, steps: int, first_step: int, on_step: Callable[[StepBatch], None],
              on_metrics: Callable[[dict[str, float], int], None]) -> None:
        recipe = self.inputs.recipe
        settings = getattr(recipe, self.role)
        self._check_alone()
        for step in range(first_step, first_step + steps):
            categories = self.inputs.bandit.sample(settings.batch_size)
            rollouts = [r for c in categories for r in self._group(c, step, settings.group_size)]
            scored = self.inputs.scorer(rollouts)
            if self.fail_in_train:
                raise FakeWorkerError(f"{self.role}: worker died in step {step}")
            rewards = np.asarray(scored.rewards, dtype=float).reshape(len(categories), settings.group_size)
            advantages = (rewards - rewards.mean(1, keepdims=True)) / (rewards.std(1, keepdims=True) + 1e-6)
            self.version += 1
            on_metrics({"actor/pg_loss": 0.1 * step, "actor/grad_norm": 1.0}, step)
            on_step(StepBatch(step, [c for c in categories for _ in range(settings.group_size)],
                              advantages.ravel().tolist(), rewards.ravel().tolist(), scored))
        self.calls.append(f"{self.role}.train({first_step}..{first_step + steps - 1})")

    def _group(self, category: str, step: int, size: int) -> list[Rollout]:
        params = SamplingParams(temperature=1.0)
        if self.role == "challenger":
            shown = self.inputs.examples.draw(category, step)
            message = challenger_message(self.inputs.domain, category, shown)
            info = {"category": category, SHOWN_KEY: json.dumps(shown)}
            return [Rollout(dict(info), "", self.complete(message, k, step, params)) for k in range(size)]
        pool = [q for q in self.questions if q.category == category] or self.questions
        question = pool[_draw(step, category) % len(pool)]
        truth = self.inputs.domain.oracle(question)
        prompt = self.inputs.domain.solver_prompt(question)
        return [Rollout({"category": category, "true_answer": truth or ""}, question.answer or "",
                        self.complete(prompt, k, step, params)) for k in range(size)]

    def set_questions(self, questions: Sequence[Question], agreements: Sequence[float]) -> None:
        self.questions = list(questions)

    def serving(self, step: int):
        self.holding = True
        return nullcontext()

    def save(self, path: Path, step: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "fake_state.json").write_text(json.dumps({"version": self.version, "step": step}))

    def restore(self, path: Path, step: int) -> None:
        self.version = json.loads((path / "fake_state.json").read_text())["version"]
        self.calls.append(f"{self.role}.restore(version {self.version})")

    def export_hf(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"fake": True, "version": self.version}))

    def shutdown(self) -> None:
        self.calls.append(f"{self.role}.shutdown")


class FakeBackend:
    """`roles.Backend` in plain Python; `fail_role` makes that role's worker fail in training."""

    def __init__(self, fail_role: str | None = None) -> None:
        self.calls: list[str] = []
        self.roles: dict[str, FakeRole] = {}
        self.fail_role = fail_role

    def prepare_model(self, recipe) -> str:
        return "fake-base-model"

    def check_memory(self, recipe, model, prompts) -> str | None:
        self.calls.append("check_memory")
        return None

    def start(self, recipe) -> None:
        self.calls.append("start")

    def build_role(self, inputs: RoleInputs) -> FakeRole:
        role = FakeRole(inputs, self.calls, fail_in_train=inputs.role == self.fail_role, peers=self.roles)
        self.roles[inputs.role] = role
        return role

    def stop(self) -> None:
        self.calls.append("stop")

    def describe_failure(self, err: BaseException) -> str | None:
        return f"a fake worker failed: {err}" if isinstance(err, FakeWorkerError) else None
