"""verl's agent loop on the CPU without its two helper processes per role.

verl runs a role's agent loop in Ray actors of its own (`AgentLoopWorker`) and routes each
request through a load-balancer actor (`GlobalRequestLoadBalancer`). On the CPU a role has one
rollout server, so both only forward requests, and each is a process that imports torch,
transformers and verl: 0.44-0.53 GiB of PSS each, four of them in a run (`logs/memory.json`,
docs/results.md "Memory of a run"). Here the role's agent loop runs in the driver, as an
object called the way verl calls its actor, and its requests go straight to the role's servers
(`ServersWithoutBalancer` stands in for verl's server manager while the trainer starts).
On a GPU verl's processes stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from verl.workers.rollout.llm_server import LLMServerClient, LLMServerManager


class ServersWithoutBalancer(LLMServerManager):
    """verl's manager of a role's rollout servers, minus the load-balancer actor it starts."""

    async def _init_global_load_balancer(self) -> None:
        self.global_load_balancer = None


class DirectServerClient(LLMServerClient):
    """verl's LLM client that sends each request to its least busy server itself, with no
    load-balancer actor (single-turn requests need no sticky sessions)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config, load_balancer_handle=None)
        self._servers: dict[str, Any] = {}
        self._in_flight: dict[str, int] = {}

    def use_servers(self, servers: Mapping[str, Any]) -> None:
        """The role's rollout servers, by address (known only once verl has started them)."""
        if not servers:
            raise ValueError("a rollout client needs at least one server")
        self._servers = dict(servers)
        self._in_flight = dict.fromkeys(self._servers, 0)

    async def _acquire_server(self, request_id: str, **extra: Any) -> tuple[str, Any]:
        if not self._servers:
            raise RuntimeError(f"request {request_id}: the rollout client has no servers yet (use_servers)")
        server_id = min(self._in_flight, key=self._in_flight.__getitem__)
        self._in_flight[server_id] += 1
        return server_id, self._servers[server_id]

    def _release_server(self, server_id: str, request_id: str | None = None) -> None:
        self._in_flight[server_id] -= 1

    def in_flight(self) -> dict[str, int]:
        """Requests sent and not yet answered, per server."""
        return dict(self._in_flight)


class _AsRemote:
    """`method.remote(*args)` for a method of a local object: the coroutine verl awaits."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self._method = method

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._method(*args, **kwargs)


class InProcessWorker:
    """A verl `AgentLoopWorker` in this process, called like its Ray actor
    (`worker.generate_sequences.remote(batch)`, awaited by verl's `AgentLoopManager`)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.generate_sequences = _AsRemote(worker.generate_sequences)
