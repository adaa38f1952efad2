"""verl's `hf` rollout for the CPU: transformers `generate` that batches concurrent requests.

verl 0.9.1 ships rollout servers for vLLM, SGLang and TensorRT-LLM only, and none of them
runs on this CPU machine at a useful speed. Its agent loop sends every sample of a step to
the rollout server at once, one token-in/token-out request per sample. Answering them one at
a time wastes the machine: a batch of 32 sequences decodes several times more tokens per
second than a single one. So:

1. `HFRolloutServer` (a Ray actor in verl) puts each request on a queue. A background task
   collects what arrives within a short window, groups requests that sample alike, and runs
   one left-padded `generate` per group chunk in a worker thread. Requests that arrive while
   a batch runs wait for the next one.
2. Each request keeps its own length limit and is cut at its first end-of-sequence token, so
   the answers are what one-at-a-time generation would give (greedy: identical).
3. Weights come from the trainer through `HFServerAdapter.update_weights`
   (`checkpoint_engine.backend=naive`) and are loaded strictly: a key that does not fit
   raises instead of leaving the rollout on stale weights.
4. `coevolve.backend.platform_cpu.register_hf_rollout` makes `rollout.name=hf` known to verl
   in every process, by import path (importing this module there would be circular).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from coevolve.backend.models import save_atomically
from coevolve.backend.sampler import cut_response, end_of_sequence_ids

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 64
DEFAULT_WINDOW_MS = 10.0
DEFAULT_TORCH_THREADS = 2

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


def _custom(config: Any) -> Mapping[str, Any]:
    """The rollout config's free-form `custom` dict (None in verl's defaults)."""
    return getattr(config, "custom", None) or {}


def _setting(config: Any, key: str, env: str, default: float) -> float:
    """A server setting: `rollout.custom[key]`, else the environment variable `env`, else default."""
    custom = _custom(config)
    if custom.get(key) is not None:
        return float(custom[key])
    return float(os.environ.get(env, default))


def _model_path(model_config: Any) -> str:
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
    key = SamplingKey(temperature, top_p, max(top_k, 0), min_tokens, bool(logprobs))
    max_tokens = params.get("max_tokens", params.get("max_new_tokens"))
    return key, None if max_tokens is None else int(max_tokens)


def request_limit(
    prompt_len: int, max_tokens: int | None, prompt_length: int, response_length: int, max_model_len: int
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
class _Request:
    prompt_ids: list[int]
    key: SamplingKey
    max_tokens: int
    future: asyncio.Future


def plan_chunks(requests: Iterable[_Request], max_batch: int) -> list[list[_Request]]:
    """Group requests by sampling key, sort each group by prompt length, cut into max_batch pieces."""
    groups: dict[SamplingKey, list[_Request]] = {}
    for request in requests:
        groups.setdefault(request.key, []).append(request)
    chunks = []
    for group in groups.values():
        group.sort(key=lambda r: len(r.prompt_ids))  # similar lengths pad little
        chunks += [group[lo : lo + max_batch] for lo in range(0, len(group), max_batch)]
    return chunks


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


def _processors(key: SamplingKey) -> list[LogitsProcessor]:
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


# ---------------------------------------------------------------------------------------------
# The server


@dataclass
class _Stats:
    requests: int = 0
    failed_requests: int = 0
    batches: int = 0
    generated_tokens: int = 0
    generate_seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "batches": self.batches,
            "generated_tokens": self.generated_tokens,
            "generate_seconds": self.generate_seconds,
            "mean_batch_size": self.requests / self.batches if self.batches else 0.0,
            "tokens_per_second": (
                self.generated_tokens / self.generate_seconds if self.generate_seconds else 0.0
            ),
        }


class HFRolloutServer:
    """Token-in/token-out generation with transformers on the CPU, batching concurrent requests.

    Settings come from `rollout.custom[...]`, else the environment, else the default:
    `max_batch` (COEVOLVE_ROLLOUT_MAX_BATCH, 64 sequences per generate call), `window_ms`
    (COEVOLVE_ROLLOUT_WINDOW_MS, 10: a batch closes after a quiet gap this long, at most 10
    windows after its first request), `torch_threads` (COEVOLVE_TORCH_THREADS, 2).
    """

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        self.config = config
        self.replica_rank = replica_rank
        self.max_batch = int(_setting(config, "max_batch", "COEVOLVE_ROLLOUT_MAX_BATCH", DEFAULT_MAX_BATCH))
        self.window_s = _setting(config, "window_ms", "COEVOLVE_ROLLOUT_WINDOW_MS", DEFAULT_WINDOW_MS) / 1000
        threads = int(_setting(config, "torch_threads", "COEVOLVE_TORCH_THREADS", DEFAULT_TORCH_THREADS))
        torch.set_num_threads(threads)
        # All model work (generate, load, save) runs in this one thread: calls never overlap,
        # and torch keeps a single OpenMP team instead of one per pool thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-rollout")
        self._executor.submit(torch.set_num_threads, threads).result()
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        path = _model_path(model_config)
        # float32: bf16 matmuls are 15-50x slower on CPUs without AVX-512/AMX
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32, attn_implementation="sdpa"
        )
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.eos_ids = end_of_sequence_ids(self.model, self.tokenizer)
        self.pad_id = self._pad_id()
        max_model_len = getattr(config, "max_model_len", None) or self.model.config.max_position_embeddings
        self.max_model_len = int(max_model_len)
        self.global_steps: int | None = None
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task | None = None
        self._worker_loop: asyncio.AbstractEventLoop | None = None
        self._stats = _Stats()

    def _pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.model.generation_config.pad_token_id):
            if candidate is not None:
                return int(candidate)
        return min(self.eos_ids)  # padding is masked out, so any token does; EOS is the usual choice

    # -- generation ---------------------------------------------------------------------------

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Any = None,
        video_data: Any = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """One response, generated in a batch with whatever else is in flight.

        Same call as verl's vLLM server; `priority` (vLLM scheduling) is accepted and ignored,
        any other non-empty extra input (images, video, audio, ...) raises.
        """
        inputs = {"image_data": image_data, "video_data": video_data, **kwargs}
        extra = sorted(name for name, value in inputs.items() if name != "priority" and not _is_empty(value))
        if extra:
            raise ValueError(f"hf rollout is text-only; got {extra}")
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise ValueError(f"request {request_id}: empty prompt")
        key, max_tokens = parse_sampling_params(sampling_params)
        limit = request_limit(
            len(prompt), max_tokens, self.config.prompt_length, self.config.response_length, self.max_model_len
        )
        self._ensure_worker()
        request = _Request(prompt, key, limit, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(request)
        return await request.future

    def _ensure_worker(self) -> None:
        """Start the batching task on the running loop (again, if a test or crash left it behind)."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._worker_loop is not loop:
            self._queue = asyncio.Queue()
            self._worker_loop = loop
            self._worker = loop.create_task(self._serve_forever())

    async def _serve_forever(self) -> None:
        queue = self._queue
        batch: list[_Request] = []
        try:
            while True:
                batch = await self._collect(queue)
                for chunk in plan_chunks(batch, self.max_batch):
                    await self._run_chunk(chunk)
        except BaseException as exc:  # cancelled, or a bug here: no caller may wait forever
            _fail(batch + _drain(queue), RuntimeError(f"hf rollout batcher stopped: {exc!r}"))
            raise

    async def _collect(self, queue: asyncio.Queue[_Request]) -> list[_Request]:
        """The first request, then more until the queue has been quiet for the window.

        verl's agent-loop workers send their requests in bursts a few milliseconds apart;
        waiting for a quiet gap (at most 10 windows) keeps a burst in one batch instead of
        splitting it into two long generate calls. Collecting stops early at max_batch.
        """
        batch = [await queue.get()]
        cap = time.monotonic() + 10 * self.window_s
        while len(batch) < self.max_batch:
            wait = min(self.window_s, cap - time.monotonic())
            if wait <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), wait))
            except TimeoutError:
                break
        batch += _drain(queue)
        return [r for r in batch if not r.future.done()]  # a cancelled caller needs no answer

    async def _run_chunk(self, chunk: list[_Request]) -> None:
        """One generate call for the chunk; its result or its error reaches every caller."""
        try:
            loop = asyncio.get_running_loop()
            tokens, logprobs, seconds = await loop.run_in_executor(self._executor, self._generate_chunk, chunk)
        except Exception as exc:
            self._stats.failed_requests += len(chunk)
            _fail(chunk, exc)
            return
        self._stats.batches += 1
        self._stats.generate_seconds += seconds
        for row, request in enumerate(chunk):
            length = cut_response(tokens[row], request.max_tokens, self.eos_ids)
            self._stats.requests += 1
            self._stats.generated_tokens += length
            if not request.future.done():
                request.future.set_result(self._output(tokens[row][:length], logprobs, row))

    def _output(self, tokens: list[int], logprobs: torch.Tensor | None, row: int) -> TokenOutput:
        return TokenOutput(
            token_ids=tokens,
            log_probs=None if logprobs is None else logprobs[row, : len(tokens)].tolist(),
            stop_reason="completed",  # verl's word for both end-of-sequence and length
            num_preempted=0,
            extra_fields={"global_steps": self.global_steps},
        )

    @torch.no_grad()
    def _generate_chunk(self, chunk: list[_Request]) -> tuple[list[list[int]], torch.Tensor | None, float]:
        """Runs in the model thread: left-pad, generate, return new tokens per row (and log-probs)."""
        key = chunk[0].key
        width = max(len(r.prompt_ids) for r in chunk)
        input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, request in enumerate(chunk):
            input_ids[row, width - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids)
            attention_mask[row, width - len(request.prompt_ids) :] = 1
        max_new = max(r.max_tokens for r in chunk)
        processors = _processors(key)
        recorder = ChosenTokenLogprobs() if key.logprobs else None
        if recorder is not None:
            processors.append(recorder)
        sampling = {} if key.greedy else {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
        start = time.monotonic()
        sequences = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new,
            min_new_tokens=min(key.min_tokens, max_new),
            do_sample=not key.greedy,
            repetition_penalty=1.0,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList([RowLimits([r.max_tokens for r in chunk], width)]),
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            **sampling,
        )
        seconds = time.monotonic() - start
        logprobs = recorder.finish(sequences) if recorder is not None else None
        return sequences[:, width:].tolist(), logprobs, seconds

    # -- weights and export -------------------------------------------------------------------

    def load_weights(self, state: dict[str, torch.Tensor]) -> int:
        """Load a full HF-named state dict strictly; returns the number of tensors loaded.

        A tied alias (e.g. `lm_head.weight` when embeddings are tied) may be absent as long as
        the tensor it shares storage with is present.
        """
        own = self.model.state_dict(keep_vars=True)
        unexpected = sorted(set(state) - set(own))
        missing = sorted(k for k in set(own) - set(state) if not _alias_present(k, own, state))
        if unexpected or missing:
            raise ValueError(
                f"hf rollout load_weights: {len(unexpected)} unexpected keys {unexpected[:5]}, "
                f"{len(missing)} missing keys {missing[:5]} (LoRA: set model.lora.merge=True)"
            )
        # in the model thread, so a generate call in flight finishes on the old weights first
        self._executor.submit(self.model.load_state_dict, state, strict=False).result()
        return len(state)

    def save_pretrained(self, path: str) -> str:
        """Write the current weights (fp32) and the tokenizer as an HF directory, atomically."""
        self._executor.submit(save_atomically, self.model, self.tokenizer, Path(path)).result()
        return str(path)

    def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    def stats(self) -> dict[str, float]:
        """Cumulative work since start (or the last reset_stats)."""
        return self._stats.as_dict()

    def reset_stats(self) -> None:
        self._stats = _Stats()

    # -- lifecycle: nothing to free or resume on the CPU ---------------------------------------

    async def wake_up(self, tags: list[str] | None = None) -> None:
        pass

    async def sleep(self) -> None:
        pass

    async def clear_kv_cache(self) -> None:
        pass

    async def release_kv_cache(self) -> None:
        pass

    async def resume_kv_cache(self) -> None:
        pass

    async def wait_for_requests_to_drain(self) -> None:
        pass

    async def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        pass

    async def start_profile(self, **kwargs: Any) -> None:
        pass

    async def stop_profile(self) -> None:
        pass


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (dict, list, tuple)) and len(value) == 0)


