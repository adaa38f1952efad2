"""Fast sampling from a Llama-family causal LM on the CPU: coevolve's own decode loop.

`transformers.generate` spends most of a CPU decode step outside useful matmuls: every sample
of a prompt prefills the whole prompt again, finished rows keep decoding until the longest is
done, its dynamic cache grows by concatenation, `torch.multinomial` over 49k tokens takes
~0.4 s for 256 rows, and torch's matmul reaches half the machine's rate on decode shapes.
`FastDecoder` runs the same model, with the same weights, and samples the same distribution:

- prefill: the prefix all prompts of a batch share (the chat template's system turn) once,
  then each distinct prompt's rest once, its keys and values copied to each of its samples;
- a key/value cache allocated once per call and written in place; grouped-query attention
  without repeating keys and values;
- q/k/v and gate/up fused into one projection each, every weight pre-packed for oneDNN
  (1.3-2x torch's matmul at 64-256 rows here); `refresh` re-packs after new weights are
  loaded, which is the whole weight-sync cost (~0.2 s for SmolLM2-135M);
- rows that finished (end of sequence or their own limit) leave the batch;
- the temperature divides the hidden state before the output layer; top-k works on the k
  best tokens, top-p on the smallest candidate set that provably holds the nucleus; a token
  is drawn by inverting the cumulative distribution (one exp, one cumsum, a binary search).

The distribution each token is drawn from is the model's (tests/test_fast_decode.py compares
every step's full distribution with the model's own forward pass, and the rollout's recorded
log-probabilities with the actor's); a drawn token's log-probability is taken under the
processed distribution, as the HF path records it. `make bench-generation` measures it.

Architectures: those whose decoder layer is Llama's (`llama`; `qwen2` adds q/k/v biases).
Any other raises `UnsupportedModel` naming it: the recipe then sets
`resources.cpu_engine: generate` (transformers.generate); nothing falls back silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from coevolve.backend.generation.requests import SamplingKey, cut_response

SUPPORTED_MODEL_TYPES = ("llama", "qwen2")
# When top-p has no top-k to work in, the nucleus is first looked for among this many of the
# most likely tokens; when some row's nucleus is larger, the batch sorts the whole vocabulary.
NUCLEUS_CANDIDATES = 256
# Finished rows are dropped from the batch once at least this share of it has finished.
COMPACT_SHARE = 0.25


class UnsupportedModel(ValueError):
    """The model's architecture is not one the fast decoder implements."""


@dataclass(frozen=True)
class Generated:
    """One sampled continuation: its tokens (cut at its limit, end-of-sequence included)."""

    tokens: list[int]
    logprobs: list[float] | None


@dataclass
class _Started:
    """The state of a batch after its prefill."""

    cache: torch.Tensor  # (layers, 2, rows, kv heads, columns, head dim)
    width: int  # prompt columns (left-padded)
    key_mask: torch.Tensor  # (rows, columns): which columns each row attends to
    positions: torch.Tensor  # (rows,): position of the next token
    hidden: torch.Tensor  # (rows, hidden size): final hidden state before the first new token


@dataclass
class _Layer:
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor | None
    o_weight: torch.Tensor
    gate_up_weight: torch.Tensor
    down_weight: torch.Tensor
    input_norm: torch.Tensor
    post_norm: torch.Tensor


def choose_kernels(kernels: str, dtype: torch.dtype) -> str:
    """The matmul kernels: "onednn" (weights pre-packed for oneDNN: 1.3-2x torch's matmul on
    the decode shapes here, tools/bench_generation.py) or "torch" (F.linear); "auto" takes
    oneDNN for float32 where torch was built with it."""
    if kernels == "auto":
        return "onednn" if torch.backends.mkldnn.is_available() and dtype == torch.float32 else "torch"
    if kernels not in ("onednn", "torch"):
        raise ValueError(f"kernels must be auto, onednn or torch, not {kernels!r}")
    if kernels == "onednn" and not torch.backends.mkldnn.is_available():
        raise ValueError("kernels='onednn' but this torch build has no oneDNN (mkldnn)")
    return kernels


def check_supported(model) -> None:
    """Raise UnsupportedModel unless `model` is a causal LM the fast decoder implements."""
    config = model.config
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModel(
            f"the fast decoder implements {', '.join(SUPPORTED_MODEL_TYPES)} models, not {model_type!r}; "
            "use engine 'generate' (transformers.generate) for this model"
        )
    if getattr(config, "hidden_act", "silu") != "silu":
        raise UnsupportedModel(f"the fast decoder implements SiLU MLPs, not hidden_act={config.hidden_act!r}")
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", False):
        raise UnsupportedModel("the fast decoder does not implement sliding-window attention")
    attention = model.model.layers[0].self_attn
    if attention.o_proj.bias is not None or model.model.layers[0].mlp.down_proj.bias is not None:
        raise UnsupportedModel("the fast decoder does not implement output or MLP biases")


