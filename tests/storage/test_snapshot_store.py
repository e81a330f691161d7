"""SnapshotStore: atomic snapshots, streamed in chunks, pruned to the newest few."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from storage import CorruptLogError, Snapshot, SnapshotStore
from storage._snapshot import CHUNK_HEADER, SNAP_HEADER_SIZE, snapshot_name


def test_empty_store(tmp_path: Path) -> None:
    store = SnapshotStore.open(str(tmp_path / "snap"))
    assert store.latest() is None and store.latest_info() is None and store.infos() == []
    with pytest.raises(LookupError):
        store.reader()


def test_save_latest_and_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "snap")
    snap = Snapshot(term=3, index=120, membership=b"1,2,3", data=os.urandom(50_000))
    store = SnapshotStore.open(path)
    info = store.save(snap)
    assert (info.term, info.index, info.size, info.membership) == (3, 120, 50_000, b"1,2,3")
    assert store.latest() == snap
    assert SnapshotStore.open(path).latest() == snap
    assert os.path.basename(info.path) == snapshot_name(120, 3)


def test_empty_data_and_membership(tmp_path: Path) -> None:
    store = SnapshotStore.open(str(tmp_path / "snap"))
    store.save(Snapshot(1, 1, b"", b""))
    assert SnapshotStore.open(str(tmp_path / "snap")).latest() == Snapshot(1, 1, b"", b"")


def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "snap")
    store = SnapshotStore.open(path, keep=2)
    for index in (10, 30, 20, 40):
        store.save(Snapshot(1, index, b"m", b"%d" % index))
    assert [i.index for i in store.infos()] == [30, 40]
    assert sorted(os.listdir(path)) == [snapshot_name(30, 1), snapshot_name(40, 1)]
    assert SnapshotStore.open(path).latest() == Snapshot(1, 40, b"m", b"40")
    with pytest.raises(ValueError):
        SnapshotStore.open(path, keep=0)


def test_streaming_write_and_read_in_chunks(tmp_path: Path) -> None:
    store = SnapshotStore.open(str(tmp_path / "snap"))
    pieces = [os.urandom(n) for n in (1, 999, 1000, 4097, 0, 12_345)]
    with store.writer(term=2, index=9, membership=b"m", chunk_size=1000) as writer:
        for piece in pieces:
            writer.write(piece)
    assert writer.info is not None and writer.info.size == sum(map(len, pieces))
    with store.reader() as reader:
        chunks = list(reader.chunks())
    assert b"".join(chunks) == b"".join(pieces)
    assert all(len(chunk) == 1000 for chunk in chunks[:-1])


def test_a_snapshot_bigger_than_what_is_held_in_memory(tmp_path: Path) -> None:
    """64 MB goes through the writer and the reader holding about one chunk."""
    store = SnapshotStore.open(str(tmp_path / "snap"))
    block = bytes(range(256)) * 4096  # 1 MiB
    tracemalloc.start()
    try:
        with store.writer(1, 5, b"m", chunk_size=1 << 20) as writer:
            for _ in range(64):
                writer.write(block)
        total = 0
        with store.reader() as reader:
            for chunk in reader.chunks():
                assert chunk == block
                total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 64 << 20
    assert peak < 8 << 20, peak


def test_an_exception_aborts_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "snap"
    store = SnapshotStore.open(str(path))
    store.save(Snapshot(1, 1, b"m", b"first"))
    with pytest.raises(RuntimeError), store.writer(2, 2, b"m") as writer:
        writer.write(b"partial")
        raise RuntimeError("state machine failed")
    assert store.latest() == Snapshot(1, 1, b"m", b"first")
    assert os.listdir(path) == [snapshot_name(1, 1)]
    with pytest.raises(ValueError):
        writer.write(b"more")
    writer.abort()


def test_a_leftover_temporary_file_is_removed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "snap"
    SnapshotStore.open(str(path)).save(Snapshot(1, 1, b"m", b"x"))
    (path / (snapshot_name(5, 2) + ".tmp")).write_bytes(b"half a snapshot")
    store = SnapshotStore.open(str(path))
    assert store.latest_info() is not None and store.latest_info().index == 1  # type: ignore[union-attr]
    assert os.listdir(path) == [snapshot_name(1, 1)]


def test_damaged_header_trailer_or_size_is_reported_on_open(tmp_path: Path) -> None:
    path = tmp_path / "snap"
    info = SnapshotStore.open(str(path)).save(Snapshot(4, 8, b"members", b"d" * 3000))
    file = Path(info.path)
    good = file.read_bytes()
    header_and_membership = SNAP_HEADER_SIZE + len(b"members")
    for offset in [*range(header_and_membership), *range(len(good) - 24, len(good))]:
        damaged = bytearray(good)
        damaged[offset] ^= 0x01
        file.write_bytes(bytes(damaged))
        with pytest.raises(CorruptLogError) as exc:
            SnapshotStore.open(str(path))
        assert exc.value.path == str(file)
    for size in (0, 30, len(good) - 1):
        file.write_bytes(good[:size])
        with pytest.raises(CorruptLogError):
            SnapshotStore.open(str(path))
    file.write_bytes(good + b"x")
    with pytest.raises(CorruptLogError, match="trailer"):
        SnapshotStore.open(str(path))


def test_damaged_data_is_caught_by_the_reader_before_the_chunk_is_handed_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "snap"
    store = SnapshotStore.open(str(path))
    with store.writer(1, 2, b"m", chunk_size=100) as writer:
        writer.write(b"a" * 100 + b"b" * 100 + b"c" * 100)
    info = store.latest_info()
    assert info is not None
    file = Path(info.path)
    data = bytearray(file.read_bytes())
    second_chunk = SNAP_HEADER_SIZE + 1 + CHUNK_HEADER.size + 100 + CHUNK_HEADER.size
    data[second_chunk + 50] ^= 0x08
    file.write_bytes(bytes(data))
    store = SnapshotStore.open(str(path))  # structure is fine; data is checked on read
    got = []
    with pytest.raises(CorruptLogError, match="chunk 1"), store.reader() as reader:
        for chunk in reader.chunks():
            got.append(chunk)
    assert got == [b"a" * 100]
    with pytest.raises(CorruptLogError):
        store.verify(info)
    with pytest.raises(CorruptLogError):
        store.latest()


def test_snapshot_repr_does_not_print_the_data() -> None:
    assert repr(Snapshot(1, 2, b"m", b"x" * 10**6)) == (
        "Snapshot(term=1, index=2, membership=<1 bytes>, data=<1000000 bytes>)"
    )