def _drain(queue: asyncio.Queue[_Request]) -> list[_Request]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def _fail(requests: Iterable[_Request], exc: BaseException) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_exception(exc)


def _alias_present(key: str, own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> bool:
    """Whether another name of the same (tied) parameter is in `state`."""
    return any(other in state for other, tensor in own.items() if other != key and tensor is own[key])


# ---------------------------------------------------------------------------------------------
# verl glue: the replica (launches the server actor) and the adapter (in the trainer worker)


def _server_prefix(config: Any) -> str:
    return str(_custom(config).get("server_prefix", ""))


class HFReplica(RolloutReplica):
    """One rollout replica = one HFRolloutServer actor, named so the trainer can find it."""

    async def launch_servers(self) -> None:
        prefix = _server_prefix(self.config)
        server = (
            ray.remote(HFRolloutServer)
            .options(
                name=server_name(prefix, self.replica_rank), num_cpus=0, max_concurrency=self.max_concurrency
            )
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"hf://{prefix}{self.replica_rank}"  # unique: keys the load balancer

    def rollout_worker_use_gpu(self) -> bool:
        return False


class HFServerAdapter(BaseRollout):
    """Lives in each trainer worker; the replica's leader rank pushes new weights to the server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.is_leader = rank % world == 0

    async def resume(self, tags: list[str]) -> None:
        pass

    async def release(self) -> None:
        pass

    async def update_weights(
        self,
        weights: Iterable[tuple[str, torch.Tensor]],
        wire_format: str = "named_tensors",
        global_steps: int | None = None,
        peft_config: dict | None = None,
        **kwargs: Any,
    ) -> None:
        """Gather the full tensors (every rank: DTensor gathers are collective), leader sends."""
        if wire_format != "named_tensors":
            raise ValueError(f"hf rollout takes wire_format='named_tensors' only, got {wire_format!r}")
        if peft_config is not None:
            raise ValueError("hf rollout cannot load LoRA adapters: set actor_rollout_ref.model.lora.merge=true")
        state = {}
        for name, tensor in weights:
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().cpu()
        if not self.is_leader:
            return
        server = ray.get_actor(server_name(_server_prefix(self.config), self.replica_rank))
        await server.load_weights.remote(state)
        if global_steps is not None:
            await server.set_global_steps.remote(global_steps)
