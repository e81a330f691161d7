"""Leadership transfer, follower reads and lease reads of real Nodes
(net.MemoryNetwork, trio's autojump clock)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

import net
from tests.node.test_node import Counter, harness
from traft.core import Raft
from traft.node.errors import (
    LeadershipTransferring,
    NoLeaderError,
    NotLeaderError,
    ProposalTimeout,
    TransferFailed,
)
from traft.node.node import Node


def total(machine: object) -> int:
    assert isinstance(machine, Counter)
    return machine.total


async def test_transfer_to_a_named_follower_makes_it_leader(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        await h.submit(b"5")
        leader = await h.leader()
        target = next(i for i in sorted(h.nodes) if i != leader.id)
        assert await leader.transfer_leadership(target) == target
        assert (await h.leader()).id == target
        assert await h.nodes[target].submit(b"1") == 6


async def test_transfer_without_a_target_picks_a_live_voting_follower(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        down, up = (i for i in sorted(h.nodes) if i != leader.id)
        h.kill(down)
        for k in range(3):
            await leader.submit(b"%d" % k)
        assert await leader.transfer_leadership() == up


async def test_transfer_to_a_dead_follower_aborts_and_writes_resume(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        down = next(i for i in sorted(h.nodes) if i != leader.id)
        h.kill(down)
        with pytest.raises(TransferFailed) as info:
            await leader.transfer_leadership(down, timeout=5.0)
        assert info.value.target == down
        assert leader.raft is not None and leader.raft.is_leader
        assert await leader.submit(b"4") == 4


async def test_writes_during_a_transfer_are_refused_as_transferring(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        down = next(i for i in sorted(h.nodes) if i != leader.id)
        h.kill(down)
        async with trio.open_nursery() as nursery:

            async def transfer() -> None:
                with pytest.raises(TransferFailed):
                    await leader.transfer_leadership(down)

            nursery.start_soon(transfer)
            await trio.sleep(0.05)
            with pytest.raises(LeadershipTransferring):
                await leader.submit(b"1")


async def test_transfer_on_a_follower_raises_not_leader(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        await trio.sleep(0.5)
        follower = next(n for n in h.nodes.values() if n is not leader)
        with pytest.raises(NotLeaderError) as info:
            await follower.transfer_leadership()
        assert info.value.leader_id == leader.id


async def test_a_follower_read_sees_every_write_acknowledged_before_it(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        followers = [n for n in h.nodes.values() if n is not leader]
        for k in range(1, 6):
            expected = await leader.submit(b"%d" % k)
            # Read at once, before the follower necessarily applied the write:
            # it must ask the leader for a read index and wait for it.
            for follower in followers:
                assert await follower.read(total) == expected


async def test_a_follower_read_without_forwarding_raises_not_leader(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        await trio.sleep(0.5)
        follower = next(n for n in h.nodes.values() if n is not leader)
        with pytest.raises(NotLeaderError) as info:
            await follower.read(total, forward=False)
        assert not isinstance(info.value, NoLeaderError)
        assert info.value.leader_id == leader.id


async def test_lease_reads_are_linearizable_on_the_leader(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i, lease_reads=True)
        leader: Node = await h.leader()
        assert leader.raft is not None and leader.raft.config.lease_reads
        for k in range(1, 4):
            expected = await leader.submit(b"%d" % k)
            assert await leader.read(total) == expected


async def test_a_leader_frozen_past_its_lease_does_not_serve_a_stale_read(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    # The classic lease bug: a leader stopped (SIGSTOP) for longer than its
    # lease resumes and answers the reads queued meanwhile before its clock
    # catches up, while another leader has taken writes.
    async with harness(tmp_path) as h:
        faults = net.FaultInjector(random.Random(0))
        h.network = net.MemoryNetwork(cluster_id=net.cluster_id_from("test"), faults=faults)
        for i in (1, 2, 3):
            await h.start(i, lease_reads=True)
        old = await h.leader()
        await old.submit(b"1")
        assert await old.read(total) == 1
        assert old.raft is not None and old.raft.lease_remaining_ms() > 0
        # Freeze its clock: no tick reaches its core (as when the process is stopped).
        frozen = True
        real_on_tick = old._on_tick

        def on_tick(raft: Raft) -> None:
            if not frozen:
                real_on_tick(raft)

        old._on_tick = on_tick  # type: ignore[method-assign]
        others = [i for i in sorted(h.nodes) if i != old.id]
        faults.partition([old.id], others)
        with trio.fail_after(10):
            while not any(h.nodes[i].raft.is_leader for i in others):  # type: ignore[union-attr]
                await trio.sleep(0.05)
        new = next(h.nodes[i] for i in others if h.nodes[i].raft.is_leader)  # type: ignore[union-attr]
        assert await new.submit(b"10") == 11
        frozen = False  # it resumes; the first thing it handles is a read
        with pytest.raises((ProposalTimeout, NotLeaderError)):
            stale = await old.read(total, timeout=1.0)
            raise AssertionError(f"the deposed leader answered {stale}, not 11")
