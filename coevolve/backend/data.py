"""Between coevolve's records and verl's batches.

verl's trainer pulls items from a torch Dataset through a Sampler. Here the sampler is the
curriculum: it is infinite, runs in the driver (`data.dataloader_num_workers=0`) and draws
each item's category from the bandit when the batch is needed, so the batch of step t+1
already reflects the bandit's update after step t. The datasets turn a drawn index into a
verl item (chat prompt, category, pseudo-label); `decode_rollouts` turns a generated batch
back into (item info, response text) pairs, row by row, never by index arithmetic.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from coevolve.domains.base import Domain
from coevolve.records import Question, Rollout
from coevolve.run.sampling import chat_messages
from coevolve.selfplay.curriculum import Bandit
from coevolve.selfplay.examples import ExamplePool
from coevolve.selfplay.scoring import SHOWN_KEY
from coevolve.selfplay.steps import challenger_message

_STRIDE = 1_000_000_000  # index = category position * _STRIDE + serial number


def _item(message: str, *, data_source: str, ground_truth: str, extra: dict[str, Any], index: int,
          system_turn: str) -> dict:
    return {
        "raw_prompt": chat_messages(message, system_turn),
        "data_source": data_source,
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": {**extra, "index": index},
        "index": index,
        "tools_kwargs": {},
        "interaction_kwargs": {},
        "dummy_tensor": torch.tensor([0], dtype=torch.uint8),
    }


class ChallengerPrompts(Dataset):
    """Index -> "write one question of category c" (the challenger's prompts)."""

    def __init__(self, domain: Domain, categories: Sequence[str], examples: ExamplePool,
                 system_turn: str = "default") -> None:
        self.domain, self.categories, self.examples = domain, tuple(categories), examples
        self.system_turn = system_turn

    def __len__(self) -> int:
        return len(self.categories) * _STRIDE

    def index_of(self, category: str, serial: int) -> int:
        return self.categories.index(category) * _STRIDE + serial % _STRIDE

    def __getitem__(self, index: int) -> dict:
        category = self.categories[index // _STRIDE]
        shown = self.examples.draw(category, index)
        message = challenger_message(self.domain, category, shown)
        return _item(message, data_source="coevolve/challenger", ground_truth="",
                     extra={"category": category, SHOWN_KEY: json.dumps(shown)}, index=index,
                     system_turn=self.system_turn)


class SolverQuestions(Dataset):
    """Pseudo-labelled questions -> solver items, grouped by category for the sampler."""

    def __init__(self, domain: Domain, questions: Sequence[Question], oracle: bool = True,
                 system_turn: str = "default") -> None:
        if not questions:
            raise ValueError("the solver dataset is empty: no question passed the filters")
        self.domain, self.questions = domain, list(questions)
        self.system_turn = system_turn
        self.by_category: dict[str, list[int]] = {}
        for i, q in enumerate(self.questions):
            self.by_category.setdefault(q.category, []).append(i)
        self.truths = [domain.oracle(q) if oracle else None for q in self.questions]

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, index: int) -> dict:
        q = self.questions[index]
        extra = {"category": q.category, "question_id": q.id, "true_answer": self.truths[index] or ""}
        return _item(self.domain.solver_prompt(q), data_source="coevolve/solver", ground_truth=q.answer or "",
                     extra=extra, index=index, system_turn=self.system_turn)


class CurriculumSampler(Sampler[int]):
    """Infinite sampler: each item's category is drawn from the bandit when it is needed."""

    def __init__(self, bandit: Bandit, pick: Callable[[str], int], allowed: Sequence[str] | None = None,
                 batch_size: int = 1) -> None:
        self.bandit, self.pick, self.batch_size = bandit, pick, batch_size
        self.allowed = tuple(allowed) if allowed is not None else None

    def __iter__(self) -> Iterator[int]:
        while True:  # the trainer stops after its steps; a fresh iter() per phase is fine
            for category in self.bandit.sample(self.batch_size, allowed=self.allowed):
                yield self.pick(category)

    def __len__(self) -> int:
        return _STRIDE


def challenger_picker(dataset: ChallengerPrompts) -> Callable[[str], int]:
    serial = itertools.count()
    return lambda category: dataset.index_of(category, next(serial))


def solver_picker(dataset: SolverQuestions, rng: np.random.Generator) -> Callable[[str], int]:
    """Cycle through each category's questions in a shuffled order, reshuffled per pass."""
    queues: dict[str, list[int]] = {c: [] for c in dataset.by_category}

    def pick(category: str) -> int:
        if not queues[category]:
            queues[category] = list(rng.permutation(dataset.by_category[category]))
        return int(queues[category].pop())

    return pick


def weighted_picker(dataset: SolverQuestions, weights: Sequence[float],
                    rng: np.random.Generator) -> Callable[[str], int]:
    """Draw each category's questions with replacement, in proportion to `weights`."""
    if len(weights) != len(dataset):
        raise ValueError(f"{len(weights)} weights for {len(dataset)} questions")
    members = {c: np.asarray(idx) for c, idx in dataset.by_category.items()}
    probs = {c: np.asarray([weights[i] for i in idx], dtype=float) for c, idx in members.items()}
    probs = {c: p / p.sum() for c, p in probs.items()}
    return lambda category: int(rng.choice(members[category], p=probs[category]))


def decode_rollouts(batch, tokenizer) -> list[Rollout]:
    """The rows of a verl generation output as `Rollout`s, in row order."""
    responses = batch.batch["responses"]
    prompt_length = batch.batch["prompts"].shape[1]
    lengths = batch.batch["attention_mask"][:, prompt_length:].sum(-1).tolist()
    texts = tokenizer.batch_decode(
        [row[:n] for row, n in zip(responses.tolist(), lengths, strict=True)], skip_special_tokens=True
    )
    infos = batch.non_tensor_batch["extra_info"]
    truths = [rm["ground_truth"] for rm in batch.non_tensor_batch["reward_model"]]
    return [Rollout(dict(info), truth, text) for info, truth, text in zip(infos, truths, texts, strict=True)]


def sequence_advantages(batch) -> list[float]:
    """Token-mean advantage of each response (GRPO's is the same on every token)."""
    advantages, mask = batch.batch["advantages"], batch.batch["response_mask"]
    return ((advantages * mask).sum(-1) / mask.sum(-1).clamp(min=1)).tolist()


def sequence_rewards(batch) -> list[float]:
    return batch.batch["token_level_scores"].sum(-1).tolist()


def categories_of(batch) -> list[str]:
    return [info["category"] for info in batch.non_tensor_batch["extra_info"]]


def as_object_array(values: Sequence[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array
