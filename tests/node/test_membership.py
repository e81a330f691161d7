"""Membership of running nodes on the less-travelled paths (issue 10, bugs 1, 4, 5).

Real :class:`~traft.node.node.Node`s on ``net.MemoryNetwork`` (with a fault
injector for partitions) under trio's autojump clock.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import net
from tests.kv.asgi import call
from tests.node.test_node import Harness, cluster_config
from traft.kv.http import KVApp
from traft.kv.state import KVStore
from traft.node.errors import MemberChangeError


@asynccontextmanager
async def faulty_harness(tmp: Path, n: int = 3, **kw: Any) -> AsyncIterator[Harness]:
    """The node tests' harness on a network that can be partitioned (``h.network.faults``)."""
    async with trio.open_nursery() as nursery:
        h = Harness(tmp, cluster_config(n, **kw), nursery)
        h.network = net.MemoryNetwork(
            cluster_id=net.cluster_id_from("test"), faults=net.FaultInjector(random.Random(0))
        )
        try:
            yield h
        finally:
            nursery.cancel_scope.cancel()


def faults(h: Harness) -> net.FaultInjector:
    assert h.network.faults is not None
    return h.network.faults


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


class Outcome:
    """What a background call returned or raised, and when."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.at = 0.0

    async def run(self, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            self.result = await call()
        except Exception as exc:
            self.error = exc
        self.at = trio.current_time()
        self.done.set()


# -- bug 4: a removed id cannot be added again -----------------------------------------


async def test_readding_a_removed_id_is_refused_end_to_end(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with faulty_harness(tmp_path, n=4, join=[4]) as h:
        for i in (1, 2, 3, 4):
            await h.start(i)
        leader = await h.leader()
        await leader.add_member(4, ("127.0.0.1", 7004), ("127.0.0.1", 8004))
        await leader.remove_member(4)
        with trio.fail_after(5):
            await h.nodes[4].removed.wait()
        await h.submit(b"1")
        await trio.sleep(1)
        leader = await h.leader()
        assert leader.raft is not None
        before = leader.raft.membership()
        assert before.removed == frozenset({4})
        index = leader.raft.current_index

        with pytest.raises(MemberChangeError, match="node 4 was removed.*new id"):
            await leader.add_member(4, ("127.0.0.1", 7004), ("127.0.0.1", 8004))
        app = KVApp(leader, KVStore())
        body = json.dumps({"id": 4, "peer": "127.0.0.1:7004", "http": "127.0.0.1:8004"})
        r = await call(app, "POST", "/members", body.encode())
        assert r.status == 409
        assert "node 4 was removed" in r.json()["error"] and "new id" in r.json()["error"]

        await trio.sleep(1)
        assert leader.raft.current_index == index
        for i in (1, 2, 3):
            raft = h.nodes[i].raft
            assert raft is not None and raft.membership() == before
            assert raft.voters() == [1, 2, 3]


# -- bug 5: a removal learnt through a snapshot stops the node ---------------------------


async def test_node_removed_while_away_learns_it_from_a_snapshot(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with faulty_harness(tmp_path, snapshot_entries=20) as h:
        for i in (1, 2, 3):
            await h.start(i)
        await h.submit(b"1")
        leader = await h.leader()
        away = next(i for i in (1, 2, 3) if i != leader.id)
        h.kill(away)
        await leader.remove_member(away)
        for _ in range(60):
            await h.submit(b"1")
        assert leader.raft is not None and leader.raft.first_index > 10
        node = await h.start(away)
        with trio.fail_after(30):
            await node.removed.wait()
        assert node.counters.snapshots_installed == 1
        assert node.raft is not None and not node.raft.is_member()
