"""Installing a snapshot on a real Node: a crash at every step, then a restart.

The test plays the leader itself over ``net.MemoryNetwork``: it sends node 1
a snapshot as raw wire messages, makes the install fail at one step through
a seam (a method that raises), and restarts the node from its data directory.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
import trio

import net
import storage
from traft.core import (
    Entry,
    EntryType,
    HardState,
    Membership,
    NodeConfig,
    Raft,
    Ready,
    RequestVote,
    RequestVoteResponse,
)
from traft.core.progress import ProgressState
from traft.node.durable import Durable
from traft.node.node import Node
from traft.wire import SnapshotChunk, decode, encode

from .test_node import Counter, cluster_config, harness

MEMBERS = Membership((NodeConfig(1, True), NodeConfig(2, True), NodeConfig(3, True)))
SNAP_INDEX, SNAP_TERM = 20, 2
STALE_LAST = 25  # node 1 holds 1..25 of term 1; the committed entry 20 has term 2


class Crash(Exception):
    """The simulated kill: raised by a seam in the middle of an install."""


def crash(*args: object, **kwargs: object) -> Any:
    raise Crash


def seed_stale_log(path: Path) -> None:
    """Node 1's disk: term 1, entries 1..25 of term 1 (an old leader's, uncommitted)."""
    durable = Durable(path)
    entries = [Entry(1, i, i, EntryType.NORMAL, b"1") for i in range(1, STALE_LAST + 1)]
    durable.persist(Ready(hard_state=HardState(1, None), entries=entries))
    durable.close()


def arm(point: str, m: pytest.MonkeyPatch, machine: Counter) -> None:
    """Make the install fail at ``point``; the steps, in the node's order:

    save the snapshot file -> the core installs it in memory -> the state
    machine restores -> truncate and compact the log durably -> sync.
    """
    if point == "before_save":
        m.setattr(storage.SnapshotWriter, "commit", crash)
    elif point == "after_save":
        m.setattr(Raft, "begin_load_snapshot", crash)
    elif point == "during_restore":
        m.setattr(machine, "restore", crash)
    elif point == "before_truncate":
        persist = Durable.persist

        def persist_or_crash(self: Durable, rd: Ready) -> None:
            if rd.compact_upto is not None or rd.truncate_from is not None:
                raise Crash
            persist(self, rd)

        m.setattr(Durable, "persist", persist_or_crash)
    elif point == "between_truncate_and_compact":
        m.setattr(storage.SegmentLog, "compact_upto", crash)
    elif point == "before_sync":
        sync = storage.SegmentLog.sync

        def sync_or_crash(self: storage.SegmentLog) -> None:
            if self.first_index > SNAP_INDEX:
                raise Crash
            sync(self)

        m.setattr(storage.SegmentLog, "sync", sync_or_crash)
    else:
        assert point == "none"


def make_node(path: Path, network: net.MemoryNetwork, machine: Counter) -> Node:
    return Node(
        1,
        cluster_config(3),
        path,
        machine,
        endpoint=network.endpoint(1),
        rng=random.Random(1),
        persist_in_thread=False,
    )


def snapshot_chunk() -> SnapshotChunk:
    data = f"{SNAP_INDEX},{SNAP_INDEX}".encode()
    return SnapshotChunk(
        term=SNAP_TERM,
        leader_id=3,
        index=SNAP_INDEX,
        snapshot_term=SNAP_TERM,
        membership=MEMBERS.to_bytes(),
        offset=0,
        total=len(data),
        checksum=hashlib.sha256(data).digest(),
        data=data,
    )


async def vote_reply(candidate: net.MemoryEndpoint, msg: RequestVote) -> RequestVoteResponse:
    candidate.send(1, encode(msg))
    with trio.fail_after(5):
        async for datagram in candidate.receive_channel:
            reply = decode(datagram.payload)
            if isinstance(reply, RequestVoteResponse) and reply.term == msg.term:
                return reply
    raise AssertionError("no answer to the RequestVote")


POINTS = [
    "before_save",
    "after_save",
    "during_restore",
    "before_truncate",
    "between_truncate_and_compact",
    "before_sync",
    "none",
]


@pytest.mark.parametrize("point", POINTS)
async def test_snapshot_install_survives_a_crash_at_every_step(
    tmp_path: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    # Issue 10, bug 2. Node 1 holds a stale tail (1..25, term 1); the leader of
    # term 2 sends it a snapshot at (20, term 2). Whatever step the install dies
    # at, the restarted node's log must agree with its snapshot, and it must not
    # vote for a candidate lacking the committed entry (20, term 2).
    path = tmp_path / "n1"
    seed_stale_log(path)
    network = net.MemoryNetwork(cluster_id=net.cluster_id_from("test"))
    leader = network.endpoint(3)
    candidate = network.endpoint(2)
    async with trio.open_nursery() as nursery:
        await nursery.start(leader.serve)
        await nursery.start(candidate.serve)

        machine = Counter()
        with monkeypatch.context() as m:
            arm(point, m, machine)
            if point == "none":
                async with make_node(path, network, machine) as node:
                    leader.send(1, encode(snapshot_chunk()))
                    await trio.sleep(1)
                    assert node.counters.snapshots_installed == 1
            else:
                with pytest.raises(BaseExceptionGroup) as info:  # noqa: PT012
                    with trio.fail_after(30):
                        async with make_node(path, network, machine):
                            leader.send(1, encode(snapshot_chunk()))
                            await trio.sleep(5)
                assert info.group_contains(Crash)

        machine = Counter()
        async with make_node(path, network, machine) as node:
            raft = node.raft
            assert raft is not None
            if point == "before_save":
                # Nothing of the install reached the disk: the old state is intact.
                assert raft.snapshot is None and raft.current_index == STALE_LAST
                assert machine.total == 0
            else:
                snap = raft.snapshot
                assert snap is not None and (snap.index, snap.term) == (SNAP_INDEX, SNAP_TERM)
                assert machine.total == SNAP_INDEX
                log = raft.log
                assert log.term_at(SNAP_INDEX) == SNAP_TERM
                assert all(
                    (log.term_at(i) or 0) >= SNAP_TERM
                    for i in range(SNAP_INDEX + 1, log.last_index + 1)
                )
                durable = node._durable
                assert durable is not None
                if durable.log.last_index >= SNAP_INDEX >= durable.log.first_index:
                    assert durable.log.term_at(SNAP_INDEX) == SNAP_TERM
                request = RequestVote(
                    term=9, candidate_id=2, last_log_index=STALE_LAST, last_log_term=1
                )
                reply = await vote_reply(candidate, request)
                assert not reply.vote_granted, "voted for a candidate lacking (20, term 2)"
        nursery.cancel_scope.cancel()


async def test_follower_returns_to_replication_while_the_leader_keeps_snapshotting(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    # Issue 10, bug 3: with the leader snapshotting more often than a follower's
    # install round trip, the follower was sent snapshot after snapshot (the
    # heartbeat probed the leader's newest snapshot, rejections were ignored)
    # and never went back to replication.
    async with harness(tmp_path, snapshot_entries=5) as h:
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        lagger = next(i for i in (1, 2, 3) if i != leader.id)
        h.kill(lagger)
        for _ in range(30):
            await h.submit(b"1")
        node = await h.start(lagger)
        # Five entries (one snapshot) every 100 ms, heartbeats every 50 ms.
        for _ in range(40):
            for _ in range(5):
                await h.submit(b"1")
            await trio.sleep(0.1)
        assert leader.raft is not None and node.raft is not None
        assert leader.raft.progress()[lagger].state is ProgressState.REPLICATE
        assert node.counters.snapshots_installed <= 2
        await trio.sleep(1)
        assert h.machines[lagger].total == 230
