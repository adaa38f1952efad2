"""The CPU's in-process agent loop: requests go to the least busy server, without verl's actors."""

import asyncio

import pytest

from coevolve.backend.agent_loop import DirectServerClient, InProcessWorker


class _Server:
    """A rollout server actor's `generate.remote`, answering after `delay` seconds."""

    def __init__(self, name: str, delay: float) -> None:
        self.name, self.delay, self.calls = name, delay, 0
        self.generate = self

    def remote(self, **kwargs):
        self.calls += 1
        return self._answer()

    async def _answer(self):
        from verl.workers.rollout.replica import TokenOutput

        await asyncio.sleep(self.delay)
        return TokenOutput(token_ids=[1], log_probs=None, extra_fields={"global_steps": 3})


def _client(servers):
    from omegaconf import OmegaConf

    client = DirectServerClient(OmegaConf.create({"actor_rollout_ref": {"rollout": {"name": "hf"}}}))
    client.use_servers({s.name: s for s in servers})
    return client


def test_requests_spread_over_servers_and_are_released():
    fast, slow = _Server("a", 0.01), _Server("b", 0.01)
    client = _client([fast, slow])

    async def many():
        return await asyncio.gather(*[client.generate(f"r{i}", prompt_ids=[1, 2], sampling_params={})
                                      for i in range(6)])

    outputs = asyncio.run(many())
    assert [o.token_ids for o in outputs] == [[1]] * 6
    assert outputs[0].extra_fields["min_global_steps"] == 3
    assert (fast.calls, slow.calls) == (3, 3)  # all in flight at once: least busy alternates
    assert client.in_flight() == {"a": 0, "b": 0}


def test_a_client_without_servers_says_so():
    from omegaconf import OmegaConf

    client = DirectServerClient(OmegaConf.create({"actor_rollout_ref": {"rollout": {"name": "hf"}}}))
    with pytest.raises(RuntimeError, match="no servers yet"):
        asyncio.run(client.generate("r0", prompt_ids=[1], sampling_params={}))
    with pytest.raises(ValueError, match="at least one server"):
        client.use_servers({})


def test_an_in_process_worker_is_called_like_a_ray_actor():
    class Worker:
        async def generate_sequences(self, batch):
            return batch * 2

    async def call():
        worker = InProcessWorker(Worker())
        return await asyncio.gather(worker.generate_sequences.remote(2), worker.generate_sequences.remote(5))

    assert asyncio.run(call()) == [4, 10]
