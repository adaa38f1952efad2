"""An idle role's optimizer state parked in a file and back (coevolve/backend/verl_trainer.py):
on an FSDP2-sharded model, as verl's workers hold it, the next updates are exactly those of an
optimizer that never left RAM."""

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

import torch.distributed as dist  # noqa: E402
from torch.distributed.fsdp import fully_shard  # noqa: E402

from coevolve.backend import verl_trainer  # noqa: E402


@pytest.fixture(scope="module")
def process_group():
    if not dist.is_initialized():
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:29517", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def sharded_model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    fully_shard(model)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def steps(model, optimizer, count, seed):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        x = torch.randn(4, 8, generator=generator)
        model(x).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("before", [
    2,  # parked after two updates: the moments must come back
    0,  # parked before any update (the solver's first phase has no state yet)
])
def test_parked_optimizer_resumes_exactly(process_group, tmp_path, before):
    kept, kept_opt = sharded_model_and_optimizer()
    parked, parked_opt = sharded_model_and_optimizer()
    steps(kept, kept_opt, before, seed=1)
    steps(parked, parked_opt, before, seed=1)
    # verl's fused Ray actor: role key -> worker, the worker's actor -> engine -> optimizer
    worker = SimpleNamespace(actor=SimpleNamespace(engine=SimpleNamespace(optimizer=parked_opt)))
    actor = SimpleNamespace(worker_dict={"actor_rollout": worker})
    path = tmp_path / "parked.pt"
    verl_trainer._park_optimizer(actor, str(path))
    assert not parked_opt.state and path.is_file()  # out of RAM
    verl_trainer._unpark_optimizer(actor, str(path))
    assert not path.exists()
    steps(kept, kept_opt, 2, seed=2)
    steps(parked, parked_opt, 2, seed=2)
    for a, b in zip(kept.parameters(), parked.parameters(), strict=True):
        assert torch.equal(a.full_tensor(), b.full_tensor())
