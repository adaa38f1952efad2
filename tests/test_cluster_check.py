"""The check of a joined Ray cluster against the recipe's resources, on fake cluster dicts."""

import pytest

from coevolve.backend.ray_session import ClusterError, check_cluster
from coevolve.recipe.load import RecipeError
from coevolve.recipe.schema import ResourcesConfig


def _resources(nnodes: int, gpus_per_node: int) -> ResourcesConfig:
    return ResourcesConfig(device="cuda", rollout="vllm", nnodes=nnodes, gpus_per_node=gpus_per_node,
                           ray_address="auto")


@pytest.mark.parametrize(
    "nnodes, per_node, cluster, node_gpus",
    [
        (1, 4, {"GPU": 8.0, "CPU": 128.0}, [8.0]),  # math-rzero on one 8-GPU node
        (2, 4, {"GPU": 16.0}, [8.0, 8.0]),  # two nodes: each node holds one group per role
        (1, 8, {"GPU": 16.0}, [8.0, 8.0]),  # one role per node
        (1, 4, {"GPU": 8.0}, []),  # per-node GPUs unknown: only the total is checked
        (1, 2, {"GPU": 5.0}, [5.0]),  # a spare GPU is fine
    ],
)
def test_cluster_that_fits_passes(nnodes, per_node, cluster, node_gpus):
    check_cluster(_resources(nnodes, per_node), cluster, node_gpus)


@pytest.mark.parametrize(
    "nnodes, per_node, cluster, node_gpus, says",
    [
        (1, 4, {"GPU": 6.0}, [6.0], "has 6 GPUs in all"),  # too few GPUs for 2 roles x 4
        (1, 4, {"CPU": 64.0}, [], "has 0 GPUs in all"),  # a CPU-only cluster
        (2, 8, {"GPU": 16.0}, [8.0, 8.0], "32 GPUs"),  # 2 roles x 2 nodes x 8 asked, 16 there
        (1, 4, {"GPU": 8.0}, [3.0, 3.0, 2.0], "hold only 0 such group(s)"),  # 8 GPUs, no 4 on a node
        (2, 4, {"GPU": 18.0}, [6.0, 6.0, 6.0], "hold only 3 such group(s)"),  # 4 groups of 4 asked
    ],
)
def test_cluster_too_small_names_the_keys_and_what_it_has(nnodes, per_node, cluster, node_gpus, says):
    with pytest.raises(ClusterError) as caught:
        check_cluster(_resources(nnodes, per_node), cluster, node_gpus)
    message = str(caught.value)
    assert "resources.nnodes" in message and "resources.gpus_per_node" in message
    assert says in message


def test_cluster_error_is_a_recipe_error():
    # so `coevolve train` prints it as a one-line message instead of a traceback
    assert issubclass(ClusterError, RecipeError)
