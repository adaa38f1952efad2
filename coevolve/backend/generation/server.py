"""verl's `hf` rollout for the CPU: one server per replica that batches concurrent requests.

verl 0.9.1 ships rollout servers for vLLM, SGLang and TensorRT-LLM only, none of them fast on
a CPU, and its agent loop sends every sample of a step at once, one request per sample.
`HFRolloutServer` queues them, collects what arrives within a short window, groups requests
that sample alike (`requests.plan_chunks`) and runs one batched `generate` of its engine
(`engine.py`) per chunk in a model thread. Each request keeps its own length limit and is cut
at its first end-of-sequence token, so the answers are what one-at-a-time generation gives.
Between its role's phases the server is emptied (`release`): its model's and engine's weights
leave RAM until the trainer sends the next ones (`load_weights`). While loaded, the model keeps
only the weights its engine reads in place (the fast engine packs the others into copies). verl's replica and weight
adapter are in `replica.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from verl.workers.rollout.replica import TokenOutput

from coevolve.backend.generation.engine import load_engine
from coevolve.backend.generation.requests import (
    DEFAULT_MAX_BATCH,
    DEFAULT_TORCH_THREADS,
    DEFAULT_WINDOW_MS,
    Generated,
    Request,
    engine_setting,
    model_path,
    parse_sampling_params,
    plan_chunks,
    request_limit,
    server_setting,
)
from coevolve.backend.heap import trim_heap
from coevolve.backend.models import save_atomically

logger = logging.getLogger(__name__)


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
    """Token-in/token-out generation on the CPU, batching concurrent requests.

    Settings come from `rollout.custom[...]`, else the environment, else the default:
    `max_batch` (COEVOLVE_ROLLOUT_MAX_BATCH, 64 sequences per generate call), `window_ms`
    (COEVOLVE_ROLLOUT_WINDOW_MS, 10: a batch closes after a quiet gap this long, at most 10
    windows after its first request), `torch_threads` (COEVOLVE_TORCH_THREADS, 2), `engine`
    (COEVOLVE_CPU_ENGINE, "fast"; see requests.engine_setting).
    """

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        self.config = config
        self.replica_rank = replica_rank
        self.max_batch = int(server_setting(config, "max_batch", "COEVOLVE_ROLLOUT_MAX_BATCH", DEFAULT_MAX_BATCH))
        self.window_s = server_setting(config, "window_ms", "COEVOLVE_ROLLOUT_WINDOW_MS", DEFAULT_WINDOW_MS) / 1000
        threads = int(server_setting(config, "torch_threads", "COEVOLVE_TORCH_THREADS", DEFAULT_TORCH_THREADS))
        torch.set_num_threads(threads)
        # All model work (generate, load, save) runs in this one thread: calls never overlap,
        # and torch keeps a single OpenMP team instead of one per pool thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-rollout")
        self._executor.submit(torch.set_num_threads, threads).result()
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        path = model_path(model_config)
        # float32: bf16 matmuls are many times slower on CPUs without AVX-512/AMX (tools/cpu_figures.py)
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32, attn_implementation="sdpa"
        )
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.engine = load_engine(engine_setting(config), self.model, self.tokenizer, batch_hint=self.max_batch)
        max_model_len = getattr(config, "max_model_len", None) or self.model.config.max_position_embeddings
        self.max_model_len = int(max_model_len)
        self.global_steps: int | None = None
        # Every parameter (tied ones once) with its shape: a parameter may be emptied while the
        # engine holds its values (`_drop_packed`) or while the server is released
        self._shapes = [(parameter, parameter.shape) for parameter in self.model.parameters()]
        self._released = False
        self._packed_dropped = False
        self._drop_packed()
        self._queue: asyncio.Queue[Request] | None = None
        self._worker: asyncio.Task | None = None
        self._worker_loop: asyncio.AbstractEventLoop | None = None
        self._stats = _Stats()

    # -- generation ---------------------------------------------------------------------------

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        *,
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
        limit = request_limit(len(prompt), max_tokens, prompt_length=self.config.prompt_length,
                              response_length=self.config.response_length, max_model_len=self.max_model_len)
        self._ensure_worker()
        request = Request(prompt, key, limit, asyncio.get_running_loop().create_future())
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
        batch: list[Request] = []
        try:
            while True:
                batch = await self._collect(queue)
                for chunk in plan_chunks(batch, self.max_batch):
                    await self._run_chunk(chunk)
        except BaseException as exc:  # cancelled, or a bug here: no caller may wait forever
            _fail(batch + _drain(queue), RuntimeError(f"hf rollout batcher stopped: {exc!r}"))
            raise

    async def _collect(self, queue: asyncio.Queue[Request]) -> list[Request]:
        """The first request, then more until the queue has been quiet for the window.

        verl's agent loop sends its requests in bursts a few milliseconds apart;
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

    async def _run_chunk(self, chunk: list[Request]) -> None:
        """One generate call for the chunk; its result or its error reaches every caller."""
        try:
            loop = asyncio.get_running_loop()
            generated, seconds = await loop.run_in_executor(self._executor, self._generate_chunk, chunk)
        except Exception as exc:
            self._stats.failed_requests += len(chunk)
            _fail(chunk, exc)
            return
        self._stats.batches += 1
        self._stats.generate_seconds += seconds
        for request, output in zip(chunk, generated, strict=True):
            self._stats.requests += 1
            self._stats.generated_tokens += len(output.tokens)
            if not request.future.done():
                request.future.set_result(self._output(output))

    def _output(self, output: Generated) -> TokenOutput:
        return TokenOutput(
            token_ids=output.tokens,
            log_probs=output.logprobs,
            stop_reason="completed",  # verl's word for both end-of-sequence and length
            num_preempted=0,
            extra_fields={"global_steps": self.global_steps},
        )

    def _generate_chunk(self, chunk: list[Request]) -> tuple[list[Generated], float]:
        """Runs in the model thread: each request's tokens (cut at its limit and EOS), and seconds."""
        self._check_loaded("generate")
        start = time.monotonic()
        generated = self.engine.generate([r.prompt_ids for r in chunk], limits=[r.max_tokens for r in chunk],
                                         key=chunk[0].key)
        return generated, time.monotonic() - start

    # -- weights and export -------------------------------------------------------------------

    def load_weights(self, state: dict[str, torch.Tensor]) -> int:
        """Load a full HF-named state dict strictly; returns the number of tensors loaded. The
        dict is emptied once loaded: its tensors (a whole model, sent by the trainer) are freed
        before the fast decoder packs its own copies.

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
        count = len(state)
        self._executor.submit(self._load_state, state).result()
        return count

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        for parameter, shape in self._shapes:
            if parameter.shape != shape:  # emptied: room for the new values
                parameter.data = torch.empty(shape, dtype=parameter.dtype)
        self._released = self._packed_dropped = False
        self.model.load_state_dict(state, strict=False)
        state.clear()  # the received copies, freed before the engine packs its own
        self.engine.refresh()  # the fast engine's packed weights are copies: the weight-sync cost
        self._drop_packed()

    def _drop_packed(self) -> None:
        """Empty the model's weights that the engine holds a copy of (the fast engine's oneDNN
        layout): generation reads only the copies, so one copy of the weights stays in RAM;
        `save_pretrained` rebuilds them (`write_back`) for as long as it writes."""
        for parameter in self.engine.packed_parameters():
            parameter.data = torch.empty(0, dtype=parameter.dtype)
        self._packed_dropped = bool(self.engine.packed_parameters())
        trim_heap()

    def save_pretrained(self, path: str) -> str:
        """Write the current weights (fp32) and the tokenizer as an HF directory, atomically."""
        self._check_loaded("save_pretrained")
        self._executor.submit(self._save, Path(path)).result()
        return str(path)

    def _save(self, path: Path) -> None:
        if self._packed_dropped:
            self.engine.write_back()
        try:
            save_atomically(self.model, self.tokenizer, path, key="checkpoint export")
        finally:
            if self._packed_dropped:
                self._drop_packed()

    def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    def stats(self) -> dict[str, float]:
        """Cumulative work since start (or the last reset_stats)."""
        return self._stats.as_dict()

    def reset_stats(self) -> None:
        self._stats = _Stats()

    # -- lifecycle: the weights leave RAM while the role is idle -------------------------------

    async def wake_up(self, tags: list[str] | None = None) -> None:
        """Nothing to do: released weights come back with the trainer's next `load_weights`."""

    async def sleep(self) -> None:
        """The heap freed by the generation just done back to the OS (its cache and activations:
        the trainer updates next, beside this process). verl sleeps the servers after every
        generation of a phase; the weights stay (freeing them would add a repack to every
        step's weight sync), `release` frees them between phases."""
        await asyncio.get_running_loop().run_in_executor(self._executor, trim_heap)

    async def release(self) -> None:
        """Free the model's weights and the engine's copies (after any generate in flight) until
        the next `load_weights`: the role is idle until its next phase or sampling."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._release)

    def _release(self) -> None:
        if self._released:
            return
        self.engine.release()
        for parameter, _ in self._shapes:
            parameter.data = torch.empty(0, dtype=parameter.dtype)
        self._released, self._packed_dropped = True, False
        trim_heap()

    def _check_loaded(self, what: str) -> None:
        if self._released:
            raise RuntimeError(f"hf rollout {what}: the server's weights were released; "
                               "the trainer must send weights (update_weights) first")

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


def _drain(queue: asyncio.Queue[Request]) -> list[Request]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def _fail(requests: Iterable[Request], exc: BaseException) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_exception(exc)


def _alias_present(key: str, own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> bool:
    """Whether another name of the same (tied) parameter is in `state`."""
    return any(other in state for other, tensor in own.items() if other != key and tensor is own[key])
