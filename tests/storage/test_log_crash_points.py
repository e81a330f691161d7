"""A crash at every step of truncate, compact, recovery, meta save and snapshot save.

Each test runs an operation once per crash point N: the N-th mutating system
call (see ``storage_faults``) "kills the process", the directory is reopened
with real system calls, and what it holds must be the state before the
operation or the state after it, nothing else. The loop ends when the
operation runs to completion with no crash left to inject.

These crashes model ``kill -9``: what was written before the crash point is
in the page cache and survives. Power loss additionally drops what was not
fsynced; the ordering arguments for that case are in docs/storage-format.md.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from storage_faults import FaultyOps, SimulatedCrash, install

from storage import MetaStore, Record, SegmentLog, Snapshot, SnapshotStore
from storage._fileio import FileOps
from storage._recovery import STATE_NAME, LogState

LogView = tuple[int, int, tuple[Record, ...]]
SEGMENT_BYTES = 300


def rec(index: int, term: int = 1) -> Record:
    return Record(index, term, 0, b"r%d" % index * 4)


def build(path: Path, count: int = 40) -> LogView:
    with SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES) as log:
        log.append([rec(i, 1 + i // 10) for i in range(1, count + 1)])
    return view(path)


def view(path: Path) -> LogView:
    with SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES) as log:
        records = log.read(log.first_index, log.last_index + 1)
        return (log.first_index, log.last_index, tuple(records))


def crash_every_step(
    fast_tmp_path: Path,
    setup: Callable[[Path], object],
    operation: Callable[[object], None],
    release: Callable[[object], None],
    observe: Callable[[Path], object],
    old: object,
    new: object,
) -> int:
    """Run ``operation`` with a crash at call 0, 1, 2, ... until it completes."""
    for crash_at in range(500):
        path = fast_tmp_path / f"case{crash_at}"
        subject = setup(path)
        install(FaultyOps(crash_at=crash_at))
        try:
            operation(subject)
            completed = True
        except SimulatedCrash:
            completed = False
        finally:
            install(FileOps())
            release(subject)
        seen = observe(path)
        assert seen in (old, new), f"crash at call {crash_at}: {seen!r}"
        if completed:
            assert seen == new
            return crash_at
    raise AssertionError("the operation never completed")


def built(path: Path, count: int = 40) -> Path:
    """``build(path)``, by copying a log built once per test (copies need no fsync)."""
    template = path.parent / f"template-{count}"
    if not template.exists():
        build(template, count)
    shutil.copytree(template, path)
    return path


def open_log(path: Path) -> SegmentLog:
    built(path)
    return SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES)


def release_log(log: object) -> None:
    assert isinstance(log, SegmentLog)
    log._release()


def expected_after(first: int, last: int, records: list[Record]) -> LogView:
    return (first, last, tuple(r for r in records if first <= r.index <= last))


def test_crash_inside_truncate_from(fast_tmp_path: Path) -> None:
    old = build(fast_tmp_path / "reference")
    records = list(old[2])
    steps = crash_every_step(
        fast_tmp_path,
        open_log,
        lambda log: log.truncate_from(13),  # type: ignore[attr-defined]
        release_log,
        view,
        old,
        expected_after(1, 12, records),
    )
    assert steps >= 5


def test_crash_inside_compact_upto(fast_tmp_path: Path) -> None:
    old = build(fast_tmp_path / "reference")
    records = list(old[2])
    crash_every_step(
        fast_tmp_path,
        open_log,
        lambda log: log.compact_upto(23),  # type: ignore[attr-defined]
        release_log,
        view,
        old,
        expected_after(24, 40, records),
    )


def test_crash_inside_compact_upto_past_the_end(fast_tmp_path: Path) -> None:
    old = build(fast_tmp_path / "reference")
    crash_every_step(
        fast_tmp_path,
        open_log,
        lambda log: log.compact_upto(70),  # type: ignore[attr-defined]
        release_log,
        view,
        old,
        (71, 70, ()),
    )


def test_crash_inside_append_and_sync_keeps_a_prefix(fast_tmp_path: Path) -> None:
    """Appends are not atomic across a crash, but what survives is a prefix."""
    old = build(fast_tmp_path / "reference")
    batch = [rec(i, 7) for i in range(41, 61)]  # spans several segments
    for crash_at in range(100):
        path = fast_tmp_path / f"case{crash_at}"
        log = open_log(path)
        install(FaultyOps(crash_at=crash_at))
        try:
            log.append(batch)
            log.sync()
            completed = True
        except SimulatedCrash:
            completed = False
        finally:
            install(FileOps())
            log._release()
        first, last, records = view(path)
        assert first == 1 and last >= 40
        assert records == old[2] + tuple(batch[: last - 40])
        if completed:
            assert last == 60
            return
    raise AssertionError("never completed")


def damaged_log(path: Path) -> Path:
    """A log whose open has every repair to do: leftovers, stale segments, torn
    tail and an unfinished truncation."""
    built(path)
    segs = sorted(p for p in path.iterdir() if p.suffix == ".seg")
    second = int(segs[1].name[:20])
    (path / STATE_NAME).write_bytes(LogState(second + 1, 33).encode())
    (path / (STATE_NAME + ".tmp")).write_bytes(b"junk")
    with open(segs[-1], "ab") as f:
        f.write(b"\x05\x00\x00")
    return path


def test_crash_inside_recovery_is_recovered_by_the_next_open(fast_tmp_path: Path) -> None:
    reference = fast_tmp_path / "reference"
    damaged_log(reference)
    new = view(reference)
    assert new[1] == 32

    opened: list[SegmentLog] = []

    def recover(path: object) -> None:
        opened.append(SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES))

    def release(_path: object) -> None:
        while opened:
            opened.pop()._release()

    # The "old" state of an interrupted recovery is the damaged log, which
    # itself opens as the recovered one: so every crash point must read as new.
    crash_every_step(
        fast_tmp_path,
        damaged_log,
        recover,
        release,
        view,
        new,
        new,
    )


def test_crash_inside_meta_save(fast_tmp_path: Path) -> None:
    def setup(path: Path) -> MetaStore:
        path.mkdir()
        meta = MetaStore.open(str(path / "meta"))
        meta.save(4, 1)
        return meta

    def observe(path: Path) -> tuple[int, int | None, list[str]]:
        meta = MetaStore.open(str(path / "meta"))
        return (meta.term, meta.voted_for, sorted(os.listdir(path)))

    crash_every_step(
        fast_tmp_path,
        setup,
        lambda meta: meta.save(5, None),  # type: ignore[attr-defined]
        lambda _meta: None,
        observe,
        (4, 1, ["meta"]),
        (5, None, ["meta"]),
    )


def test_crash_inside_snapshot_save(fast_tmp_path: Path) -> None:
    first = Snapshot(3, 10, b"members-a", b"A" * 5000)
    second = Snapshot(4, 20, b"members-b", b"B" * 70_000)

    def setup(path: Path) -> SnapshotStore:
        store = SnapshotStore.open(str(path), keep=1)
        store.save(first)
        return store

    def save(store: object) -> None:
        assert isinstance(store, SnapshotStore)
        with store.writer(second.term, second.index, second.membership, chunk_size=16_384) as w:
            for k in range(0, len(second.data), 10_000):
                w.write(second.data[k : k + 10_000])

    def observe(path: Path) -> tuple[Snapshot | None, bool]:
        store = SnapshotStore.open(str(path), keep=1)
        leftovers = any(name.endswith(".tmp") for name in os.listdir(path))
        return (store.latest(), leftovers)

    # A crash after the rename but before the old snapshot is pruned leaves
    # both; the newest is what counts, and the next commit prunes the other.
    crash_every_step(
        fast_tmp_path, setup, save, lambda _store: None, observe, (first, False), (second, False)
    )
