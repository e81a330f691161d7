"""Targeted tests for the bug kinds a whole-node simulation is the wrong tool for,
and for the simulated disk's own rules.

The simulated network never corrupts a datagram (envelopes are checked on
receipt), so a receiver that skips the snapshot's SHA-256 check, or
assembles valid chunks in the wrong order, installs good data in every
simulated run: these tests hand the receiver what a bad sender or a
corrupting path would. Cost: well under a second.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest
import trio

import storage
from storage import _fileio
from traft.core import HardState, Membership, NodeConfig, Ready
from traft.kv.commands import Command, Put, encode_command
from traft.kv.state import KVStore
from traft.node.durable import Durable
from traft.node.node import Node
from traft.node.transfer import SnapshotReceiver
from traft.sim.nodes import NodeSimOptions
from traft.sim.nodes.disk import DiskFaults, SimDisk
from traft.sim.nodes.world import World
from traft.wire import SnapshotChunk

MEMBERS = Membership((NodeConfig(1, True, b""), NodeConfig(2, True, b"")))


def chunk(data: bytes, offset: int, size: int, checksum: bytes) -> SnapshotChunk:
    return SnapshotChunk(
        term=2,
        leader_id=2,
        index=50,
        snapshot_term=2,
        membership=MEMBERS.to_bytes(),
        offset=offset,
        total=len(data),
        checksum=checksum,
        data=data[offset : offset + size],
    )


def receiver(tmp_path: Path) -> SnapshotReceiver:
    return SnapshotReceiver(storage.SnapshotStore.open(str(tmp_path / "snap")))


def test_a_snapshot_whose_data_fails_its_sha256_is_not_installed(tmp_path: Path) -> None:
    data = bytes(range(200))
    wrong = hashlib.sha256(data + b"x").digest()
    r = receiver(tmp_path)
    _ack, info = r.on_chunk(chunk(data, 0, 100, wrong))
    assert info is None
    ack, info = r.on_chunk(chunk(data, 100, 100, wrong))
    assert info is None and not ack.done
    assert r.rejected == 1


def test_valid_chunks_out_of_order_are_assembled_in_order(tmp_path: Path) -> None:
    data = bytes(random.Random(1).randbytes(300))
    digest = hashlib.sha256(data).digest()
    store = storage.SnapshotStore.open(str(tmp_path / "snap"))
    r = SnapshotReceiver(store)
    first, second, third = (chunk(data, k * 100, 100, digest) for k in range(3))
    infos = [r.on_chunk(c)[1] for c in (first, third, second, third)]
    assert infos[:3] == [None, None, None]
    info = infos[3]
    assert info is not None
    with store.reader(info) as reader:
        assert b"".join(reader.chunks()) == data


def _disk(tmp_path: Path) -> tuple[SimDisk, str]:
    disk = SimDisk(random.Random(0))
    root = str(tmp_path / "n1")
    disk.add_root(root, 1)
    return disk, root


def test_the_simulated_disk_loses_unsynced_writes_and_unsynced_renames(tmp_path: Path) -> None:
    disk, root = _disk(tmp_path)
    saved = _fileio.ops
    _fileio.ops = disk
    try:
        path = os.path.join(root, "f")
        fd = disk.open(path, os.O_RDWR | os.O_CREAT)
        disk.pwrite(fd, b"durable", 0)
        disk.fsync(fd)
        _fileio.fsync_dir(root)
        disk.pwrite(fd, b"-lost", 7)
        disk.close(fd)
        _fileio.atomic_write(os.path.join(root, "g"), b"new")  # fsyncs file and directory
        other = os.path.join(root, "h")
        fd = disk.open(other, os.O_RDWR | os.O_CREAT)
        disk.close(fd)  # created, never synced: its directory entry may go
    finally:
        _fileio.ops = saved
    disk.power_loss(1, torn=False)
    with open(os.path.join(root, "f"), "rb") as stream:
        assert stream.read() == b"durable"
    with open(os.path.join(root, "g"), "rb") as stream:
        assert stream.read() == b"new"


def test_a_failed_fsync_drops_its_writes_for_good(tmp_path: Path) -> None:
    disk, root = _disk(tmp_path)
    path = os.path.join(root, "f")
    fd = disk.open(path, os.O_RDWR | os.O_CREAT)
    disk.fsync(fd)
    saved = _fileio.ops
    _fileio.ops = disk
    try:
        _fileio.fsync_dir(root)
    finally:
        _fileio.ops = saved
    disk.pwrite(fd, b"dropped", 0)
    disk.set_faults(1, DiskFaults(eio_fsync=1.0))
    with pytest.raises(OSError):
        disk.fsync(fd)
    disk.set_faults(1, DiskFaults())
    disk.pwrite(fd, b"kept", 7)
    disk.fsync(fd)  # succeeds, but the dropped write is not made durable by it
    disk.close(fd)
    disk.power_loss(1, torn=False)
    with open(path, "rb") as stream:
        assert stream.read() == bytes(7) + b"kept"


def test_valid_snapshot_chunks_swapped_on_disk_fail_verification(tmp_path: Path) -> None:
    store = storage.SnapshotStore.open(str(tmp_path / "snap"))
    a, b = b"a" * 100, b"b" * 100
    with store.writer(2, 50, MEMBERS.to_bytes(), chunk_size=100) as writer:
        writer.write(a + b)  # two chunks of 100 bytes
    info = writer.info
    assert info is not None
    with open(info.path, "r+b") as stream:
        raw = bytearray(stream.read())
        first = raw.index(a)
        second = raw.index(b)
        head = 8  # each chunk: u32 length, u32 CRC, then the bytes
        chunk_a = bytes(raw[first - head : first + 100])
        chunk_b = bytes(raw[second - head : second + 100])
        raw[first - head : first + 100] = chunk_b
        raw[second - head : second + 100] = chunk_a
        stream.seek(0)
        stream.write(raw)
    reopened = storage.SnapshotStore.open(str(tmp_path / "snap"))
    latest = reopened.latest_info()
    assert latest is not None
    with pytest.raises(storage.CorruptLogError):
        reopened.verify(latest)


def test_losing_the_newest_segment_after_several_rolls_is_detected(tmp_path: Path) -> None:
    # A power cut that follows the rules never loses a synced segment, so the
    # simulation cannot show this; a file lost outside the rules (an operator,
    # a file system bug) must still be noticed rather than silently cut the log.
    path = str(tmp_path / "log")
    log = storage.SegmentLog.open(path, segment_bytes=512)
    for index in range(1, 61):
        log.append([storage.Record(index, 1, 0, b"x" * 40)])
        log.sync()
    log.close()
    segments = sorted(name for name in os.listdir(path) if name.endswith(".seg"))
    assert len(segments) >= 4  # the log rolled several times
    os.unlink(os.path.join(path, segments[-1]))
    with pytest.raises(storage.CorruptLogError):
        storage.SegmentLog.open(path, segment_bytes=512)


class _Checked(KVStore):
    """A KVStore that records the entries applied before its node's log synced them."""

    def __init__(self, log_path: str, synced: dict[str, int], early: list[int]) -> None:
        super().__init__()
        self._log_path = log_path
        self._synced = synced
        self._early = early

    def apply(self, index: int, command: bytes) -> Any:
        if index > self._synced.get(self._log_path, 0):
            self._early.append(index)
        return super().apply(index, command)


