"""The maths of a Llama-family decoder over a `KVCache`, on the weights of an HF model.

q/k/v and gate/up are fused into one projection each and every weight is laid out once for
the matmul kernels (`refresh` again after new weights are loaded: the whole weight-sync
cost). Grouped-query attention reads the cache without repeating keys and values.
Architectures: Llama's decoder layer (`llama`; `qwen2` adds q/k/v biases); any other raises
`UnsupportedModel`, and the recipe then sets `resources.cpu_engine: generate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from coevolve.backend.generation.fast.kv_cache import KVCache

SUPPORTED_MODEL_TYPES = ("llama", "qwen2")


class UnsupportedModel(ValueError):
    """The model's architecture is not one the fast engine implements."""


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
    """The matmul kernels: "onednn" (weights pre-packed for oneDNN; faster than torch's matmul
    on decode shapes, `make bench-generation`) or "torch" (F.linear); "auto" takes oneDNN for
    float32 where torch was built with it."""
    if kernels == "auto":
        return "onednn" if torch.backends.mkldnn.is_available() and dtype == torch.float32 else "torch"
    if kernels not in ("onednn", "torch"):
        raise ValueError(f"kernels must be auto, onednn or torch, not {kernels!r}")
    if kernels == "onednn" and not torch.backends.mkldnn.is_available():
        raise ValueError("kernels='onednn' but this torch build has no oneDNN (mkldnn)")
    return kernels


def check_supported(model) -> None:
    """Raise UnsupportedModel unless `model` is a causal LM the fast engine implements."""
    config = model.config
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModel(
            f"the fast engine implements {', '.join(SUPPORTED_MODEL_TYPES)} models, not {model_type!r}; "
            "use engine 'generate' (transformers.generate) for this model"
        )
    if getattr(config, "hidden_act", "silu") != "silu":
        raise UnsupportedModel(f"the fast engine implements SiLU MLPs, not hidden_act={config.hidden_act!r}")
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", False):
        raise UnsupportedModel("the fast engine does not implement sliding-window attention")
    attention = model.model.layers[0].self_attn
    if attention.o_proj.bias is not None or model.model.layers[0].mlp.down_proj.bias is not None:
        raise UnsupportedModel("the fast engine does not implement output or MLP biases")


def _linear_weights(layer) -> list[torch.nn.Parameter]:
    attn, mlp = layer.self_attn, layer.mlp
    return [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.o_proj.weight,
            mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight]


class PackedLlama:
    """A Llama-family HF model's forward pass (the model is held, its weights packed)."""

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

    def packed_parameters(self) -> list[torch.nn.Parameter]:
        """The model's weights this object holds a copy of (oneDNN's layout): after `refresh`
        the model's own may be emptied and `write_back` rebuilds them. With torch's kernels the
        weights are read in place: none."""
        if self.kernels != "onednn":
            return []
        params = [p for layer in self.model.model.layers for p in _linear_weights(layer)]
        if self.model.lm_head.weight is not self.model.model.embed_tokens.weight:  # untied head
            params.append(self.model.lm_head.weight)
        return params

    def write_back(self) -> None:
        """The model's `packed_parameters` rebuilt, exactly, from the packed copies."""
        if self.kernels != "onednn":
            return
        for layer, packed in zip(self.model.model.layers, self.layers, strict=True):
            attn, mlp = layer.self_attn, layer.mlp
            q, k, v = packed.qkv_weight.to_dense().split([self.q_size, self.kv_size, self.kv_size])
            gate, up = packed.gate_up_weight.to_dense().chunk(2)
            for param, value in ((attn.q_proj.weight, q), (attn.k_proj.weight, k), (attn.v_proj.weight, v),
                                 (attn.o_proj.weight, packed.o_weight.to_dense()), (mlp.gate_proj.weight, gate),
                                 (mlp.up_proj.weight, up), (mlp.down_proj.weight, packed.down_weight.to_dense())):
                param.data = value.contiguous()
        if self.model.lm_head.weight is not self.model.model.embed_tokens.weight:
            self.model.lm_head.weight.data = self.lm_head.to_dense()

    def release(self) -> None:
        """Drop the packed copies and the views of the model's weights (until `refresh`)."""
        self.layers, self.lm_head, self.embed, self.final_norm = [], None, None, None

    def new_cache(self, rows: int, columns: int) -> KVCache:
        """An empty cache of `rows` rows and `columns` columns for this model."""
        return KVCache.allocate(layers=len(self.layers), rows=rows, kv_heads=self.n_kv, columns=columns,
                                head_dim=self.head_dim, dtype=self.dtype)

    def prefill(self, ids: torch.Tensor, *, valid: torch.Tensor, positions: torch.Tensor, cache: KVCache,
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
            cache.write(index, k.transpose(1, 2), v.transpose(1, 2), slice(start, end))
            keys, values = cache.read(index, count, end)
            attn = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask, enable_gqa=True)
            x = x + self._linear(attn.transpose(1, 2).reshape(count, width, self.q_size), layer.o_weight)
            x = x + self._mlp(layer, x)
        return self._norm(x[:, -1], self.final_norm)

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache, column: int) -> torch.Tensor:
        """The final hidden state after `tokens` (batch,), written at cache column `column`; each
        row attends to the columns its cache mask opens."""
        batch = tokens.shape[0]
        cos, sin = self._rope(positions)
        x = F.embedding(tokens, self.embed)
        length = column + 1
        bias = cache.attention_bias(batch, length, self.dtype)
        group = self.n_heads // self.n_kv
        for index, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, x, cos, sin)  # q (batch, heads, d)
            cache.write(index, k, v, column)
            keys, values = cache.read(index, batch, length)  # (batch, kv, length, d)
            q = q.reshape(batch, self.n_kv, group, self.head_dim)
            scores = torch.matmul(q, keys.transpose(-1, -2)) * self.scale + bias
            attn = torch.matmul(torch.softmax(scores, dim=-1), values)  # (batch, kv, group, d)
            x = x + self._linear(attn.reshape(batch, self.q_size), layer.o_weight)
            x = x + self._mlp(layer, x)
        return self._norm(x, self.final_norm)

    def logits(self, hidden: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """float32 logits divided by `temperature` (sampling sums probabilities in float32).

        The division is applied to the hidden state before the output layer (hidden-size numbers
        a row instead of vocabulary-size; equal up to float rounding).
        """
        if temperature != 1.0:
            hidden = hidden * (1.0 / temperature)
        return self._linear(hidden, self.lm_head).float()

    # -- the pieces of a layer ----------------------------------------------------------------

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
