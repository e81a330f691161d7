"""A crash at every step of truncate, compact, append, recovery, meta and snapshot saves.

Each test runs an operation once per crash point N: the N-th mutating system
call (see ``storage_faults``) "kills the process", the directory is reopened
with real system calls, and what it holds must be the state before the
operation or the state after it, nothing else. The loop ends when the
operation runs to completion with no crash left to inject.

Every test runs under two models of the crash:

- ``kill``: ``kill -9``. What was written before the crash point is in the
  page cache and survives.
- ``power-loss``: additionally, everything that was not fsynced is lost: file
  contents go back to their last fsync and names created, renamed or deleted
  since their directory's last fsync are undone (``PowerLossOps``). This is
  what checks the order of writes, fsyncs and renames. After a run that
  completed, the power is cut too: what an operation returned from must
  already be durable.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from storage_faults import FaultyOps, PowerLossOps, SimulatedCrash, install

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


@pytest.fixture(params=["kill", "power-loss"])
def power_loss(request: pytest.FixtureRequest) -> bool:
    """Which crash model a test runs under (see the module docstring)."""
    return bool(request.param == "power-loss")


def crash_ops(crash_at: int, power_loss: bool) -> FaultyOps:
    return PowerLossOps(crash_at) if power_loss else FaultyOps(crash_at=crash_at)


def crash_every_step(
    fast_tmp_path: Path,
    power_loss: bool,
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
        ops = crash_ops(crash_at, power_loss)
        install(ops)
        try:
            operation(subject)
            completed = True
        except SimulatedCrash:
            completed = False
        finally:
            install(FileOps())
            release(subject)
        if isinstance(ops, PowerLossOps):
            ops.power_loss()
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


def test_crash_inside_truncate_from(fast_tmp_path: Path, power_loss: bool) -> None:
    old = build(fast_tmp_path / "reference")
    records = list(old[2])
    steps = crash_every_step(
        fast_tmp_path,
        power_loss,
        open_log,
        lambda log: log.truncate_from(13),  # type: ignore[attr-defined]
        release_log,
        view,
        old,
        expected_after(1, 12, records),
    )
    assert steps >= 5


def test_crash_inside_compact_upto(fast_tmp_path: Path, power_loss: bool) -> None:
    old = build(fast_tmp_path / "reference")
    records = list(old[2])
    crash_every_step(
        fast_tmp_path,
        power_loss,
        open_log,
        lambda log: log.compact_upto(23),  # type: ignore[attr-defined]
        release_log,
        view,
        old,
        expected_after(24, 40, records),
    )


def test_crash_inside_compact_upto_past_the_end(fast_tmp_path: Path, power_loss: bool) -> None:
    old = build(fast_tmp_path / "reference")
    crash_every_step(
        fast_tmp_path,
        power_loss,
        open_log,
        lambda log: log.compact_upto(70),  # type: ignore[attr-defined]
        release_log,
        view,
        old,
        (71, 70, ()),
    )


def two_segments_the_second_unsynced(ops: FaultyOps, path: Path) -> SegmentLog:
    """Issue 10 bug 12's log: record 1 (empty) in a synced segment, record 2 in a
    new segment that was never synced (written under ``ops``, so a power cut
    takes it away)."""
    install(ops)
    log = SegmentLog.open(str(path), segment_bytes=160)
    log.append([Record(1, 1, 0, b""), Record(2, 1, 0, b"x" * 80)])
    assert sorted(os.listdir(path)) == [
        "00000000000000000001.seg",
        "00000000000000000002.seg",
        STATE_NAME,
    ]
    return log


@pytest.mark.timeout(30)
def test_compact_upto_over_an_unsynced_newest_segment_survives_a_crash(
    fast_tmp_path: Path, power_loss: bool
) -> None:
    """Issue 10 bug 12: compaction wrote the state file naming the newest
    *synced* segment as the newest, then deleted that very segment, so after
    a crash open refused the log ("the newest segment ... is missing")."""
    ops = PowerLossOps() if power_loss else FaultyOps()
    path = fast_tmp_path / "log"
    log = two_segments_the_second_unsynced(ops, path)
    log.compact_upto(1)
    log._release()  # killed: no sync, no close
    if isinstance(ops, PowerLossOps):
        ops.power_loss()
    install(FileOps())
    with SegmentLog.open(str(path), segment_bytes=160) as reopened:
        assert reopened.first_index == 2
        # Record 2 was never synced: it may be lost, but nothing else may.
        assert reopened.last_index in (1, 2)
        assert reopened.read(2, reopened.last_index + 1) in ([], [Record(2, 1, 0, b"x" * 80)])


@pytest.mark.timeout(60)
def test_crash_inside_compact_upto_over_an_unsynced_newest_segment(
    fast_tmp_path: Path, power_loss: bool
) -> None:
    r1, r2 = Record(1, 1, 0, b""), Record(2, 1, 0, b"x" * 80)

    def observe(path: Path) -> LogView:
        with SegmentLog.open(str(path), segment_bytes=160) as log:
            return (
                log.first_index,
                log.last_index,
                tuple(log.read(log.first_index, log.last_index + 1)),
            )

    crash_every_step(
        fast_tmp_path,
        power_loss,
        lambda path: two_segments_the_second_unsynced(FileOps(), path),
        lambda log: log.compact_upto(1),  # type: ignore[attr-defined]
        release_log,
        observe,
        (1, 2, (r1, r2)),
        (2, 2, (r2,)),
    )


def test_crash_inside_append_and_sync_keeps_a_prefix(fast_tmp_path: Path, power_loss: bool) -> None:
    """Appends are not atomic across a crash, but what survives is a prefix."""
    old = build(fast_tmp_path / "reference")
    batch = [rec(i, 7) for i in range(41, 61)]  # spans several segments
    for crash_at in range(100):
        path = fast_tmp_path / f"case{crash_at}"
        log = open_log(path)
        ops = crash_ops(crash_at, power_loss)
        install(ops)
        try:
            log.append(batch)
            log.sync()
            completed = True
        except SimulatedCrash:
            completed = False
        finally:
            install(FileOps())
            log._release()
        if isinstance(ops, PowerLossOps):
            ops.power_loss()
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


def test_crash_inside_recovery_is_recovered_by_the_next_open(
    fast_tmp_path: Path, power_loss: bool
) -> None:
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
        power_loss,
        damaged_log,
        recover,
        release,
        view,
        new,
        new,
    )


def test_crash_inside_meta_save(fast_tmp_path: Path, power_loss: bool) -> None:
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
        power_loss,
        setup,
        lambda meta: meta.save(5, None),  # type: ignore[attr-defined]
        lambda _meta: None,
        observe,
        (4, 1, ["meta"]),
        (5, None, ["meta"]),
    )


def test_crash_inside_snapshot_save(fast_tmp_path: Path, power_loss: bool) -> None:
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
        fast_tmp_path,
        power_loss,
        setup,
        save,
        lambda _store: None,
        observe,
        (first, False),
        (second, False),
    )


def reopen_then_cut_power(
    fast_tmp_path: Path,
    setup: Callable[[Path], object],
    operation: Callable[[object], None],
    release: Callable[[object], None],
    observe: Callable[[Path], object],
) -> None:
    """Whatever a store reports when reopened after a kill must survive a power cut."""
    for crash_at in range(500):
        path = fast_tmp_path / f"reopen{crash_at}"
        subject = setup(path)
        ops = PowerLossOps(crash_at)
        install(ops)
        try:
            operation(subject)
            completed = True
        except SimulatedCrash:
            completed = False
        finally:
            release(subject)
        ops.revive()  # the node restarts and reads its state back...
        reported = observe(path)
        ops.power_loss()  # ...and then the power goes
        install(FileOps())
        assert observe(path) == reported, f"crash at call {crash_at}"
        if completed:
            return
    raise AssertionError("never completed")


def test_what_open_reports_after_a_kill_is_durable_log(fast_tmp_path: Path) -> None:
    """A leader may ask whether we hold an entry that was never synced before the
    kill; once open has reported it, it must not be lost."""

    def append_no_sync(log: object) -> None:
        assert isinstance(log, SegmentLog)
        log.append([rec(i, 7) for i in range(41, 61)])

    reopen_then_cut_power(fast_tmp_path, open_log, append_no_sync, release_log, view)


def test_what_open_reports_after_a_kill_is_durable_meta(fast_tmp_path: Path) -> None:
    def setup(path: Path) -> MetaStore:
        path.mkdir()
        meta = MetaStore.open(str(path / "meta"))
        meta.save(4, 1)
        return meta

    def observe(path: Path) -> tuple[int, int | None]:
        meta = MetaStore.open(str(path / "meta"))
        return (meta.term, meta.voted_for)

    reopen_then_cut_power(
        fast_tmp_path,
        setup,
        lambda meta: meta.save(5, 2),  # type: ignore[attr-defined]
        lambda _meta: None,
        observe,
    )


def test_what_open_reports_after_a_kill_is_durable_snapshot(fast_tmp_path: Path) -> None:
    def setup(path: Path) -> SnapshotStore:
        store = SnapshotStore.open(str(path))
        store.save(Snapshot(1, 5, b"m", b"old"))
        return store

    def observe(path: Path) -> Snapshot | None:
        return SnapshotStore.open(str(path)).latest()

    reopen_then_cut_power(
        fast_tmp_path,
        setup,
        lambda store: store.save(Snapshot(2, 9, b"m", b"new")),  # type: ignore[attr-defined]
        lambda _store: None,
        observe,
    )


def batched_log(path: Path) -> Path:
    """Records 1..30 in three batch records of ten (one append each), one segment each."""
    with SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES) as log:
        for lo in (1, 11, 21):
            log.append([rec(i, 1 + i // 15) for i in range(lo, lo + 10)])
    return path


def test_crash_inside_a_truncation_in_the_middle_of_a_batch(
    fast_tmp_path: Path, power_loss: bool
) -> None:
    """Entries 11..14 share a batch record with the truncated 15..20: they must
    survive every crash point (they may have been acknowledged)."""
    reference = batched_log(fast_tmp_path / "reference")
    old = view(reference)
    records = list(old[2])

    def setup(path: Path) -> SegmentLog:
        shutil.copytree(reference, path)
        return SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES)

    steps = crash_every_step(
        fast_tmp_path,
        power_loss,
        setup,
        lambda log: log.truncate_from(15),  # type: ignore[attr-defined]
        release_log,
        view,
        old,
        expected_after(1, 14, records),
    )
    assert steps >= 8  # intent, rewrite file, cut, write, sync, removal, intent cleared
    assert not (fast_tmp_path / f"case{steps}" / "rewrite").exists()


@pytest.mark.timeout(120)
def test_a_crash_while_recovering_an_interrupted_batch_cut_is_recovered(
    fast_tmp_path: Path, power_loss: bool
) -> None:
    """Crash the truncation at every point, then crash the open that repairs it
    at every point: the next open still finds the old log or the new one."""
    reference = batched_log(fast_tmp_path / "reference")
    old = view(reference)
    new = expected_after(1, 14, list(old[2]))
    redone = 0
    for first_crash in range(40):
        crashed = fast_tmp_path / f"crashed{first_crash}"
        shutil.copytree(reference, crashed)
        log = SegmentLog.open(str(crashed), segment_bytes=SEGMENT_BYTES)
        ops = crash_ops(first_crash, power_loss)
        install(ops)
        try:
            log.truncate_from(15)
            completed = True
        except SimulatedCrash:
            completed = False
        finally:
            install(FileOps())
            log._release()
        if isinstance(ops, PowerLossOps):
            ops.power_loss()
        if (crashed / "rewrite").exists():
            redone += 1

            def reopen(path: object) -> None:
                SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES)._release()

            crash_every_step(
                fast_tmp_path / f"second{first_crash}",
                power_loss,
                lambda path, src=crashed: shutil.copytree(src, path),
                reopen,
                lambda _path: None,
                view,
                new,
                new,
            )
        if completed:
            break
    assert redone >= 2  # the rewrite file was there for several crash points
