"""One role (challenger or solver) as a verl GRPO trainer that runs phase by phase.

verl's `RayPPOTrainer.fit()` runs a whole job; co-evolution runs a few steps at a time, twice
per iteration, keeping the workers and rollout servers alive in between. Three hooks do it
without copying `fit()`: `PhaseTrainer._load_checkpoint` continues the run's global step,
`PhaseTrainer._update_actor` hands each step's batch to the loop's `on_step`, and
`ScoringAgentLoopManager` scores the whole generated batch in the driver with the role's
scorer (the challenger's reward needs the whole batch and the frozen solver's votes). verl
builds that manager from a class name, so the scorer and tokenizer reach it through `_ROLE_IO`.

Memory on the CPU: a role's optimizer state is needed only while it trains. After the phase's
checkpoint `save` parks it in a file and frees it; `train` loads it back (on a GPU it stays). Its
rollout servers keep the weights they were last sent until the loop `release`s them (when the
other role is about to sample or train), so sampling calls between two of the role's updates
share one weight sync; a server returns its freed heap to the OS (`malloc_trim`) after every
generation, the trainer workers after each phase.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import ray
from verl.experimental.agent_loop import AgentLoopManager
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
from verl.trainer.ppo.ray_trainer import RayPPOTrainer

from coevolve.backend import data as vdata
from coevolve.backend.agent_loop import DirectServerClient, InProcessWorker, ServersWithoutBalancer
from coevolve.backend.heap import trim_heap
from coevolve.run.roles import StepBatch
from coevolve.run.sampling import SamplingParams, chat_messages
from coevolve.selfplay.scoring import ScoredBatch, Scorer


class _RoleIO:
    """A role's scorer and tokenizer, and the last batch it scored (until its update)."""

    def __init__(self, scorer: Scorer, tokenizer: Any) -> None:
        self.scorer = scorer
        self.tokenizer = tokenizer
        self.scored: ScoredBatch | None = None


_ROLE_IO: dict[str, _RoleIO] = {}


class ScoringAgentLoopManager(AgentLoopManager):
    """verl's agent loop, with rewards computed for the whole batch by `SCORERS[role]`."""

    def __init__(self, config, llm_client, teacher_client=None, reward_loop_worker_handles=None):
        self.in_process = config.trainer.device == "cpu"
        if self.in_process:  # the driver runs the agent loop, requests go straight to the servers
            llm_client = DirectServerClient(config)
        super().__init__(config, llm_client, teacher_client, None)  # None: no per-sample reward
        self.role = config.actor_rollout_ref.rollout.custom["server_prefix"]

    async def _init_agent_loop_workers(self):
        if not self.in_process:
            await super()._init_agent_loop_workers()
            return
        from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

        self.agent_loop_workers = [InProcessWorker(AgentLoopWorker(self.config, self.llm_client, self.teacher_client))]

    def ray_actors(self) -> list[Any]:
        """The agent-loop workers that are Ray actors (none on the CPU)."""
        return [] if self.in_process else list(self.agent_loop_workers)

    def generate_sequences(self, prompts):
        output = super().generate_sequences(prompts)
        io = _ROLE_IO[self.role]
        scored = io.scorer(vdata.decode_rollouts(output, io.tokenizer))
        io.scored = scored
        output.batch["rm_scores"] = RewardManagerBase.assemble_rm_scores(output, scored.rewards)
        for key, values in scored.extras.items():
            output.non_tensor_batch[key] = vdata.as_object_array(values)
        output.meta_info["reward_extra_keys"] = list(scored.extras)
        return output


class PhaseTrainer(RayPPOTrainer):
    """RayPPOTrainer that starts each fit() at `step_offset` and reports every step."""

    step_offset: int = 0
    on_step: Callable[[StepBatch], None] | None = None

    def _load_checkpoint(self):
        self.global_steps = self.step_offset
        return self.step_offset

    def _update_actor(self, batch):
        output = super()._update_actor(batch)
        if self.on_step is not None:
            role = self.config.actor_rollout_ref.rollout.custom["server_prefix"]
            scored, _ROLE_IO[role].scored = _ROLE_IO[role].scored, None
            if scored is None:  # every generated batch goes through ScoringAgentLoopManager
                raise RuntimeError(f"{role}: step {self.global_steps} was updated on a batch no scorer saw")
            self.on_step(StepBatch(step=self.global_steps, categories=vdata.categories_of(batch),
                                   advantages=vdata.sequence_advantages(batch),
                                   rewards=vdata.sequence_rewards(batch), scored=scored))
        return output


