"""Plain batched sampling from a causal LM with transformers, and the helpers it shares.

`HFGenerator` is batched sampling without verl: prompts are expanded n times, sorted by length
so a batch pads little, and cut into batches of `batch_size` sequences, each sampled by
coevolve's decode loop (engine "fast", `fast_decode.FastDecoder`) or by `transformers.generate`
(engine "generate", the baseline tools/bench_generation.py measures against). It is the engine of
`coevolve eval` (on the CPU or one GPU) and a generator for tools;
the co-evolution loop itself samples through the roles' rollout servers. `end_of_sequence_ids`
and `hf_requests.cut_response` define, for every path, where a generated row ends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from coevolve.backend.generation.fast import FastDecoder
from coevolve.backend.generation.requests import check_engine, cut_response, parse_sampling_params
from coevolve.run.sampling import SamplingParams, chat_messages


def end_of_sequence_ids(model, tokenizer) -> frozenset[int]:
    """Every token that ends a generation: the generation config's and the tokenizer's EOS."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    ids.discard(None)
    if not ids:
        raise ValueError("the model has no end-of-sequence token: generation would never stop")
    return frozenset(int(i) for i in ids)


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
        if check_engine(engine) == "fast" and device != "cpu":
            raise ValueError(f"engine 'fast' decodes on the CPU; use engine 'generate' on {device!r}")
        self.model_path = model_path
        self.system_turn = system_turn  # model.system_turn (coevolve/run/sampling.py)
        self.engine = engine
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.eos_ids = end_of_sequence_ids(self.model, self.tokenizer)
        # the fast engine refuses (UnsupportedModel) an architecture it does not implement
        self.decoder = FastDecoder(self.model, batch_hint=batch_size) if engine == "fast" else None
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
        if self.decoder is None:
            return self._transformers_batch(batch, params)
        key, max_tokens = parse_sampling_params(params.request())
        generated = self.decoder.generate(batch, [max_tokens] * len(batch), key, self.eos_ids)
        rows = [g.tokens for g in generated]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True), [len(r) for r in rows]

    @torch.no_grad()
    def _transformers_batch(
        self, batch: list[list[int]], params: SamplingParams
    ) -> tuple[list[str], list[int]]:
        padded = self.tokenizer.pad({"input_ids": batch}, return_tensors="pt").to(self.device)
        kwargs = dict(max_new_tokens=params.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id)
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        out = self.model.generate(**padded, **kwargs)
        new = out[:, padded["input_ids"].shape[1] :]
        counts = [cut_response(row, len(row), self.eos_ids) for row in new.tolist()]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return texts, counts
