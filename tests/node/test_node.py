"""Nodes over an in-memory datagram network, under trio's autojump clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import net
from traft.core import SnapshotMeta
from traft.node.config import ClusterConfig, Member, SnapshotPolicy, Timing
from traft.node.durable import Durable
from traft.node.errors import NotLeaderError, ProposalTimeout
from traft.node.node import Node


class Counter:
    """A tiny deterministic state machine: sums the integers it is given."""

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def apply(self, index: int, command: bytes) -> int:
        self.total += int(command)
        self.count += 1
        return self.total

    def snapshot(self) -> Iterable[bytes]:
        yield f"{self.total},{self.count}".encode()

    def restore(self, chunks: Iterable[bytes]) -> None:
        total, count = b"".join(chunks).decode().split(",")
        self.total, self.count = int(total), int(count)


def cluster_config(
    n: int, *, snapshot_entries: int = 100_000, join: Iterable[int] = ()
) -> ClusterConfig:
    members = {
        i: Member(i, ("127.0.0.1", 7000 + i), ("127.0.0.1", 8000 + i), i in set(join))
        for i in range(1, n + 1)
    }
    return ClusterConfig(
        cluster_id="test",
        members=members,
        timing=Timing(tick_ms=10, election_timeout_ms=300, heartbeat_ms=50),
        snapshot=SnapshotPolicy(entries=snapshot_entries, keep_entries=5),
    )


class Harness:
    def __init__(self, tmp: Path, config: ClusterConfig, nursery: trio.Nursery) -> None:
        self.tmp = tmp
        self.config = config
        self.network = net.MemoryNetwork(cluster_id=net.cluster_id_from("test"))
        self.nursery = nursery
        self.nodes: dict[int, Node] = {}
        self.machines: dict[int, Counter] = {}
        self.scopes: dict[int, trio.CancelScope] = {}

    async def start(self, node_id: int, *, lease_reads: bool = False) -> Node:
        machine = Counter()
        node = Node(
            node_id,
            self.config,
            self.tmp / f"n{node_id}",
            machine,
            endpoint=self.network.endpoint(node_id),
            rng=random.Random(node_id),
            persist_in_thread=False,
            lease_reads=lease_reads,
        )
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await node.run(task_status=task_status)

        await self.nursery.start(run)
        self.nodes[node_id] = node
        self.machines[node_id] = machine
        self.scopes[node_id] = scope
        return node

    def kill(self, node_id: int) -> None:
        self.scopes.pop(node_id).cancel()
        del self.nodes[node_id]

    async def leader(self, timeout: float = 10.0) -> Node:
        with trio.fail_after(timeout):
            while True:
                leaders = [
                    n for n in self.nodes.values() if n.raft is not None and n.raft.is_leader
                ]
                if len(leaders) == 1 and leaders[0].raft is not None:
                    return leaders[0]
                await trio.sleep(0.05)

    async def submit(self, command: bytes) -> int:
        for _ in range(50):
            leader = await self.leader()
            try:
                result: int = await leader.submit(command, timeout=2.0)
                return result
            except NotLeaderError:
                await trio.sleep(0.1)
        raise AssertionError("no leader accepted the proposal")


@asynccontextmanager
async def harness(tmp: Path, n: int = 3, **kw: object) -> AsyncIterator[Harness]:
    async with trio.open_nursery() as nursery:
        h = Harness(tmp, cluster_config(n, **kw), nursery)  # type: ignore[arg-type]
        try:
            yield h
        finally:
            nursery.cancel_scope.cancel()


async def test_elects_replicates_and_answers(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        results = [await h.submit(b"%d" % k) for k in range(1, 11)]
        assert results[-1] == 55
        await trio.sleep(1)
        assert {m.total for m in h.machines.values()} == {55}


async def test_follower_refuses_with_leader_url(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        follower = next(n for n in h.nodes.values() if n is not leader)
        await trio.sleep(1)
        with pytest.raises(NotLeaderError) as info:
            await follower.submit(b"1")
        assert info.value.leader_id == leader.id
        assert info.value.leader_url == f"http://127.0.0.1:{8000 + leader.id}"


async def test_linearizable_read(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        await h.submit(b"7")
        leader = await h.leader()
        assert await leader.read(lambda m: m.total) == 7


async def test_leader_crash_failover_and_restart_catch_up(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        for _k in range(5):
            await h.submit(b"1")
        old = await h.leader()
        h.kill(old.id)
        await trio.sleep(0.1)
        new = await h.leader()
        assert new.id != old.id
        for _k in range(5):
            await h.submit(b"1")
        await h.start(old.id)
        await trio.sleep(2)
        assert h.machines[old.id].total == 10
        assert {m.total for m in h.machines.values()} == {10}


async def test_restart_of_whole_cluster_keeps_everything(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        for _k in range(20):
            await h.submit(b"2")
        for i in (1, 2, 3):
            h.kill(i)
        await trio.sleep(0.5)
        for i in (1, 2, 3):
            await h.start(i)
        assert await h.submit(b"0") == 40


async def test_lagging_follower_catches_up_by_snapshot(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path, snapshot_entries=20) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        lagger = next(i for i in (1, 2, 3) if i != leader.id)
        h.kill(lagger)
        for _k in range(60):
            await h.submit(b"1")
        assert leader.raft is not None and leader.raft.snapshot is not None
        assert leader.raft.first_index > 2
        node = await h.start(lagger)
        await trio.sleep(3)
        assert h.machines[lagger].total == 60
        assert node.counters.snapshots_installed >= 1


async def test_member_add_and_remove(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    async with harness(tmp_path, n=4, join=[4]) as h:
        for i in (1, 2, 3):
            await h.start(i)
        for _k in range(10):
            await h.submit(b"1")
        await h.start(4)
        leader = await h.leader()
        await leader.add_member(4, ("127.0.0.1", 7004), ("127.0.0.1", 8004))
        assert leader.raft is not None and leader.raft.voters() == [1, 2, 3, 4]
        await h.submit(b"1")
        await trio.sleep(1)
        assert h.machines[4].total == 11
        victim = next(i for i in (1, 2, 3) if i != leader.id)
        await leader.remove_member(victim)
        assert leader.raft.voters() == sorted({1, 2, 3, 4} - {victim})
        with trio.fail_after(5):
            await h.nodes[victim].removed.wait()


def solo_node(tmp: Path) -> Node:
    """A one-node cluster on its own in-memory network, persisting inline."""
    return Node(
        1,
        cluster_config(1),
        tmp / "n1",
        Counter(),
        endpoint=net.MemoryNetwork(cluster_id=net.cluster_id_from("test")).endpoint(1),
        rng=random.Random(1),
        persist_in_thread=False,
    )


async def test_a_failing_task_leaves_async_with_node_with_its_own_error(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    # Regression (found by scripts/nemesis: traft serve died of "Nursery stack
    # corrupted"). When a node task failed, the body of `async with node:` was
    # cancelled, and __aexit__ awaited stop() in the cancelled scope: its
    # Cancelled skipped the exit of the nursery __aenter__ had opened, trio's
    # nursery stack broke and the real error was lost.
    node = solo_node(tmp_path)

    async def failing_ticker() -> None:
        await trio.sleep(1)
        raise RuntimeError("a node task failed")

    node._ticker = failing_ticker  # type: ignore[method-assign]
    with pytest.raises(BaseExceptionGroup) as info:  # noqa: PT012
        with trio.fail_after(30):
            async with node, trio.open_nursery():
                await trio.sleep_forever()
    assert info.group_contains(RuntimeError, match="a node task failed")


async def test_restart_after_a_crash_between_snapshot_save_and_log_compaction(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    # Regression (found by scripts/nemesis: a node restarted right after a snapshot
    # install died on the leader's first entries). Installing a snapshot saves it,
    # then compacts the log in a later Ready; a crash in between leaves a snapshot
    # past the end of the log. The node restored from the snapshot, but the
    # storage log still expected the entry after its own end, so the first append
    # (snapshot index + 1) failed and the node task crashed, again on each restart.
    def make() -> Node:
        return solo_node(tmp_path)

    async def lead(node: Node) -> None:
        while node.raft is None or not node.raft.is_leader:
            await trio.sleep(0.05)

    with trio.fail_after(60):
        async with make() as node:
            await lead(node)
            for _ in range(5):
                await node.submit(b"1")
            assert node.raft is not None
            membership, term = node.raft.membership(), node.raft.term
        durable = Durable(tmp_path / "n1")
        assert durable.log.last_index < 40
        durable.save_snapshot(SnapshotMeta(40, term, membership), [b"100,40"])
        durable.close()  # the crash: the snapshot is durable, the log not compacted
        async with make() as node:
            await lead(node)
            assert await node.submit(b"7") == 107
        async with make() as node:
            await lead(node)
            assert await node.submit(b"1") == 108


async def test_submit_nowait_calls_back_once_per_command(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        outcomes: list[tuple[object, BaseException | None]] = []
        all_done = trio.Event()

        def callback(result: object, error: BaseException | None) -> None:
            outcomes.append((result, error))
            if len(outcomes) == 100:
                all_done.set()

        for _ in range(100):
            leader.submit_nowait(b"1", callback, timeout=5.0)
        with trio.fail_after(10):
            await all_done.wait()
        assert [r for r, _ in outcomes] == list(range(1, 101))
        assert all(e is None for _, e in outcomes)
        follower = next(n for n in h.nodes.values() if n is not leader)
        with pytest.raises(NotLeaderError):
            follower.submit_nowait(b"1", callback)


async def test_submit_times_out_when_no_majority_answers(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        for i in list(h.nodes):
            if h.nodes[i] is not leader:
                h.kill(i)
        errors: list[BaseException | None] = []
        leader.submit_nowait(b"1", lambda _, e: errors.append(e), timeout=0.2)
        with trio.fail_after(5), pytest.raises(ProposalTimeout):
            await leader.submit(b"1", timeout=0.2)
        assert len(errors) == 1 and isinstance(errors[0], ProposalTimeout)