async def test_no_entry_is_applied_before_its_own_node_made_it_durable(
    tmp_path: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Committed entries are durable on a quorum, so applying one before the
    # local fsync rarely shows to a client; the Ready contract still says
    # persist, then apply. Every SegmentLog.sync records how far its log is durable.
    synced: dict[str, int] = {}
    early: list[int] = []
    real_sync = storage.SegmentLog.sync

    def sync(log: storage.SegmentLog) -> None:
        real_sync(log)
        synced[log._path] = log.last_index  # noqa: SLF001

    monkeypatch.setattr(storage.SegmentLog, "sync", sync)
    world = World(NodeSimOptions(), 0, tmp_path, SimDisk(random.Random(0)))
    async with trio.open_nursery() as nursery:
        nodes: list[Node] = []

        async def start(node_id: int) -> None:
            data_dir = world.data_dir(node_id)
            store = _Checked(os.path.abspath(data_dir / "log"), synced, early)
            node = Node(
                node_id,
                world.cluster,
                data_dir,
                store,
                endpoint=world.network.endpoint(node_id),
                rng=random.Random(node_id),
                persist_in_thread=False,
            )
            await nursery.start(node.run)
            nodes.append(node)

        # Node 3 starts late: the leader catches it up with AppendEntries whose
        # commit index covers the entries they carry, so one Ready both appends
        # and commits them.
        await start(1)
        await start(2)
        with trio.fail_after(30):
            leader = None
            while leader is None:
                await trio.sleep(0.05)
                leader = next((n for n in nodes if n.raft and n.raft.is_leader), None)
            for k in range(20):
                await leader.submit(encode_command(Command(op=Put(key="k", value=b"%d" % k))))
            await start(3)
            while nodes[2].status().get("applied", 0) < 20:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert len(synced) == 3
    assert early == []


def test_a_vote_in_a_term_already_stored_is_persisted_too(tmp_path: Path) -> None:
    # A vote-only change of the hard state (the term was stored by an earlier
    # Ready, e.g. on a RequestVote the node refused) must reach the meta file
    # like any other: after a restart the node must not vote again in that term.
    # Simulation needs a vote, a power cut and a second candidate in that one
    # term; this asks the node's storage adapter directly.
    durable = Durable(tmp_path / "n1")
    durable.persist(Ready(hard_state=HardState(term=5, voted_for=None)))
    durable.persist(Ready(hard_state=HardState(term=5, voted_for=3)))
    durable.close()
    reopened = Durable(tmp_path / "n1")
    try:
        assert (reopened.meta.term, reopened.meta.voted_for) == (5, 3)
    finally:
        reopened.close()
