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

import pytest

import storage
from storage import _fileio
from traft.core import Membership, NodeConfig
from traft.node.transfer import SnapshotReceiver
from traft.sim.nodes.disk import DiskFaults, SimDisk
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
