"""Start (or join) the Ray cluster the two roles' verl workers run on, and stop it.

On the CPU every process loads coevolve's verl platform plugin through Ray's runtime env, and
Ray gets logical GPU slots (one per role) and over-subscribed logical CPUs, as verl's placement
groups ask for both. On a GPU cluster Ray is joined at `resources.ray_address`, and the cluster
is checked against the recipe first (verl waits forever for a placement group it cannot place).
A cluster started here listens on 127.0.0.1 and asks for a per-run token (Ray's token
authentication) that only this run's processes hold; a joined one is secured by whoever started
it (docs/scaling.md).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coevolve.recipe.load import RecipeError
from coevolve.recipe.schema import Recipe, ResourcesConfig

CPU_PLATFORM_MODULE = "coevolve.backend.platform_cpu"
LOCAL_NODE_ADDRESS = "127.0.0.1"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
AUTH_TOKEN_ENV = "RAY_AUTH_TOKEN"
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
            # glibc's default of 8 heaps per core keeps each thread's freed memory in its own
            # heap; two heaps per process can only hold less (not measured apart from the other
            # memory changes: docs/results.md)
            MALLOC_ARENA_MAX="2",
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
        node_gpus = [node["Resources"].get("GPU", 0.0) for node in ray.nodes() if node["Alive"]]
        check_cluster(recipe.resources, ray.cluster_resources(), node_gpus)
    else:
        require_token_locally()
        keep_node_local()
        # no idle Python workers started ahead of need (each ~0.05-0.07 GiB of PSS; every actor of
        # a run gets a process of its own anyway)
        os.environ.setdefault("RAY_enable_worker_prestart", "0")
        os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
        kwargs["_node_ip_address"] = LOCAL_NODE_ADDRESS
        if recipe.resources.device == "cpu":
            slots = roles * recipe.resources.gpus_per_node
            kwargs.update(num_cpus=8 * slots, num_gpus=slots)
        ray.init(**kwargs)
        from coevolve.backend.reaper import start_reaper

        start_reaper()  # the watchdog of the cluster this process started; it outlives us by design
    return ray.cluster_resources()


def keep_node_local() -> None:
    """Make the node address of the cluster about to start 127.0.0.1.

    Ray turns a loopback `_node_ip_address` into the machine's network address unless its
    "no cluster" switch (the one it sets itself on macOS and Windows) is on: on here, in this
    process (already imported) and in every process Ray starts (through the environment).
    """
    from ray._private import ray_constants

    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def require_token_locally() -> None:
    """Token authentication for the cluster this process is about to start (and its children).

    A user's own RAY_AUTH_MODE (e.g. `disabled`) and RAY_AUTH_TOKEN are kept as they are.
    """
    if os.environ.get(AUTH_MODE_ENV):
        return
    os.environ[AUTH_MODE_ENV] = "token"
    os.environ.setdefault(AUTH_TOKEN_ENV, secrets.token_hex(32))
    from ray._raylet import Config

    Config.initialize("")  # Ray caches its config at import; what Ray's own token setup does


class ClusterError(RecipeError):
    """The Ray cluster cannot hold what the recipe's `resources` ask for."""


def check_cluster(resources: ResourcesConfig, cluster: Mapping[str, float],
                  node_gpus: Sequence[float] = (), roles: int = 2) -> None:
    """Raise ClusterError unless the cluster can place every role's GPUs.

    `cluster` is `ray.cluster_resources()`; `node_gpus` the GPUs of each live node (from
    `ray.nodes()`), checked when given: each role needs `nnodes` groups of `gpus_per_node`
    GPUs, each group on one node (verl's STRICT_PACK placement groups).
    """
    per_node, nnodes = resources.gpus_per_node, resources.nnodes
    needed = roles * nnodes * per_node
    have = float(cluster.get("GPU", 0.0))
    asked = (f"resources.nnodes = {nnodes} x resources.gpus_per_node = {per_node} GPUs per role, "
             f"{roles} roles: {needed} GPUs in {roles * nnodes} groups of {per_node} on one node each")
    if have < needed:
        raise ClusterError(f"{asked}; the Ray cluster at resources.ray_address has {have:g} GPUs in "
                           f"all{_nodes(node_gpus)}; add nodes or lower resources.nnodes/gpus_per_node")
    groups = sum(int(gpus // per_node) for gpus in node_gpus)
    if node_gpus and groups < roles * nnodes:
        raise ClusterError(f"{asked}; the Ray cluster's nodes{_nodes(node_gpus)} hold only {groups} "
                           f"such group(s), since a group cannot span nodes; lower "
                           f"resources.gpus_per_node (and raise resources.nnodes) to fit the nodes")


def _nodes(node_gpus: Sequence[float]) -> str:
    return f" ({', '.join(f'{g:g}' for g in node_gpus)} GPUs per node)" if node_gpus else ""


def stop_ray() -> None:
    """Shut the cluster down; the watchdog stays until this process exits (it then kills any
    process of the cluster that outlived the shutdown)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def worker_failure(err: BaseException) -> str | None:
    """One line for an error raised in (or by the loss of) a Ray worker; None for any other."""
    from ray.exceptions import ActorDiedError, RayError, RayTaskError, WorkerCrashedError

    if not isinstance(err, RayError):
        return None
    if isinstance(err, RayTaskError):
        # raised in the driver as an instance of the cause's class too; its attributes may be unset
        cause = getattr(err, "cause", None)
        cause = cause if isinstance(cause, BaseException) else None
        what = f"{type(cause).__name__}: {_last_line(str(cause))}" if cause else _last_line(str(err))
        where = getattr(err, "function_name", None)
        return f"a Ray worker failed{f' in {where}' if where else ''}: {what}"
    if isinstance(err, (ActorDiedError, WorkerCrashedError)):  # Ray's message: a page of guesses
        return f"a Ray worker died ({type(err).__name__}): {_last_line(str(err)).split('. ')[0]}"
    return f"Ray failed ({type(err).__name__}): {_last_line(str(err))}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"