class FastDecoder:
    """Samples continuations of token prompts from an HF Llama-family model (held, not copied)."""

    def __init__(self, model, kernels: str = "auto", batch_hint: int = 64) -> None:
        """`batch_hint`: the usual rows per call, for which oneDNN lays the weights out."""
        check_supported(model)
        self.model = model
        self.kernels = choose_kernels(kernels, model.dtype)
        self.batch_hint = batch_hint
        config = model.config
        self.n_heads = config.num_attention_heads
        self.n_kv = getattr(config, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.n_heads
        self.eps = config.rms_norm_eps
        self.q_size = self.n_heads * self.head_dim
        self.kv_size = self.n_kv * self.head_dim
        self.scale = self.head_dim**-0.5
        self.refresh()

    def refresh(self) -> None:
        """Take the model's current weights (call after loading new ones)."""
        self.layers, self.lm_head = [], None  # the old packed copies go before the new are made
        layers = []
        for layer in self.model.model.layers:
            attn, mlp = layer.self_attn, layer.mlp
            qkv_bias = None
            if attn.q_proj.bias is not None:
                qkv_bias = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]).detach()
            layers.append(_Layer(
                qkv_weight=self._pack(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])),
                qkv_bias=qkv_bias,
                o_weight=self._pack(attn.o_proj.weight),
                gate_up_weight=self._pack(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])),
                down_weight=self._pack(mlp.down_proj.weight),
                input_norm=layer.input_layernorm.weight.detach(),
                post_norm=layer.post_attention_layernorm.weight.detach(),
            ))
        self.layers = layers
        self.embed = self.model.model.embed_tokens.weight.detach()
        self.final_norm = self.model.model.norm.weight.detach()
        self.lm_head = self._pack(self.model.lm_head.weight)
        self.dtype = self.embed.dtype

    def _pack(self, weight: torch.Tensor) -> torch.Tensor:
        """A weight (out, in) in the layout the kernels want: oneDNN's blocked one, or as is."""
        weight = weight.detach()
        if self.kernels == "onednn":
            return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), self.batch_hint)
        return weight

    def _linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if self.kernels == "torch":
            return F.linear(x, weight, bias)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")
        return out.reshape(*x.shape[:-1], out.shape[-1])

    # -- the model ----------------------------------------------------------------------------

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * x32.to(x.dtype)

    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape (*positions.shape, head_dim), from the model's own rotary module."""
        flat = positions.reshape(1, -1)
        cos, sin = self.model.model.rotary_emb(self.embed[:1], flat)
        shape = (*positions.shape, self.head_dim)
        return cos.reshape(shape).to(self.dtype), sin.reshape(shape).to(self.dtype)

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        gate_up = self._linear(self._norm(x, layer.post_norm), layer.gate_up_weight)
        gate, up = gate_up.chunk(2, dim=-1)
        return self._linear(F.silu(gate) * up, layer.down_weight)

    def _qkv(self, layer: _Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """q (…, heads, d), k and v (…, kv heads, d) of normalised `x`, RoPE applied to q and k."""
        qkv = self._linear(self._norm(x, layer.input_norm), layer.qkv_weight, layer.qkv_bias)
        q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        lead = x.shape[:-1]
        q = q.reshape(*lead, self.n_heads, self.head_dim)
        k = k.reshape(*lead, self.n_kv, self.head_dim)
        v = v.reshape(*lead, self.n_kv, self.head_dim)
        q = self._rotate(q, cos.unsqueeze(-2), sin.unsqueeze(-2))
        k = self._rotate(k, cos.unsqueeze(-2), sin.unsqueeze(-2))
        return q, k, v

    def _prefill(self, ids: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor, cache: torch.Tensor,
                 start: int) -> torch.Tensor:
        """Run a block of tokens (rows, width) into cache columns [start, start + width).

        Each row attends to cache columns [0, start) (a shared prefix already there, all valid)
        and, causally, to the valid tokens of its own block. Returns the final hidden state of
        each row's last column.
        """
        count, width = ids.shape
        causal = torch.ones((width, width), dtype=torch.bool).tril()
        # a padding query attends to itself only, so that no row of the mask is empty
        block = (causal & valid[:, None, :]) | torch.eye(width, dtype=torch.bool)
        mask = torch.cat([torch.ones((count, width, start), dtype=torch.bool), block], dim=-1)[:, None]
        cos, sin = self._rope(positions)
        x = F.embedding(ids, self.embed)
        end = start + width
        for index, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, x, cos, sin)  # (count, width, heads, d)
            cache[index, 0, :count, :, start:end] = k.transpose(1, 2)
            cache[index, 1, :count, :, start:end] = v.transpose(1, 2)
            keys, values = cache[index, 0, :count, :, :end], cache[index, 1, :count, :, :end]
            attn = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask, enable_gqa=True)
            x = x + self._linear(attn.transpose(1, 2).reshape(count, width, self.q_size), layer.o_weight)
            x = x + self._mlp(layer, x)
        return self._norm(x[:, -1], self.final_norm)

    def _decode_step(
        self, tokens: torch.Tensor, positions: torch.Tensor, cache: torch.Tensor, column: int, key_mask: torch.Tensor
    ) -> torch.Tensor:
        """The final hidden state after `tokens` (batch,), written at cache column `column`."""
        batch = tokens.shape[0]
        cos, sin = self._rope(positions)
        x = F.embedding(tokens, self.embed)
        length = column + 1
        bias = torch.zeros(key_mask[:, :length].shape, dtype=self.dtype).masked_fill_(~key_mask[:, :length], float("-inf"))
        bias = bias[:, None, None, :]  # (batch, 1, 1, length)
        group = self.n_heads // self.n_kv
        for index, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, x, cos, sin)  # q (batch, heads, d)
            cache[index, 0, :batch, :, column] = k
            cache[index, 1, :batch, :, column] = v
            keys = cache[index, 0, :batch, :, :length]  # (batch, kv, length, d)
            values = cache[index, 1, :batch, :, :length]
            q = q.reshape(batch, self.n_kv, group, self.head_dim)
            scores = torch.matmul(q, keys.transpose(-1, -2)) * self.scale + bias
            attn = torch.matmul(torch.softmax(scores, dim=-1), values)  # (batch, kv, group, d)
            x = x + self._linear(attn.reshape(batch, self.q_size), layer.o_weight)
            x = x + self._mlp(layer, x)
        return self._norm(x, self.final_norm)

    def _scores(self, hidden: torch.Tensor, key: SamplingKey) -> torch.Tensor:
        """Logits divided by the temperature (greedy: raw logits).

        The division is applied to the hidden state before the output projection (576 numbers
        a row instead of 49k; equal up to float rounding).
        """
        if not (key.greedy or key.temperature == 1.0):
            hidden = hidden * (1.0 / key.temperature)
        return self._linear(hidden, self.lm_head).float()  # sampling sums probabilities: float32

    # -- sampling -----------------------------------------------------------------------------

    def _start(self, prompts: list[list[int]], steps: int) -> _Started:
        """Prefill: the prompts' shared prefix once, each distinct prompt's rest once; then
        copy each distinct prompt's cache to each of its rows.

        Cache columns: [0, shared) the shared prefix, then each prompt's rest, left-padded to
        the longest rest; positions count real tokens only, so padding changes nothing.
        """
        distinct: dict[tuple[int, ...], int] = {}
        source = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
        unique = [list(p) for p in distinct]
        shared = _shared_prefix(unique) if len(unique) > 1 else 0
        rests = [p[shared:] for p in unique]
        width = shared + max(len(r) for r in rests)
        cache = torch.empty(
            (len(self.layers), 2, len(prompts), self.n_kv, width + steps, self.head_dim),
            dtype=self.dtype,
        )
        if shared:
            prefix = torch.tensor([unique[0][:shared]])
            self._prefill(prefix, torch.ones_like(prefix, dtype=torch.bool), torch.arange(shared)[None], cache, 0)
            cache[:, :, 1 : len(unique), :, :shared] = cache[:, :, :1, :, :shared]
        ids, valid = _left_pad(rests)
        positions = shared + (valid.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self._prefill(ids, valid, positions, cache, shared)
        rows = torch.tensor(source)
        if source != list(range(len(prompts))):
            cache[:, :, : len(prompts), :, :width] = cache[:, :, rows, :, :width]  # indexing copies
        key_mask = torch.zeros((len(prompts), width + steps), dtype=torch.bool)
        key_mask[:, :shared] = True
        key_mask[:, shared:width] = valid[rows]
        next_position = shared + valid[rows].sum(-1)  # the position of each row's first new token
        return _Started(cache, width, key_mask, next_position, hidden[rows])

    @torch.no_grad()
    def step_logits(self, prompts: list[list[int]], continuations: list[list[int]]) -> list[torch.Tensor]:
        """The logits sampling sees at each step when each continuation's tokens are fed in.

        (len(continuation) + 1, vocab) per prompt, through the same prefill and cached decode
        steps as `generate`: what the tests compare with the model's own forward pass.
        """
        lengths = {len(c) for c in continuations}
        if len(prompts) != len(continuations) or len(lengths) != 1:
            raise ValueError("one continuation per prompt, all of the same length")
        steps = lengths.pop()
        state = self._start(prompts, steps + 1)
        fed = torch.tensor(continuations, dtype=torch.long).reshape(len(prompts), steps)
        raw = SamplingKey(temperature=1.0)
        out = [self._scores(state.hidden, raw)]
        for step in range(steps):
            column = state.width + step
            state.key_mask[:, column] = True
            hidden = self._decode_step(fed[:, step], state.positions + step, state.cache, column, state.key_mask)
            out.append(self._scores(hidden, raw))
        return list(torch.stack(out, dim=1))

    @torch.no_grad()
    def generate(
        self,
        prompts: list[list[int]],
        limits: list[int],
        key: SamplingKey,
        eos_ids: frozenset[int],
        logprobs: bool = False,
    ) -> list[Generated]:
        """One continuation per prompt (repeat a prompt for several samples: it is prefilled once).

        Row i stops after `limits[i]` new tokens or at its first end-of-sequence token (kept).
        Draws from torch's global generator (seed it with torch.manual_seed).
        """
        if len(prompts) != len(limits):
            raise ValueError(f"{len(prompts)} prompts but {len(limits)} limits")
        if not prompts:
            return []
        if any(limit < 1 for limit in limits) or any(not p for p in prompts):
            raise ValueError("every prompt needs a token and every limit must be >= 1")
        state = self._start(prompts, max(limits))
        eos = torch.tensor(sorted(eos_ids))
        remaining = torch.tensor(limits)  # new tokens each batch row may still take
        alive = torch.arange(len(prompts))  # the prompt index of each batch row
        finished = torch.zeros(len(prompts), dtype=torch.bool)
        out_tokens: list[list[int]] = [[] for _ in prompts]
        out_logprobs: list[list[float]] = [[] for _ in prompts]
        hidden = state.hidden
        for step in range(max(limits)):
            scores = self._scores(hidden, key)
            if step < key.min_tokens:
                scores[:, eos] = float("-inf")
            chosen, chosen_logprob = sample(scores, key, logprobs)
            _append(out_tokens, alive, chosen)
            if logprobs:
                _append(out_logprobs, alive, chosen_logprob)
            remaining -= 1
            finished |= torch.isin(chosen, eos) | (remaining <= 0)
            if bool(finished.all()):
                break
            column = state.width + step
            state.key_mask[: len(alive), column] = True
            if finished.float().mean() >= COMPACT_SHARE:
                keep = (~finished).nonzero().squeeze(1)
                alive, chosen, remaining, finished = alive[keep], chosen[keep], remaining[keep], finished[keep]
                _keep_rows(state, keep, column)
            # a finished row still in the batch decodes on; its extra tokens are cut below
            hidden = self._decode_step(chosen, state.positions, state.cache, column, state.key_mask[: len(alive)])
            state.positions = state.positions + 1
        lengths = [cut_response(tokens, limit, eos_ids) for tokens, limit in zip(out_tokens, limits, strict=True)]
        return [Generated(tokens[:n], values[:n] if logprobs else None)
                for tokens, values, n in zip(out_tokens, out_logprobs, lengths, strict=True)]


def _shared_prefix(prompts: list[list[int]]) -> int:
    """Length of the prefix all prompts share, leaving each at least its last token."""
    shortest = min(len(p) for p in prompts)
    first = prompts[0]
    length = 0
    while length < shortest - 1 and all(p[length] == first[length] for p in prompts):
        length += 1
    return length


def _left_pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, valid) of the rows left-padded to the longest (padding id 0, masked out)."""
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    for index, row in enumerate(rows):
        ids[index, width - len(row):] = torch.tensor(row)
        valid[index, width - len(row):] = True
    return ids, valid


def _append(rows: list[list], alive: torch.Tensor, values: torch.Tensor) -> None:
    """Append each batch row's value to the list of the prompt it belongs to."""
    for row, value in zip(alive.tolist(), values.tolist(), strict=True):
        rows[row].append(value)


