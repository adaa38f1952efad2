"""Start (or join) the Ray cluster the two roles' verl workers run on, and stop it.

On the CPU every process must load coevolve's verl platform plugin, so its environment
variables travel in Ray's runtime env; Ray is started with logical GPU slots (one per role)
and over-subscribed logical CPUs, because verl's placement groups ask for both. On a GPU
cluster the plugin is not loaded and Ray is joined at `resources.ray_address`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from coevolve.schema import Recipe

CPU_PLATFORM_MODULE = "coevolve.backend.platform_cpu"
REPO_ROOT = Path(__file__).resolve().parents[2]


def worker_env(recipe: Recipe) -> dict[str, str]:
    """Environment every Ray worker needs for this recipe."""
    env = {
        "TOKENIZERS_PARALLELISM": "false",
        "WANDB_MODE": "disabled",
        "HYDRA_FULL_ERROR": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    if recipe.resources.device == "cpu":
        threads = str(recipe.resources.cpu_threads)
        env.update(
            VERL_USE_EXTERNAL_MODULES=CPU_PLATFORM_MODULE,
            VERL_PLATFORM="cpu",
            VERL_ENGINE_DEVICE="cuda",  # verl's override: pick the FSDP engine on the CPU platform
            OMP_NUM_THREADS=threads,
            COEVOLVE_TORCH_THREADS=threads,
        )
    return env


def start_ray(recipe: Recipe, roles: int = 2) -> dict[str, Any]:
    """ray.init for this recipe; returns the cluster's resources."""
    import ray

    env = worker_env(recipe)
    os.environ.update(env)  # the driver imports verl too
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "include_dashboard": False,
                              "log_to_driver": True}
    if recipe.resources.ray_address:
        ray.init(address=recipe.resources.ray_address, **kwargs)
    elif recipe.resources.device == "cpu":
        slots = roles * recipe.resources.gpus_per_node
        ray.init(num_cpus=8 * slots, num_gpus=slots, **kwargs)
    else:
        ray.init(**kwargs)
    return ray.cluster_resources()


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
