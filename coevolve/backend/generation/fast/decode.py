"""The fast engine's decode loop: prefill, then one token per row and step until every row is done.

The prompts' shared prefix (a chat template's system turn) is run once, then each distinct
prompt's rest once, its keys and values copied to each of its samples; rows that finished
(end of sequence or their own limit) leave the batch once `COMPACT_SHARE` of it has.
tests/test_fast_decode.py holds every step's distribution to the model's own forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coevolve.backend.generation.fast.kv_cache import KVCache
from coevolve.backend.generation.fast.model import PackedLlama
from coevolve.backend.generation.fast.sampling import processed_logprobs, sample
from coevolve.backend.generation.requests import Generated, SamplingKey, check_batch, cut_response, left_pad

# Finished rows are dropped from the batch once at least this share of it has finished.
COMPACT_SHARE = 0.25


@dataclass
class _Batch:
    """A batch after its prefill: the cache, the prompt columns (left-padded), the position of
    each row's next token, and the final hidden state before its first new token."""

    cache: KVCache
    width: int
    positions: torch.Tensor
    hidden: torch.Tensor


class FastEngine:
    """Samples continuations of token prompts from an HF Llama-family model (held, not copied)."""

    def __init__(self, model, *, eos_ids: frozenset[int], kernels: str = "auto", batch_hint: int = 64) -> None:
        self.llama = PackedLlama(model, kernels=kernels, batch_hint=batch_hint)
        self.eos_ids = eos_ids

    def refresh(self) -> None:
        """Take the model's current weights (call after loading new ones)."""
        self.llama.refresh()

    def packed_parameters(self) -> list[torch.nn.Parameter]:
        """The model's weights the engine holds its own copy of (see `PackedLlama`)."""
        return self.llama.packed_parameters()

    def write_back(self) -> None:
        """Rebuild the model's `packed_parameters` from the engine's copies."""
        self.llama.write_back()

    def release(self) -> None:
        """Free the packed weights (the server empties its model between phases); `refresh` rebuilds."""
        self.llama.release()

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], *, limits: list[int], key: SamplingKey) -> list[Generated]:
        """One continuation per prompt (repeat a prompt for several samples: it is prefilled once).

        Row i stops after `limits[i]` new tokens or at its first end-of-sequence token (kept).
        Draws from torch's global generator (seed it with torch.manual_seed).
        """
        check_batch(prompts, limits)
        if not prompts:
            return []
        batch = self._prefill(prompts, max(limits))
        eos = torch.tensor(sorted(self.eos_ids))
        remaining = torch.tensor(limits)  # new tokens each batch row may still take
        alive = torch.arange(len(prompts))  # the prompt index of each batch row
        finished = torch.zeros(len(prompts), dtype=torch.bool)
        out_tokens: list[list[int]] = [[] for _ in prompts]
        out_logprobs: list[list[float]] = [[] for _ in prompts]
        hidden = batch.hidden
        for step in range(max(limits)):
            chosen, chosen_logprob = sample(self._scores(hidden, key, step), key, key.logprobs)
            _append(out_tokens, alive, chosen)
            if key.logprobs:
                _append(out_logprobs, alive, chosen_logprob)
            remaining -= 1
            finished |= torch.isin(chosen, eos) | (remaining <= 0)
            if bool(finished.all()):
                break
            column = batch.width + step
            batch.cache.attend(column, len(alive))
            if finished.float().mean() >= COMPACT_SHARE:
                keep = (~finished).nonzero().squeeze(1)
                alive, chosen, remaining, finished = alive[keep], chosen[keep], remaining[keep], finished[keep]
                batch.cache.keep(keep, column)
                batch.positions = batch.positions[keep]
            # a finished row still in the batch decodes on; its extra tokens are cut below
            hidden = self.llama.decode(chosen, batch.positions, batch.cache, column)
            batch.positions = batch.positions + 1
        lengths = [cut_response(tokens, limit, self.eos_ids) for tokens, limit in zip(out_tokens, limits, strict=True)]
        return [Generated(tokens[:n], values[:n] if key.logprobs else None)
                for tokens, values, n in zip(out_tokens, out_logprobs, lengths, strict=True)]

    @torch.no_grad()
    def step_logprobs(self, prompts: list[list[int]], continuations: list[list[int]], *,
                      key: SamplingKey) -> list[torch.Tensor]:
        """log p of every token at each step when each continuation's tokens are fed in, under
        the distribution `generate` draws from: (len(continuation) + 1, vocab) per prompt,
        float64, through the same prefill and cached decode steps as `generate`."""
        lengths = {len(c) for c in continuations}
        if len(prompts) != len(continuations) or len(lengths) != 1:
            raise ValueError("one continuation per prompt, all of the same length")
        steps = lengths.pop()
        batch = self._prefill(prompts, steps + 1)
        fed = torch.tensor(continuations, dtype=torch.long).reshape(len(prompts), steps)
        out = [processed_logprobs(self._scores(batch.hidden, key, 0).double(), key)]
        for step in range(steps):
            column = batch.width + step
            batch.cache.attend(column, len(prompts))
            hidden = self.llama.decode(fed[:, step], batch.positions + step, batch.cache, column)
            out.append(processed_logprobs(self._scores(hidden, key, step + 1).double(), key))
        return list(torch.stack(out, dim=1))

    def _scores(self, hidden: torch.Tensor, key: SamplingKey, step: int) -> torch.Tensor:
        """Logits divided by the temperature (greedy: raw), end of sequence masked before
        `key.min_tokens` (vLLM's min_tokens)."""
        scores = self.llama.logits(hidden, 1.0 if key.greedy else key.temperature)
        if step < key.min_tokens:
            scores[:, sorted(self.eos_ids)] = float("-inf")
        return scores

    def _prefill(self, prompts: list[list[int]], steps: int) -> _Batch:
        """The prompts' shared prefix once, each distinct prompt's rest once; then each distinct
        prompt's cache copied to each of its rows.

        Cache columns: [0, shared) the shared prefix, then each prompt's rest, left-padded to
        the longest rest; positions count real tokens only, so padding changes nothing.
        """
        distinct: dict[tuple[int, ...], int] = {}
        source = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
        unique = [list(p) for p in distinct]
        shared = _shared_prefix(unique) if len(unique) > 1 else 0
        rests = [p[shared:] for p in unique]
        width = shared + max(len(r) for r in rests)
        cache = self.llama.new_cache(len(prompts), width + steps)
        if shared:
            prefix = torch.tensor([unique[0][:shared]])
            self.llama.prefill(prefix, valid=torch.ones_like(prefix, dtype=torch.bool),
                               positions=torch.arange(shared)[None], cache=cache, start=0)
            cache.gather(torch.zeros(len(unique), dtype=torch.long), shared)  # every distinct prompt's start
        ids, valid = left_pad(rests, pad_id=0)  # the padding is masked out
        positions = shared + (valid.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.llama.prefill(ids, valid=valid, positions=positions, cache=cache, start=shared)
        cache.attend(slice(0, shared), len(unique))
        cache.attend(slice(shared, width), len(unique), where=valid)
        rows = torch.tensor(source)
        if source != list(range(len(prompts))):
            cache.gather(rows, width)
        next_position = shared + valid[rows].sum(-1)  # the position of each row's first new token
        return _Batch(cache, width, next_position, hidden[rows])


def _shared_prefix(prompts: list[list[int]]) -> int:
    """Length of the prefix all prompts share, leaving each at least its last token."""
    shortest = min(len(p) for p in prompts)
    first = prompts[0]
    length = 0
    while length < shortest - 1 and all(p[length] == first[length] for p in prompts):
        length += 1
    return length


def _append(rows: list[list], alive: torch.Tensor, values: torch.Tensor) -> None:
    """Append each batch row's value to the list of the prompt it belongs to."""
    for row, value in zip(alive.tolist(), values.tolist(), strict=True):
        rows[row].append(value)
