"""One engine per model: "fast" (coevolve's decode loop, `fast/`) or "generate"
(`transformers.generate`, `transformers_engine.py`), both answering
`generate(prompts, limits=, key=)` with `Generated` rows, `step_logprobs`, `refresh` (take the
model's new weights), `release` (drop any copy of them), `packed_parameters` (the model's weights
it holds its own copy of) and `write_back` (those rebuilt from its copy).
"""

from __future__ import annotations

from typing import Protocol

import torch

from coevolve.backend.generation.fast.decode import FastEngine
from coevolve.backend.generation.requests import Generated, SamplingKey, check_engine
from coevolve.backend.generation.transformers_engine import TransformersEngine


class Engine(Protocol):
    def generate(self, prompts: list[list[int]], *, limits: list[int], key: SamplingKey) -> list[Generated]: ...

    def step_logprobs(self, prompts: list[list[int]], continuations: list[list[int]], *,
                      key: SamplingKey) -> list[torch.Tensor]: ...

    def refresh(self) -> None: ...

    def release(self) -> None: ...

    def packed_parameters(self) -> list[torch.nn.Parameter]: ...

    def write_back(self) -> None: ...


def end_of_sequence_ids(model, tokenizer) -> frozenset[int]:
    """Every token that ends a generation: the generation config's and the tokenizer's EOS."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    ids.discard(None)
    if not ids:
        raise ValueError("the model has no end-of-sequence token: generation would never stop")
    return frozenset(int(i) for i in ids)


def padding_id(model, tokenizer, eos_ids: frozenset[int]) -> int:
    """The tokenizer's padding token, else the generation config's, else an end-of-sequence one
    (padding is masked out, so any token does)."""
    for candidate in (tokenizer.pad_token_id, model.generation_config.pad_token_id):
        if candidate is not None:
            return int(candidate)
    return min(eos_ids)


def load_engine(name: str, model, tokenizer, *, batch_hint: int) -> Engine:
    """The engine `name` (recipe key resources.cpu_engine) on `model`.

    The fast engine runs on the CPU only and refuses (`UnsupportedModel`) an architecture it
    does not implement; `batch_hint` is its usual rows per call.
    """
    eos_ids = end_of_sequence_ids(model, tokenizer)
    if check_engine(name) == "generate":
        return TransformersEngine(model, eos_ids=eos_ids, pad_id=padding_id(model, tokenizer, eos_ids))
    if model.device.type != "cpu":
        raise ValueError(f"engine 'fast' decodes on the CPU; use engine 'generate' on {model.device.type!r}")
    return FastEngine(model, eos_ids=eos_ids, batch_hint=batch_hint)
