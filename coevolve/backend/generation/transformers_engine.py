"""The "generate" engine: `transformers.generate` on a left-padded batch, any architecture.

The warpers are built here in vLLM's order (temperature, top-k, top-p) and generate is told
to add none of its own, so the model's generation config changes nothing; each row stops at
its own limit. The baseline `make bench-generation` measures the fast engine against.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from coevolve.backend.generation.requests import Generated, SamplingKey, check_batch, cut_response, left_pad


class TransformersEngine:
    """Samples continuations of token prompts with the model's own `generate` (held, not copied)."""

    def __init__(self, model, *, eos_ids: frozenset[int], pad_id: int) -> None:
        self.model = model
        self.eos_ids = eos_ids
        self.pad_id = pad_id

    def refresh(self) -> None:
        """Nothing to do: generate reads the model's weights where they are."""

    def release(self) -> None:
        """Nothing to do: the engine holds no copy of the weights."""

    def packed_parameters(self) -> list:
        """None: generate reads the model's own weights."""
        return []

    def write_back(self) -> None:
        """Nothing to do: the engine holds no copy of the weights."""

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], *, limits: list[int], key: SamplingKey) -> list[Generated]:
        """One continuation per prompt, row i cut after `limits[i]` tokens or at its first
        end-of-sequence token (kept). Draws from torch's global generator."""
        check_batch(prompts, limits)
        if not prompts:
            return []
        input_ids, valid = left_pad(prompts, self.pad_id)
        attention_mask, width = valid.long(), input_ids.shape[1]
        max_new = max(limits)
        processors = logits_processors(key)
        recorder = ChosenTokenLogprobs() if key.logprobs else None
        if recorder is not None:
            processors.append(recorder)
        # neutral values for generate's own warpers, which would otherwise come from the generation config
        sampling = {} if key.greedy else {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
        sequences = self.model.generate(
            input_ids=input_ids.to(self.model.device),
            attention_mask=attention_mask.to(self.model.device),
            max_new_tokens=max_new,
            min_new_tokens=min(key.min_tokens, max_new),
            do_sample=not key.greedy,
            repetition_penalty=1.0,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList([RowLimits(limits, width)]),
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            **sampling,
        ).cpu()
        logprobs = recorder.finish(sequences).cpu() if recorder is not None else None
        generated = []
        for row, (tokens, limit) in enumerate(zip(sequences[:, width:].tolist(), limits, strict=True)):
            tokens = tokens[: cut_response(tokens, limit, self.eos_ids)]
            row_logprobs = None if logprobs is None else logprobs[row, : len(tokens)].tolist()
            generated.append(Generated(tokens, row_logprobs))
        return generated

    @torch.no_grad()
    def step_logprobs(self, prompts: list[list[int]], continuations: list[list[int]], *,
                      key: SamplingKey) -> list[torch.Tensor]:
        """log p of every token at each step when each continuation's tokens are fed in, under
        the processors `generate` samples with: (len(continuation) + 1, vocab) per prompt,
        float64, from one forward pass over each whole row."""
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        out = []
        for prompt, continuation in zip(prompts, continuations, strict=True):
            ids = torch.tensor([prompt + continuation], device=self.model.device)
            scores = self.model(input_ids=ids).logits[0, len(prompt) - 1 :].float()
            scores[: key.min_tokens, sorted(self.eos_ids)] = float("-inf")
            for processor in logits_processors(key):
                scores = processor(ids, scores)
            out.append(torch.log_softmax(scores.double(), -1).cpu())
        return out


class ChosenTokenLogprobs(LogitsProcessor):
    """Records log p(chosen token) under the fully processed distribution, one step at a time.

    Placed last in the processor list, it sees step t's final scores before the token is
    drawn; the drawn token shows up as the last input id at step t+1 (or at the end of the
    returned sequences), so only one step's (batch, vocab) scores are ever held.
    """

    def __init__(self) -> None:
        self._pending: torch.Tensor | None = None
        self._steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._settle(input_ids[:, -1])
        self._pending = scores
        return scores

    def _settle(self, chosen: torch.Tensor) -> None:
        if self._pending is not None:
            picked = self._pending.gather(1, chosen[:, None]).squeeze(1)
            self._steps.append(picked - torch.logsumexp(self._pending, dim=-1))
            self._pending = None

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """(batch, new tokens) log-probs, once generation has returned `sequences`."""
        self._settle(sequences[:, -1])
        return torch.stack(self._steps, dim=1)


class RowLimits(StoppingCriteria):
    """Stops each row at its own new-token limit, so a chunk ends when its last row is done."""

    def __init__(self, limits: list[int], prompt_width: int) -> None:
        self.limits = torch.tensor(limits)
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.prompt_width) >= self.limits


def logits_processors(key: SamplingKey) -> list[LogitsProcessor]:
    """Sampling warpers in vLLM's order; generate() is told to add none of its own."""
    if key.greedy:
        return []
    warpers: list[LogitsProcessor] = []
    if key.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(key.temperature))
    if key.top_k > 0:
        warpers.append(TopKLogitsWarper(key.top_k))
    if key.top_p < 1.0:
        warpers.append(TopPLogitsWarper(key.top_p))
    return warpers
