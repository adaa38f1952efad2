"""What the engines are asked and answer: the rollout server's settings, sampling parameters
and length limits, how requests are grouped into batches, and where a generated row ends.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_MAX_BATCH = 64
DEFAULT_WINDOW_MS = 10.0
DEFAULT_TORCH_THREADS = 2
ENGINES = ("fast", "generate")  # coevolve's decode loop (fast/), transformers.generate

# Sampling parameters this server does not implement, with the values that mean "off".
# A request may carry them at such a value (verl always sends repetition_penalty=1.0).
_NEUTRAL_PARAMS: dict[str, tuple[Any, ...]] = {
    "repetition_penalty": (1.0,),
    "presence_penalty": (0.0,),
    "frequency_penalty": (0.0,),
    "min_p": (0.0,),
    "ignore_eos": (False,),
    "seed": (None,),
    "stop": (None, []),
    "stop_token_ids": (None, []),
}
_SUPPORTED_PARAMS = {
    "temperature", "top_p", "top_k", "logprobs", "max_tokens", "max_new_tokens", "min_tokens"
}


def server_name(prefix: str, replica_rank: int) -> str:
    """Name of the Ray actor serving replica `replica_rank`; the prefix keeps two trainers apart."""
    return f"{prefix}hf_rollout_server_{replica_rank}"


def custom_settings(config: Any) -> Mapping[str, Any]:
    """The rollout config's free-form `custom` dict (None in verl's defaults)."""
    return getattr(config, "custom", None) or {}


def server_setting(config: Any, key: str, env: str, default: float) -> float:
    """A server setting: `rollout.custom[key]`, else the environment variable `env`, else default."""
    custom = custom_settings(config)
    if custom.get(key) is not None:
        return float(custom[key])
    return float(os.environ.get(env, default))


def check_engine(engine: str) -> str:
    """`engine` if it is one of ENGINES, else a ValueError naming the recipe key."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)} (recipe key resources.cpu_engine)")
    return engine


def engine_setting(config: Any) -> str:
    """The server's engine: `rollout.custom.engine`, else COEVOLVE_CPU_ENGINE, else "fast"."""
    return check_engine(custom_settings(config).get("engine") or os.environ.get("COEVOLVE_CPU_ENGINE") or "fast")


def model_path(model_config: Any) -> str:
    """`local_path` (else `path`) of verl's model config, a dataclass or a dict-like."""
    def value(key: str) -> Any:
        if isinstance(model_config, Mapping):
            return model_config.get(key)
        return getattr(model_config, key, None)

    path = value("local_path") or value("path")
    if not path:
        raise ValueError(f"model config has neither local_path nor path: {model_config!r}")
    return os.path.expanduser(str(path))


# ---------------------------------------------------------------------------------------------
# Requests and how they are grouped


@dataclass(frozen=True)
class SamplingKey:
    """How a request samples. Requests with equal keys can share one `generate` call.

    Rule: temperature 0 means greedy, and then top_p/top_k are irrelevant and normalised away.
    Otherwise tokens are drawn after temperature, then top-k, then top-p, as vLLM does.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off (verl sends -1)
    min_tokens: int = 0  # end-of-sequence is masked until this many tokens (vLLM's min_tokens)
    logprobs: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def parse_sampling_params(params: Mapping[str, Any]) -> tuple[SamplingKey, int | None]:
    """verl's sampling dict -> (key, explicit max_tokens or None). Raises on what is not supported."""
    unknown = set(params) - _SUPPORTED_PARAMS - set(_NEUTRAL_PARAMS)
    if unknown:
        raise ValueError(f"hf rollout: unsupported sampling parameters {sorted(unknown)}")
    for name, neutral in _NEUTRAL_PARAMS.items():
        if name in params and params[name] not in neutral:
            raise ValueError(f"hf rollout: {name}={params[name]!r} is not supported (only {neutral[0]!r})")
    temperature = float(params.get("temperature", 1.0))
    top_p = float(params.get("top_p", 1.0))
    top_k = int(params.get("top_k", -1))
    min_tokens = int(params.get("min_tokens", 0))
    logprobs = params.get("logprobs", False)
    if temperature < 0 or not 0 < top_p <= 1 or top_k < -1 or min_tokens < 0:
        raise ValueError(
            f"hf rollout: bad sampling parameters temperature={temperature} top_p={top_p} top_k={top_k} "
            f"min_tokens={min_tokens}"
        )
    if logprobs not in (True, False, None):
        raise ValueError(f"hf rollout: logprobs must be a bool (the chosen token's only), got {logprobs!r}")
    if temperature == 0:
        temperature, top_p, top_k = 0.0, 1.0, 0
    key = SamplingKey(temperature=temperature, top_p=top_p, top_k=max(top_k, 0), min_tokens=min_tokens,
                      logprobs=bool(logprobs))
    max_tokens = params.get("max_tokens", params.get("max_new_tokens"))
    return key, None if max_tokens is None else int(max_tokens)


def request_limit(
    prompt_len: int, max_tokens: int | None, *, prompt_length: int, response_length: int, max_model_len: int
) -> int:
    """New tokens allowed for one request, as verl's vLLM server computes it.

    Without an explicit `max_tokens` the limit is the response length, capped by what is left
    of prompt_length + response_length; the result is clamped to [1, context left].
    """
    room = max_model_len - prompt_len
    if room < 1:
        raise ValueError(f"prompt of {prompt_len} tokens leaves no room in a {max_model_len}-token context")
    if max_tokens is None:
        max_tokens = min(response_length, prompt_length + response_length - prompt_len)
    return max(1, min(max_tokens, room))


@dataclass
class Request:
    prompt_ids: list[int]
    key: SamplingKey
    max_tokens: int
    future: asyncio.Future


def plan_chunks(requests: Iterable[Request], max_batch: int) -> list[list[Request]]:
    """Group requests by sampling key, sort each group by prompt length, cut into max_batch pieces."""
    groups: dict[SamplingKey, list[Request]] = {}
    for request in requests:
        groups.setdefault(request.key, []).append(request)
    chunks = []
    for group in groups.values():
        # similar lengths pad little; equal prompts side by side share one prefill
        group.sort(key=lambda r: (len(r.prompt_ids), r.prompt_ids))
        chunks += [group[lo : lo + max_batch] for lo in range(0, len(group), max_batch)]
    return chunks


@dataclass(frozen=True)
class Generated:
    """One sampled continuation: its tokens (cut at its limit, end-of-sequence included) and,
    when asked for, each token's log-probability under the processed distribution."""

    tokens: list[int]
    logprobs: list[float] | None


def check_batch(prompts: list[list[int]], limits: list[int]) -> None:
    """Raise ValueError unless there is one limit >= 1 per prompt and no prompt is empty."""
    if len(prompts) != len(limits):
        raise ValueError(f"{len(prompts)} prompts but {len(limits)} limits")
    if any(limit < 1 for limit in limits) or any(not p for p in prompts):
        raise ValueError("every prompt needs a token and every limit must be >= 1")


def cut_response(tokens: list[int], limit: int, eos_ids: frozenset[int]) -> int:
    """Length of a generated row: up to its own limit and its first EOS, the EOS included."""
    for index, token in enumerate(tokens[:limit]):
        if token in eos_ids:
            return index + 1
    return min(limit, len(tokens))


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, valid) of the token rows left-padded with `pad_id` to the longest; `valid` (bool)
    is False on the padding. The one padding both engines use."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    for index, row in enumerate(rows):
        ids[index, width - len(row):] = torch.tensor(row, dtype=torch.long)
        valid[index, width - len(row):] = True
    return ids, valid
