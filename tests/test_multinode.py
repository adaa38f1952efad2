"""Several Ray nodes for real, on one machine: Ray's own multi-node-on-one-host facility
(`ray.cluster_utils.Cluster`: a head and worker raylets, each with its own logical GPU slot).

The tiny end-to-end recipe joins it through `resources.ray_address` with nnodes = 2 and
gpus_per_node = 1: each role is spread over two nodes (a placement group per node, FSDP across
them), and the two roles sit on different nodes (four nodes, one slot each). Where each role's
trainer workers ran is what the run records in `<run_dir>/logs/placement_<role>.json`. `check_cluster` refuses, against the same
cluster, a recipe whose per-node groups cannot be placed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.e2e import REPO, overrides, start, wait_for

pytestmark = pytest.mark.slow

NODES = 4


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 8, "num_gpus": 1, "include_dashboard": False})
    for _ in range(NODES - 1):
        c.add_node(num_cpus=8, num_gpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()


def worker_nodes(run_dir: Path, role: str) -> set[str]:
    """The Ray nodes of a role's trainer workers, as the run recorded them."""
    import json

    return set(json.loads((run_dir / "logs" / f"placement_{role}.json").read_text())["worker_nodes"])


def test_roles_on_different_nodes_and_each_spread_over_two(cluster, tmp_path):
    from helpers.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    run_dir = tmp_path / "run"
    log = tmp_path / "run.log"
    settings = [*overrides(model, run_dir), f"resources.ray_address={cluster.address}",
                "resources.nnodes=2", "resources.gpus_per_node=1",
                # 2 x 2 sequences a step over 2 workers: micro-batches of 1 (the recipe's rule)
                "challenger.micro_batch_size=1", "solver.micro_batch_size=1"]
    process = start(model, run_dir, log, settings=settings)
    wait_for(lambda: process.poll() is not None, process, 1200, log)
    assert process.returncode == 0, log.read_text()[-4000:]
    challenger, solver = worker_nodes(run_dir, "challenger"), worker_nodes(run_dir, "solver")
    assert len(challenger) == 2 and len(solver) == 2, (challenger, solver)  # each spread over two nodes
    assert not challenger & solver, (challenger, solver)  # and the roles never on the same node
    assert challenger | solver <= {node.node_id for node in cluster.list_all_nodes()}  # this cluster's nodes
    assert (run_dir / "checkpoints" / "iter_001" / "solver" / "config.json").is_file()


def test_check_cluster_refuses_groups_the_nodes_cannot_hold(cluster, tmp_path):
    from helpers.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    settings = [*overrides(model, tmp_path / "run"), f"resources.ray_address={cluster.address}",
                "resources.nnodes=1", "resources.gpus_per_node=2",
                "challenger.micro_batch_size=1", "solver.micro_batch_size=1"]
    result = subprocess.run([sys.executable, "-m", "coevolve.cli", "train", str(REPO / "recipes/base.yaml"),
                             *settings], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=_env())
    assert result.returncode == 2, result.stdout + result.stderr
    assert "hold only 0 such group(s)" in result.stderr and "resources.gpus_per_node" in result.stderr


def _env() -> dict[str, str]:
    import os

    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(REPO) / "tests"), str(REPO)]))
