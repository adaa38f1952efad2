"""verl glue of the CPU rollout: the replica (launches an `HFRolloutServer` actor, named so the
trainer can find it) and the adapter (in each trainer worker: pushes new weights to it).

Registered as verl's `hf` rollout by `coevolve.backend.platform_cpu`, by import path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica

from coevolve.backend.generation.requests import custom_settings, server_name
from coevolve.backend.generation.server import HFRolloutServer

# ---------------------------------------------------------------------------------------------
# verl glue: the replica (launches the server actor) and the adapter (in the trainer worker)


def _server_prefix(config: Any) -> str:
    return str(custom_settings(config).get("server_prefix", ""))


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
        self._server_address = f"hf://{prefix}{self.replica_rank}"  # unique: keys the role's servers

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