class MetricsBridge:
    """Stands in for verl's `Tracking` during fit(): verl's metrics go to our tracker."""

    def __init__(self, sink: Callable[[dict[str, float], int], None]) -> None:
        self.sink = sink

    def factory(self, *args: Any, **kwargs: Any) -> MetricsBridge:
        return self

    def log(self, data: dict[str, Any], step: int, backend: Any = None) -> None:
        self.sink({k: float(v) for k, v in data.items() if _is_number(v)}, step)

    def finish(self, exit_code: int = 0) -> None:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class VerlTrainer:
    """A role's verl trainer kept alive for the whole run, run `steps` at a time."""

    def __init__(self, role: str, config, *, dataset, val_dataset, sampler, tokenizer,
                 gpus_per_node: int, nnodes: int, scorer: Scorer, system_turn: str = "default") -> None:
        from verl.single_controller.ray import RayWorkerGroup, ResourcePoolManager
        from verl.trainer.ppo.utils import Role, need_reference_policy
        from verl.utils.dataset.rl_dataset import collate_fn
        from verl.workers.engine_workers import ActorRolloutRefWorker

        self.role = role
        self.system_turn = system_turn  # model.system_turn, for the votes and evaluations
        self._parked = False  # the optimizer state is in files (`_park_paths`), not in RAM
        # The CPU rollout servers' weights: `_version` counts the trainer's weight changes
        # (updates, restores); `_served` is the version the servers hold (None: released).
        self._version, self._served = 0, None
        self.cpu = config.trainer.device == "cpu"
        worker_role = Role.ActorRolloutRef if need_reference_policy(config) else Role.ActorRollout
        pool = f"{role}_pool"
        managers = ResourcePoolManager(
            resource_pool_spec={pool: [gpus_per_node] * nnodes}, mapping={worker_role: pool}
        )
        _ROLE_IO[role] = _RoleIO(scorer, tokenizer)
        self.trainer = PhaseTrainer(
            config=config, tokenizer=tokenizer,
            role_worker_mapping={worker_role: ray.remote(ActorRolloutRefWorker)},
            resource_pool_manager=managers, ray_worker_group_cls=RayWorkerGroup,
            train_dataset=dataset, val_dataset=val_dataset, collate_fn=collate_fn,
            train_sampler=sampler,
        )
        if self.cpu:
            with _servers_without_balancer():
                self.trainer.init_workers()
            servers = self.trainer.llm_server_manager  # the in-process agent loop sends to them
            self.trainer.async_rollout_manager.llm_client.use_servers(
                dict(zip(servers.server_addresses, servers.server_handles, strict=True)))
        else:
            self.trainer.init_workers()

    def set_data(self, dataset, sampler) -> None:
        """Train the next phase on a new dataset (the solver's, rebuilt every iteration)."""
        from torchdata.stateful_dataloader import StatefulDataLoader
        from verl.utils.dataset.rl_dataset import collate_fn

        self.trainer.train_dataset = dataset
        self.trainer.train_dataloader = StatefulDataLoader(
            dataset=dataset, batch_size=self.trainer.config.data.train_batch_size,
            num_workers=0, drop_last=True, collate_fn=collate_fn, sampler=sampler,
        )

    def train(self, steps: int, first_step: int, on_step: Callable[[StepBatch], None],
              on_metrics: Callable[[dict[str, float], int], None]) -> float:
        """Train `steps` GRPO steps numbered first_step..first_step+steps-1; returns seconds.
        verl's own metrics go to `on_metrics`."""
        import verl.utils.tracking as tracking

        bridge = MetricsBridge(on_metrics)
        start = time.monotonic()
        self._unpark_optimizer()
        self.trainer.step_offset = first_step - 1
        self.trainer.total_training_steps = first_step - 1 + steps
        self.trainer.on_step = on_step
        original = tracking.Tracking
        tracking.Tracking = bridge.factory
        try:
            self.trainer.fit()
        finally:
            tracking.Tracking = original
        self.trainer.checkpoint_manager.sleep_replicas()  # the state fit() expects at its start
        self._version += 1
        self.release()  # the servers hold the weights before the phase's last update
        self._trim(self.workers())
        return time.monotonic() - start

    @contextmanager
    def serving(self, step: int) -> Iterator[None]:
        """Rollout servers awake with this role's current weights, for coevolve's own sampling.

        On a GPU every call syncs the weights in and sleeps vLLM after (the actor shares the
        device). On the CPU the servers keep the weights after sampling, so later calls before the
        role's next update skip the sync; sleeping returns only their freed heap (`release` frees
        the rest).
        """
        if not self.cpu or self._served != self._version:
            self.trainer.checkpoint_manager.update_weights(step)
            self._served = self._version if self.cpu else None
        try:
            yield
        finally:
            self.trainer.checkpoint_manager.sleep_replicas()

    def release(self) -> None:
        """On the CPU: the HF servers free their weights, packed copies and heap until the next
        weight sync (the loop calls this when the other role is about to sample or train). On a
        GPU the servers already sleep after every use."""
        if self.cpu:
            ray.get([server.release.remote() for server in self.servers()])
            self._served = None

    def sample(self, messages: Sequence[str], params: SamplingParams, seed: int) -> list[list[str]]:
        """`params.n` completions per user message from this role's rollout servers."""
        return sample_from_servers(self.servers(), self.trainer.tokenizer, messages, n=params.n,
                                   sampling=params.request(), seed=seed, system_turn=self.system_turn)

    def worker_processes(self) -> list[tuple[str, int]]:
        """(Ray node, process id) of each of this role's trainer workers (FSDP ranks), in rank order."""
        return [tuple(x) for x in ray.get([w.__ray_call__.remote(_where) for w in self.trainer.actor_rollout_wg.workers])]

    def servers(self) -> list[Any]:
        """The rollout server actors, which also serve coevolve's own sampling."""
        return [server for replica in self.trainer.llm_server_manager.rollout_replicas
                for server in replica.servers]

    def save(self, verl_dir: Path, step: int) -> None:
        """verl's own checkpoint (model, optimizer, extra state) for an exact resume; on the CPU
        the optimizer state then leaves RAM until the role trains again (see the module doc)."""
        self.trainer.actor_rollout_wg.save_checkpoint(str(verl_dir), None, step, max_ckpt_to_keep=None)
        self._park_optimizer()

    def _park_paths(self) -> list[str]:
        folder = Path(self.trainer.config.trainer.default_local_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return [str(folder / f".parked_optimizer_rank{rank}.pt") for rank in range(len(self.workers()))]

    def _park_optimizer(self) -> None:
        if self.cpu and not self._parked:
            ray.get([w.__ray_call__.remote(_park_optimizer, path)
                     for w, path in zip(self.workers(), self._park_paths(), strict=True)])
            self._parked = True

    def _unpark_optimizer(self) -> None:
        if self._parked:
            ray.get([w.__ray_call__.remote(_unpark_optimizer, path)
                     for w, path in zip(self.workers(), self._park_paths(), strict=True)])
            self._parked = False

    def workers(self) -> list[Any]:
        """This role's trainer workers (FSDP ranks)."""
        return list(self.trainer.actor_rollout_wg.workers)

    def _trim(self, actors: Sequence[Any]) -> None:
        if self.cpu:
            ray.get([a.__ray_call__.remote(_trim_heap) for a in actors])

    def restore(self, verl_dir: Path, step: int) -> None:
        """Load a checkpoint written by `save` and push its weights to the rollout."""
        self._parked = False  # the checkpoint's optimizer state replaces any parked one
        self.trainer.actor_rollout_wg.load_checkpoint(str(verl_dir), None, del_local_after_load=False)
        self._park_optimizer()
        self._version += 1
        self.trainer.checkpoint_manager.update_weights(step)
        self.trainer.checkpoint_manager.sleep_replicas()
        self.release()

    def export_hf(self, out: Path) -> None:
        """The current weights as a Hugging Face model directory (written atomically)."""
        with self.serving(getattr(self.trainer, "global_steps", self.trainer.step_offset)):
            ray.get(self.servers()[0].save_pretrained.remote(str(out)))

    def shutdown(self) -> None:
        """Kill this role's actors and placement groups (verl has no shutdown API)."""
        from ray.util.placement_group import remove_placement_group

        t = self.trainer
        for path in self._park_paths() if self._parked else []:  # a resume restores the checkpoint
            Path(path).unlink(missing_ok=True)
        handles = list(t.actor_rollout_wg.workers) + t.async_rollout_manager.ray_actors()
        handles += self.servers() + [h for h in [t.llm_server_manager.global_load_balancer] if h is not None]
        for handle in handles:
            ray.kill(handle, no_restart=True)
        for pool in t.resource_pool_manager.resource_pool_dict.values():
            for group in pool.pgs or []:
                remove_placement_group(group)
        _ROLE_IO.pop(self.role, None)


@contextmanager
def _servers_without_balancer() -> Iterator[None]:
    """While verl's trainer starts its workers on the CPU, its rollout-server manager starts no
    load-balancer actor (`agent_loop.ServersWithoutBalancer`; verl names the class in
    `ray_trainer`, so it is swapped there and put back)."""
    import verl.trainer.ppo.ray_trainer as ray_trainer

    original = ray_trainer.LLMServerManager
    ray_trainer.LLMServerManager = ServersWithoutBalancer
    try:
        yield
    finally:
        ray_trainer.LLMServerManager = original


def _where(actor: Any) -> tuple[str, int]:
    return ray.get_runtime_context().get_node_id(), os.getpid()


def _trim_heap(actor: Any = None) -> None:
    """On a Ray actor (`__ray_call__`): its freed heap back to the OS."""
    trim_heap()


def _optimizer(worker_dict: Any) -> Any:
    """The actor's optimizer inside verl's fused Ray actor (a `WorkerDict` holding the role's
    `ActorRolloutRefWorker` under its role key)."""
    workers = [w for w in worker_dict.worker_dict.values() if getattr(w, "actor", None) is not None]
    if len(workers) != 1:
        raise RuntimeError(f"expected one actor worker in the Ray actor, found {len(workers)}")
    return workers[0].actor.engine.optimizer


def _park_optimizer(actor: Any, path: str) -> None:
    """On a trainer worker: the optimizer's state to `path`, out of RAM (an empty state, before
    the first update, is parked as is)."""
    import torch

    optimizer = _optimizer(actor)
    torch.save(optimizer.state_dict(), path)
    optimizer.state.clear()
    trim_heap()


def _unpark_optimizer(actor: Any, path: str) -> None:
    """On a trainer worker: the optimizer's state back from `path` (exactly as parked)."""
    import torch

    _optimizer(actor).load_state_dict(torch.load(path, weights_only=False))
    os.remove(path)


def sample_from_servers(servers: Sequence[Any], tokenizer, messages: Sequence[str], *, n: int,
                        sampling: dict[str, Any], seed: int = 0, system_turn: str = "default") -> list[list[str]]:
    """`n` completions per user message from rollout servers, all requests in flight at once.

    The servers (coevolve's batched HF server on the CPU, vLLM on a GPU) batch concurrent
    requests themselves; requests are spread round-robin across servers.
    """
    prompts = [tokenizer.apply_chat_template(chat_messages(m, system_turn), add_generation_prompt=True,
                                             tokenize=True)
               for m in messages]
    prompts = [list(p["input_ids"]) if isinstance(p, dict) or hasattr(p, "keys") else list(p)
               for p in prompts]
    refs = []
    for i, ids in enumerate(prompts):
        for k in range(n):
            server = servers[(i * n + k) % len(servers)]
            refs.append(server.generate.remote(prompt_ids=ids, sampling_params=dict(sampling),
                                               request_id=f"coevolve-{seed}-{i}-{k}"))
    outputs = ray.get(refs)
    texts = tokenizer.batch_decode([o.token_ids for o in outputs], skip_special_tokens=True)
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]
