"""Batched sampling from a causal LM with transformers: the solver's votes and evaluation.

The co-evolution loop samples the frozen solver m times per question (challenger rewards,
dataset building) and greedily on held-out questions. On the CPU this is plain batched
`generate`: prompts are expanded m times, sorted by length so a batch pads little, and cut
into batches of `batch_size` sequences. On a GPU the same interface is served by vLLM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: n completions per prompt; temperature 0 means greedy."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    max_new_tokens: int = 256


@dataclass(frozen=True)
class SamplerStats:
    """Work done by one `generate` call."""

    sequences: int
    generated_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0


class HFSampler:
    """A model held in memory that answers chat prompts in batches."""

    def __init__(self, model_path: str, batch_size: int = 64, dtype: str = "float32") -> None:
        self.model_path = model_path
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
        self.model.eval()
        self.last_stats = SamplerStats(0, 0, 0.0)

    def chat_prompt(self, user_message: str) -> str:
        """The model's chat template applied to one user turn, ready for generation."""
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
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
            for (i, _), text in zip(batch, texts):
                outputs[i].append(text)
        self.last_stats = SamplerStats(len(jobs), tokens, time.monotonic() - start)
        return outputs

    @torch.no_grad()
    def _generate_batch(
        self, batch: list[list[int]], params: SamplingParams
    ) -> tuple[list[str], list[int]]:
        padded = self.tokenizer.pad({"input_ids": batch}, return_tensors="pt")
        kwargs = dict(max_new_tokens=params.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id)
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        out = self.model.generate(**padded, **kwargs)
        new = out[:, padded["input_ids"].shape[1] :]
        counts = [self._length(row) for row in new]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return texts, counts

    def _length(self, row: torch.Tensor) -> int:
        """Generated tokens up to and including the first end-of-sequence token."""
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        for index, token in enumerate(row.tolist()):
            if token in eos_ids:
                return index + 1
        return len(row)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Replace the weights (after a training phase) without reloading from disk."""
        self.model.load_state_dict(state, strict=True)
