"""Entries larger than a datagram, end to end: three nodes on a MemoryNetwork.

A 1 MB command is one AppendEntries of about 17 datagrams' worth; the
network fragments it, the followers reassemble it, persist it and apply it.
Everything runs under trio's autojump clock.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import net
from traft.node.config import DEFAULT_MAX_COMMAND, ClusterConfig, Member, Timing
from traft.node.errors import NotLeaderError
from traft.node.node import Node

MB = 1_000_000


class Values:
    """A state machine that keeps every command it applies, by index."""

    def __init__(self) -> None:
        self.applied: dict[int, bytes] = {}

    def apply(self, index: int, command: bytes) -> str:
        self.applied[index] = command
        return hashlib.sha256(command).hexdigest()

    def snapshot(self) -> Iterable[bytes]:
        yield b""

    def restore(self, chunks: Iterable[bytes]) -> None:
        self.applied = {}


def config(max_command: int = DEFAULT_MAX_COMMAND) -> ClusterConfig:
    return ClusterConfig(
        cluster_id="large",
        members={i: Member(i, ("127.0.0.1", 7000 + i), ("127.0.0.1", 8000 + i)) for i in (1, 2, 3)},
        timing=Timing(tick_ms=10, election_timeout_ms=300, heartbeat_ms=50),
        max_command=max_command,
    )


@asynccontextmanager
async def cluster(
    tmp: Path, faults: net.FaultInjector | None = None, max_command: int = DEFAULT_MAX_COMMAND
) -> AsyncIterator[tuple[dict[int, Node], dict[int, Values]]]:
    network = net.MemoryNetwork(cluster_id=net.cluster_id_from("large"), faults=faults)
    nodes: dict[int, Node] = {}
    machines: dict[int, Values] = {}
    async with trio.open_nursery() as nursery:
        for i in (1, 2, 3):
            machines[i] = Values()
            nodes[i] = Node(
                i,
                config(max_command),
                tmp / f"n{i}",
                machines[i],
                endpoint=network.endpoint(i),
                rng=random.Random(i),
                persist_in_thread=False,
            )
            await nursery.start(nodes[i].run)
        yield nodes, machines
        nursery.cancel_scope.cancel()


async def submit(nodes: dict[int, Node], command: bytes) -> str:
    for _ in range(100):
        for node in nodes.values():
            if node.raft is not None and node.raft.is_leader:
                try:
                    result: str = await node.submit(command, timeout=10.0)
                    return result
                except NotLeaderError:
                    pass
        await trio.sleep(0.1)
    raise AssertionError("no leader took the command")


async def everyone_applied(machines: dict[int, Values], values: list[bytes]) -> None:
    with trio.fail_after(60):
        while not all(list(m.applied.values()) == values for m in machines.values()):
            await trio.sleep(0.1)


def big(seed: int, size: int = MB) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_a_one_megabyte_command_replicates_and_reads_back(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with cluster(tmp_path) as (nodes, machines):
        values = [big(1), b"small", big(2, DEFAULT_MAX_COMMAND)]
        for value in values:
            assert await submit(nodes, value) == hashlib.sha256(value).hexdigest()
        await everyone_applied(machines, values)
        for node in nodes.values():
            assert node.endpoint is not None
            # The big entries crossed in fragments, each AppendEntries whole.
            if not (node.raft is not None and node.raft.is_leader):
                assert node.endpoint.stats["reassembled"] >= 2


async def test_big_commands_survive_lost_duplicated_and_reordered_datagrams(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    faults = net.FaultInjector(random.Random(7))
    async with cluster(tmp_path, faults) as (nodes, machines):
        await submit(nodes, b"warm up")  # elect a leader on a clean network
        faults.set(drop=0.03, dupe=0.1, reorder=0.1, delay_ms=(0.0, 3.0))
        values = [b"warm up", big(3), big(4, 300_000), big(5)]
        for value in values[1:]:
            await submit(nodes, value)
        await everyone_applied(machines, values)
        assert faults.stats["dropped"] and faults.stats["duplicated"] and faults.stats["reordered"]


async def test_a_command_over_the_limit_is_refused_at_submit(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with cluster(tmp_path, max_command=200_000) as (nodes, _):
        await submit(nodes, b"elect")
        leader = next(n for n in nodes.values() if n.raft is not None and n.raft.is_leader)
        with pytest.raises(ValueError, match="exceeds the limit of 200000"):
            await leader.submit(b"x" * 200_001)
        assert await leader.submit(b"x" * 200_000)


def test_max_command_is_read_from_cluster_toml_and_checked() -> None:
    base = {"cluster_id": "c", "node": [{"id": 1, "peer": "127.0.0.1:1", "http": "127.0.0.1:2"}]}
    assert ClusterConfig.from_dict(base).max_command == 1 << 20
    loaded = ClusterConfig.from_dict({**base, "max_command": 5 << 20})
    assert loaded.max_command == 5 << 20
    assert "max_command = 5242880" in loaded.to_toml()
    for bad in (0, 1023, (64 << 20) + 1, "1MB", True):
        with pytest.raises(Exception, match="max_command must be an integer"):
            ClusterConfig.from_dict({**base, "max_command": bad})
