"""coevolve's CPU plugin against the verl it was written for: an upgrade that moves a hook fails here.

Each test pins one assumption the plugin or the phase trainer makes about verl 0.9.1's
internals (see coevolve/backend/platform_cpu.py and coevolve/backend/verl_trainer.py).
"""

import inspect
import os
import subprocess
import sys

import pytest

verl = pytest.importorskip("verl")

PLUGIN_ENV = {"VERL_USE_EXTERNAL_MODULES": "coevolve.backend.platform_cpu", "VERL_PLATFORM": "cpu"}


def run_with_plugin(code: str) -> str:
    env = dict(os.environ, **PLUGIN_ENV)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_verl_is_the_version_the_plugin_targets():
    assert verl.__version__ == "0.9.1", (
        f"verl {verl.__version__}: coevolve's CPU plugin and phase trainer were written against 0.9.1; "
        "re-check every hook listed in coevolve/backend/platform_cpu.py and trainer.py"
    )


@pytest.mark.parametrize(
    "owner, name, parameters",
    [
        # fit() zeroes its step then calls this: the phase trainer's step offset
        ("verl.trainer.ppo.ray_trainer:RayPPOTrainer", "_load_checkpoint", ["self"]),
        # called every step with the batch that carries advantages: the curriculum hook
        ("verl.trainer.ppo.ray_trainer:RayPPOTrainer", "_update_actor", ["self", "batch"]),
        # the batch-scoring agent loop replaces the per-sample reward workers
        ("verl.experimental.agent_loop:AgentLoopManager", "__init__",
         ["self", "config", "llm_client", "teacher_client", "reward_loop_worker_handles"]),
        ("verl.experimental.agent_loop:AgentLoopManager", "generate_sequences", ["self", "prompts"]),
        # checkpoints for resume
        ("verl.workers.engine_workers:ActorRolloutRefWorker", "save_checkpoint",
         ["self", "local_path", "hdfs_path", "global_step", "max_ckpt_to_keep"]),
        ("verl.workers.engine_workers:ActorRolloutRefWorker", "load_checkpoint",
         ["self", "local_path", "hdfs_path", "del_local_after_load"]),
    ],
)
def test_hooked_methods_keep_their_signatures(owner, name, parameters):
    import importlib

    module, _, cls = owner.partition(":")
    method = getattr(getattr(importlib.import_module(module), cls), name)
    method = inspect.unwrap(method)
    assert list(inspect.signature(method).parameters) == parameters


def test_fit_still_imports_tracking_at_call_time():
    # MetricsBridge replaces verl.utils.tracking.Tracking while fit() runs
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    assert "from verl.utils.tracking import Tracking" in inspect.getsource(RayPPOTrainer.fit)


def test_reference_offload_policy_is_still_built_in_transformer_impl():
    from verl.workers.engine.fsdp import transformer_impl

    source = inspect.getsource(transformer_impl)
    assert "CPUOffloadPolicy(pin_memory=True)" in source  # what the plugin neutralises


def test_plugin_selects_the_cpu_platform_and_answers_for_the_device():
    out = run_with_plugin(
        "from verl.utils.device import get_device_name, get_torch_device, get_device_id\n"
        "from verl.utils.distributed import get_nccl_backend\n"
        "m = get_torch_device()\n"
        "print(get_device_name(), get_device_id(), get_nccl_backend(), m.mem_get_info()[0] > 0,"
        " m.get_device_name(), m.is_available())\n"
        "try:\n    m.some_new_cuda_call\nexcept AttributeError:\n    print('loud')\n"
    )
    assert out.split() == ["cpu", "cpu", "gloo", "True", "CPU", "True", "loud"]


def test_process_group_and_unpinned_offload_policy_work_on_the_cpu():
    out = run_with_plugin(
        "import os, torch, verl\n"
        "os.environ.update(RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT='0')\n"
        "from verl.utils.distributed import initialize_global_process_group_ray\n"
        "initialize_global_process_group_ray()\n"  # builds 'cpu:gloo,cpu:gloo'
        "print(torch.distributed.get_backend())\n"
        "from verl.workers.engine.fsdp import transformer_impl\n"
        "print(transformer_impl.CPUOffloadPolicy(pin_memory=True).pin_memory)\n"
    )
    assert out.split() == ["gloo", "False"]


def test_hf_rollout_registration_is_idempotent_and_refuses_another():
    out = run_with_plugin(
        "import verl\n"
        "from coevolve.backend import platform_cpu\n"
        "from verl.workers.rollout.base import _ROLLOUT_REGISTRY\n"
        "from verl.workers.rollout.replica import RolloutReplicaRegistry\n"
        "platform_cpu.register_hf_rollout()\n"
        "print(_ROLLOUT_REGISTRY[('hf', 'async')], RolloutReplicaRegistry.get('hf').__name__)\n"
        "_ROLLOUT_REGISTRY[('hf', 'async')] = 'someone.else.Adapter'\n"
        "try:\n    platform_cpu.register_hf_rollout()\nexcept ValueError:\n    print('refused')\n"
    )
    assert out.split() == ["coevolve.backend.generation.replica.HFServerAdapter", "HFReplica", "refused"]
