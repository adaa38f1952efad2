"""verl on a machine with no accelerator: a `cpu` platform plugin for verl 0.9.1.

verl assumes CUDA (or NPU) throughout. This module is imported in every process that imports
verl when `VERL_USE_EXTERNAL_MODULES` names it (`coevolve.backend.ray_session`) and selected
by `VERL_PLATFORM=cpu`; on a GPU machine neither is set and none of it loads. It registers
`PlatformCPU` (device "cpu", gloo, the few `torch.cuda` calls verl makes, answered for the
CPU; one logical Ray "GPU" slot per worker), and `install` patches, once per process, what
the platform cannot answer. verl's own `VERL_ENGINE_DEVICE=cuda` picks the FSDP engine, whose
code is device-agnostic once the device module answers.
"""

from __future__ import annotations

import functools
import importlib
import types
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

PLATFORM_NAME = "cpu"
_BIG_MEMORY = 1 << 40  # reported as free/total device memory: the CPU has no separate pool


def _cpu_device_module() -> types.ModuleType:
    """The subset of `torch.cuda` that verl 0.9.1 calls, for the CPU."""
    module = types.ModuleType("coevolve_cpu_device")
    for name in ("synchronize", "current_stream", "stream", "Stream", "Event", "is_available",
                 "device_count", "set_device", "current_device"):
        setattr(module, name, getattr(torch.cpu, name))
    module.empty_cache = lambda: None
    module.ipc_collect = lambda: None
    module.set_per_process_memory_fraction = lambda fraction, device=None: None
    module.mem_get_info = lambda device=None: (_BIG_MEMORY, _BIG_MEMORY)
    module.get_device_name = lambda device=None: "CPU"
    for name in ("memory_allocated", "memory_reserved", "max_memory_allocated", "max_memory_reserved"):
        setattr(module, name, lambda device=None: 0)
    module.get_rng_state = lambda device=None: torch.get_rng_state()
    module.set_rng_state = lambda state, device=None: torch.set_rng_state(state)
    module.manual_seed = torch.manual_seed
    module.manual_seed_all = torch.manual_seed
    return module


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """verl's view of a CPU-only machine."""

    _device_module = _cpu_device_module()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return self._device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return True

    def current_device(self) -> str:  # verl passes this to .to(): an int would mean cuda:N
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: Any) -> None:
        return None

    def synchronize(self, device_index: Any = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[None, None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"  # logical slots: the driver starts Ray with num_gpus = slots

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> None:
        return None


def _normalise_gloo_backend(init_process_group):
    """verl's process-group backend "cpu:gloo,<device>:<comm>" reads "cpu:gloo,cpu:gloo" on the
    CPU, which torch rejects: it becomes "gloo"."""

    @functools.wraps(init_process_group)
    def wrapper(*args: Any, **kwargs: Any):
        if str(kwargs.get("backend", "")).replace(" ", "") == "cpu:gloo,cpu:gloo":
            kwargs["backend"] = "gloo"
        return init_process_group(*args, **kwargs)

    wrapper.coevolve_patched = True
    return wrapper


def _patch_reference_offload_policy() -> None:
    """FSDP2 offloads the reference model with `CPUOffloadPolicy(pin_memory=True)`; pinning
    needs an accelerator, so the policy is built with pin_memory=False."""
    from torch.distributed.fsdp import CPUOffloadPolicy
    from verl.workers.engine.fsdp import transformer_impl

    def unpinned(*args: Any, **kwargs: Any) -> CPUOffloadPolicy:
        kwargs["pin_memory"] = False  # verl passes pin_memory=True explicitly
        return CPUOffloadPolicy(*args, **kwargs)

    transformer_impl.CPUOffloadPolicy = unpinned


HF_ROLLOUT = "hf"
HF_ADAPTER_PATH = "coevolve.backend.generation.replica.HFServerAdapter"


def _load_hf_replica() -> type:
    # Imported on first use: importing it here would re-enter verl's __init__, which is
    # what imports this plugin.
    return importlib.import_module("coevolve.backend.generation.replica").HFReplica


def register_hf_rollout() -> None:
    """Make `rollout.name=hf` known to verl. Idempotent; refuses to overwrite another."""
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    adapter = _ROLLOUT_REGISTRY.get((HF_ROLLOUT, "async"))
    loader = RolloutReplicaRegistry._registry.get(HF_ROLLOUT)
    if adapter not in (None, HF_ADAPTER_PATH) or loader not in (None, _load_hf_replica):
        raise ValueError(f"rollout {HF_ROLLOUT!r} is already registered to {adapter} / {loader}")
    _ROLLOUT_REGISTRY[(HF_ROLLOUT, "async")] = HF_ADAPTER_PATH
    RolloutReplicaRegistry.register(HF_ROLLOUT, _load_hf_replica)


def install() -> None:
    """Normalise the gloo backend, unpin the reference offload, register the `hf` rollout
    (`coevolve.backend.generation.replica`), compute the update's logits at response positions
    only (`coevolve.backend.response_logits`); once per process."""
    from coevolve.backend import response_logits

    if not getattr(dist.init_process_group, "coevolve_patched", False):
        dist.init_process_group = _normalise_gloo_backend(dist.init_process_group)
    _patch_reference_offload_policy()
    register_hf_rollout()
    response_logits.install()


install()
