"""A stand-in for traft.node.node.Node with the same surface, for HTTP and client tests.

It applies every command at once to a real KVStore (a one-node "cluster"),
and can be told to act as a follower, to know no leader, or to fail the next
calls with a given error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import trio
from prometheus_client import CollectorRegistry, Counter

from traft.kv.state import KVStore
from traft.node.errors import NoLeaderError, NotLeaderError

T = TypeVar("T")


class FakeNode:
    def __init__(self, node_id: int = 1, store: KVStore | None = None) -> None:
        self.node_id = node_id
        self.store = store if store is not None else KVStore()
        self.registry = CollectorRegistry()
        self.commits = Counter("traft_commits", "entries committed", registry=self.registry)
        self.index = 0
        self.role = "leader"
        self.leader_url: str | None = "http://127.0.0.1:1"
        self.leader_id: int | None = node_id
        self.fail_with: list[BaseException] = []  # raised by the next calls, in order
        self.members: dict[int, dict[str, Any]] = {
            node_id: {
                "id": node_id,
                "voting": True,
                "peer": "127.0.0.1:7001",
                "http": "127.0.0.1:8001",
            }
        }
        self.removed = trio.Event()
        self.submitted: list[bytes] = []
        self.reads = 0
        self.transfers: list[int | None] = []

    def _check(self) -> None:
        if self.fail_with:
            raise self.fail_with.pop(0)
        if self.role != "leader":
            if self.leader_id is None:
                raise NoLeaderError()
            raise NotLeaderError(self.leader_id, self.leader_url)

    async def submit(self, command: bytes, *, timeout: float = 5.0) -> Any:
        await trio.lowlevel.checkpoint()
        self._check()
        self.submitted.append(command)
        self.index += 1
        self.commits.inc()
        return self.store.apply(self.index, command)

    async def read(
        self, query: Callable[[Any], T], *, timeout: float = 5.0, forward: bool = True
    ) -> T:
        """As the node: a follower that knows its leader answers unless ``forward`` is False."""
        await trio.lowlevel.checkpoint()
        if self.fail_with:
            raise self.fail_with.pop(0)
        if self.role != "leader" and (not forward or self.leader_id is None):
            self._check()
        self.reads += 1
        return query(self.store)

    async def transfer_leadership(self, to: int | None = None, *, timeout: float = 5.0) -> int:
        await trio.lowlevel.checkpoint()
        self._check()
        new = to if to is not None else self.node_id + 1
        self.transfers.append(to)
        self.role, self.leader_id = "follower", new
        return new

    async def add_member(
        self, node_id: int, peer: tuple[str, int], http: tuple[str, int], *, timeout: float = 30.0
    ) -> None:
        await trio.lowlevel.checkpoint()
        self._check()
        self.members[node_id] = {
            "id": node_id,
            "voting": True,
            "peer": f"{peer[0]}:{peer[1]}",
            "http": f"{http[0]}:{http[1]}",
        }

    async def remove_member(self, node_id: int, *, timeout: float = 30.0) -> None:
        await trio.lowlevel.checkpoint()
        self._check()
        self.members.pop(node_id, None)

    def status(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "role": self.role,
            "term": 1,
            "leader_id": self.leader_id,
            "leader_url": self.leader_url,
            "commit": self.index,
            "applied": self.index,
            "members": [self.members[i] for i in sorted(self.members)],
            "log": {"first": 1, "last": self.index},
            "snapshot": None,
        }

    async def stop(self) -> None:
        pass