def _keep_rows(state: _Started, keep: torch.Tensor, columns: int) -> None:
    """Move the rows `keep` to the front of the batch (cache columns [0, columns) are filled)."""
    # indexing by a tensor copies, so the overlapping move reads the old rows
    state.cache[:, :, : len(keep), :, :columns] = state.cache[:, :, keep, :, :columns]
    state.key_mask[: len(keep)] = state.key_mask[keep]
    state.positions = state.positions[keep]


def sample(scores: torch.Tensor, key: SamplingKey, want_logprobs: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Draw one token per row as `key` says; and log p(token) under the processed distribution.

    `scores` are the logits divided by the temperature (greedy: the raw logits).
    """
    if key.greedy:
        chosen = scores.argmax(-1)
        if not want_logprobs:
            return chosen, None
        return chosen, _pick(scores, chosen[:, None]) - torch.logsumexp(scores, -1)
    candidates, ids = _candidates(scores, key)
    if candidates is None:  # the whole vocabulary
        return _draw(scores, want_logprobs)
    pick, logprob = _draw(candidates, want_logprobs)
    return ids.gather(1, pick[:, None]).squeeze(1), logprob


def _draw(scores: torch.Tensor, want_logprobs: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Index drawn per row with probability softmax(scores), by inverting the cumulative sum.

    torch.multinomial takes ~0.4 s for 256 rows of 49k tokens here; one exp, one cumsum and a
    binary search take a tenth of that. Tokens of zero probability (-inf) are never drawn.
    """
    top = scores.max(-1, keepdim=True).values
    cdf = torch.exp(scores - top).cumsum_(-1)
    total = cdf[:, -1:]
    u = torch.rand(total.shape, dtype=total.dtype) * total
    chosen = torch.searchsorted(cdf, u, right=True).clamp_(max=scores.shape[-1] - 1).squeeze(1)
    if not want_logprobs:
        return chosen, None
    return chosen, _pick(scores, chosen[:, None]) - top.squeeze(1) - torch.log(total.squeeze(1))


def _pick(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return values.gather(1, index).squeeze(1)


def _candidates(scores: torch.Tensor, key: SamplingKey) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(candidate scores, -inf outside the kept set; their token ids), or (None, None) for all.

    Candidates are sorted by descending score. Top-k keeps the k highest, and every token tied
    with the k-th (as transformers' TopKLogitsWarper does); top-p then keeps the smallest
    prefix whose probability reaches top_p (at least one token), as its TopPLogitsWarper does.
    """
    vocab = scores.shape[-1]
    if 0 < key.top_k < vocab:
        values, ids = _top_k(scores, key.top_k)
        return (_nucleus(values, key.top_p) if key.top_p < 1.0 else values), ids
    if key.top_p >= 1.0:
        return None, None
    width = min(NUCLEUS_CANDIDATES, vocab)
    values, ids = scores.topk(width, dim=-1)
    total = torch.logsumexp(scores, -1, keepdim=True)
    covered = torch.exp(values - total).sum(-1)
    if width == vocab or bool((covered >= key.top_p).all()):
        return _nucleus(values, key.top_p, total), ids
    values, ids = scores.sort(-1, descending=True)  # a nucleus wider than the candidates
    return _nucleus(values, key.top_p), ids


def _top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k highest scores per row (k < vocabulary), descending, widened to every score tied
    with the k-th."""
    values, ids = scores.topk(k + 1, dim=-1)
    if not bool((values[:, k] == values[:, k - 1]).any()):
        return values[:, :k], ids[:, :k]
    kth = values[:, k - 1 : k]
    width = int((scores >= kth).sum(-1).max())  # rare: count the ties in full
    values, ids = scores.topk(width, dim=-1)
    return values.masked_fill(values < kth, float("-inf")), ids


def _nucleus(values: torch.Tensor, top_p: float, total: torch.Tensor | None = None) -> torch.Tensor:
    """Descending `values` with -inf beyond the smallest prefix whose probability reaches top_p.

    `total` is the log-normaliser of the full distribution when `values` are only its top part.
    A token is dropped when the tokens ranked above it already hold top_p of the mass: the
    same set transformers' TopPLogitsWarper keeps (it removes the low tail of mass <= 1-top_p).
    """
    if total is None:
        total = torch.logsumexp(values, -1, keepdim=True)
    probs = torch.exp(values - total)
    before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each one
    drop = before >= top_p
    drop[:, 0] = False
    return values.masked_fill(drop, float("-inf"))
