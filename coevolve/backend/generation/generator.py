"""Batched sampling from a causal LM without verl: the engine of `coevolve eval` and the probe.

`HFGenerator` expands the prompts n times, sorts them by length so a batch pads little, and
cuts them into batches of `batch_size` sequences, each sampled by its engine (`engine.py`).
The co-evolution loop itself samples through the roles' rollout servers (`server.py`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from coevolve.backend.generation.engine import load_engine
from coevolve.backend.generation.requests import parse_sampling_params
from coevolve.run.sampling import SamplingParams, chat_messages


@dataclass(frozen=True)
class SamplerStats:
    """Work done by one `generate` call."""

    sequences: int
    generated_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0


class DeviceUnavailable(RuntimeError):
    """The recipe asks for a device this machine does not have."""


def load_generator(recipe, model_path) -> HFGenerator:
    """An HFGenerator of `model_path` on the recipe's device, dtype, threads and vote batch size."""
    device = recipe.resources.device
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("resources.device = 'cuda' but no GPU is visible; "
                           "add resources.device=cpu to sample on the CPU")
    if device == "cpu":
        torch.set_num_threads(recipe.resources.cpu_threads)
    engine = recipe.resources.cpu_engine if device == "cpu" else "generate"
    return HFGenerator(str(model_path), batch_size=recipe.vote.batch_size, dtype=recipe.model.dtype,
                       device=device, engine=engine, system_turn=recipe.model.system_turn)


class HFGenerator:
    """A model held in memory that answers chat prompts in batches."""

    def __init__(self, model_path: str, *, batch_size: int = 64, dtype: str = "float32",
                 device: str = "cpu", engine: str = "fast", system_turn: str = "default") -> None:
        self.model_path = model_path
        self.system_turn = system_turn  # model.system_turn (coevolve/run/sampling.py)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.engine = load_engine(engine, self.model, self.tokenizer, batch_hint=batch_size)
        self.last_stats = SamplerStats(0, 0, 0.0)

    def chat_prompt(self, user_message: str) -> str:
        """The model's chat template applied to one user turn, ready for generation."""
        return self.tokenizer.apply_chat_template(
            chat_messages(user_message, self.system_turn), tokenize=False, add_generation_prompt=True
        )

    def generate(
        self, user_messages: Sequence[str], params: SamplingParams, seed: int = 0
    ) -> list[list[str]]:
        """`params.n` completions for each user message, in the order of `user_messages`."""
        start = time.monotonic()
        prompts = [self.chat_prompt(m) for m in user_messages]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # One entry per sequence to generate: (prompt index, token ids); longest first.
        jobs = sorted(
            ((i, ids) for i, ids in enumerate(encoded) for _ in range(params.n)),
            key=lambda job: -len(job[1]),
        )
        torch.manual_seed(seed)
        outputs: list[list[str]] = [[] for _ in prompts]
        tokens = 0
        for lo in range(0, len(jobs), self.batch_size):
            batch = jobs[lo : lo + self.batch_size]
            texts, counts = self._generate_batch([ids for _, ids in batch], params)
            tokens += sum(counts)
            for (i, _), text in zip(batch, texts, strict=True):
                outputs[i].append(text)
        self.last_stats = SamplerStats(len(jobs), tokens, time.monotonic() - start)
        return outputs

    def _generate_batch(
        self, batch: list[list[int]], params: SamplingParams
    ) -> tuple[list[str], list[int]]:
        key, max_tokens = parse_sampling_params(params.request())
        generated = self.engine.generate(batch, limits=[max_tokens] * len(batch), key=key)
        rows = [g.tokens for g in generated]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True), [len(r) for r in rows]
