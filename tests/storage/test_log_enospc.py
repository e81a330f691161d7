"""A full disk (ENOSPC) and other write errors: a clear error, synced data intact,
and never a half record that a later open mistakes for data."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from storage_faults import FaultyOps, fail_nth, install

from storage import (
    DiskFullError,
    LogUnusableError,
    MetaStore,
    Record,
    SegmentLog,
    Snapshot,
    SnapshotStore,
    WriteError,
)
from storage._fileio import FileOps


def rec(index: int, term: int = 1) -> Record:
    return Record(index, term, 0, b"data-%d-" % index * 3)


def recs(lo: int, hi: int, term: int = 1) -> list[Record]:
    return [rec(i, term) for i in range(lo, hi)]


def segment_sizes(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in path.iterdir() if p.suffix == ".seg"}


def reopen_all(path: Path, segment_bytes: int = 400) -> list[Record]:
    with SegmentLog.open(str(path), segment_bytes=segment_bytes) as log:
        return log.read(log.first_index, log.last_index + 1)


@pytest.mark.parametrize("partial", [True, False])
def test_enospc_during_append_is_undone_and_the_log_stays_usable(
    tmp_path: Path, partial: bool
) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path), segment_bytes=4000)
    log.append(recs(1, 11))
    log.sync()
    sizes = segment_sizes(path)
    install(FaultyOps(fail=fail_nth("pwrite"), partial=partial))
    with pytest.raises(DiskFullError, match="disk full") as info:
        log.append(recs(11, 21))
    assert info.value.errno == errno.ENOSPC
    assert isinstance(info.value, WriteError)
    assert log.last_index == 10
    assert segment_sizes(path) == sizes  # the half-written batch is gone
    assert log.read(1, 11) == recs(1, 11)
    # Space is back: carry on as if nothing happened.
    log.append(recs(11, 16, term=2))
    log.sync()
    log.close()
    install(FileOps())
    assert reopen_all(path) == recs(1, 11) + recs(11, 16, term=2)


@pytest.mark.parametrize("call, nth", [("pwrite", 1), ("pwrite", 2), ("open", 0)])
def test_enospc_while_rolling_over_removes_new_segments(
    tmp_path: Path, call: str, nth: int
) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path), segment_bytes=400)
    log.append(recs(1, 4))
    log.sync()
    sizes = segment_sizes(path)
    install(FaultyOps(fail=fail_nth(call, nth)))
    with pytest.raises(DiskFullError):
        log.append(recs(4, 40))  # several new segments
    assert segment_sizes(path) == sizes
    assert log.last_index == 3
    log.append(recs(4, 40))
    log.close()
    install(FileOps())
    assert reopen_all(path) == recs(1, 40)


def test_enospc_during_sync_makes_the_log_unusable_until_reopened(tmp_path: Path) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path))
    log.append(recs(1, 11))
    log.sync()
    log.append(recs(11, 21))
    install(FaultyOps(fail=fail_nth("fdatasync")))
    with pytest.raises(DiskFullError, match="fsync"):
        log.sync()
    with pytest.raises(LogUnusableError, match="reopen|open it again"):
        log.append(recs(21, 22))
    with pytest.raises(LogUnusableError):
        log.sync()
    log.close()  # releases the files without trying to sync again
    install(FileOps())
    records = reopen_all(path)
    # What was synced is there; the unsynced batch may or may not be.
    assert records[:10] == recs(1, 11)
    assert records in (recs(1, 11), recs(1, 21))


def test_failed_fsync_while_sealing_a_segment_makes_the_log_unusable(tmp_path: Path) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path), segment_bytes=400)
    log.append(recs(1, 4))
    install(FaultyOps(fail=fail_nth("fdatasync", err=errno.EIO)))
    with pytest.raises(WriteError, match="Input/output error"):
        log.append(recs(4, 40))
    with pytest.raises(LogUnusableError):
        log.read(1, 2)
    log.close()
    install(FileOps())
    # Records 1-3 were never synced: the failed fsync cut them off (their
    # segment was new), as a power cut would (tests/storage/test_log_fsyncgate.py).
    assert reopen_all(path) == []


def test_write_error_whose_undo_also_fails_leaves_a_torn_tail_that_open_cuts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path), segment_bytes=4000)
    log.append(recs(1, 11))
    log.sync()

    def policy(call: str, _n: int) -> int | None:
        return errno.ENOSPC if call in ("pwrite", "ftruncate") else None

    install(FaultyOps(fail=policy, partial=True))
    with pytest.raises(DiskFullError):
        log.append(recs(11, 21))
    with pytest.raises(LogUnusableError, match="undo"):
        log.append(recs(11, 21))
    log.close()
    install(FileOps())
    # Whole records that made it to the file are valid (never acknowledged,
    # but harmless); the half record after them is a torn tail and is cut.
    records = reopen_all(path)
    assert records == recs(1, len(records) + 1)
    assert 10 <= len(records) < 20


@pytest.mark.parametrize("operation", ["truncate", "compact"])
def test_enospc_during_truncate_or_compact(tmp_path: Path, operation: str) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path), segment_bytes=400)
    log.append(recs(1, 41))
    log.sync()
    install(FaultyOps(fail=fail_nth("pwrite")))
    with pytest.raises(DiskFullError):
        if operation == "truncate":
            log.truncate_from(10)
        else:
            log.compact_upto(30)
    with pytest.raises(LogUnusableError):
        log.append(recs(41, 42))
    log.close()
    install(FileOps())
    assert reopen_all(path) == recs(1, 41)  # the state file was never replaced
    assert not (path / "state.tmp").exists()


def test_enospc_during_meta_save_keeps_the_old_pair(tmp_path: Path) -> None:
    meta = MetaStore.open(str(tmp_path / "meta"))
    meta.save(2, 1)
    install(FaultyOps(fail=fail_nth("pwrite")))
    with pytest.raises(DiskFullError):
        meta.save(3, 2)
    assert (meta.term, meta.voted_for) == (2, 1)
    install(FileOps())
    again = MetaStore.open(str(tmp_path / "meta"))
    assert (again.term, again.voted_for) == (2, 1)
    assert os.listdir(tmp_path) == ["meta"]


def test_enospc_during_snapshot_save_keeps_the_old_snapshot(tmp_path: Path) -> None:
    store = SnapshotStore.open(str(tmp_path / "snap"))
    old = Snapshot(1, 5, b"m", b"old" * 1000)
    store.save(old)
    install(FaultyOps(fail=fail_nth("pwrite", 3)))
    with pytest.raises(DiskFullError), store.writer(2, 9, b"m2", chunk_size=1000) as writer:
        for _ in range(10):
            writer.write(b"n" * 1000)
    install(FileOps())
    assert store.latest() == old
    assert SnapshotStore.open(str(tmp_path / "snap")).latest() == old
    assert len(os.listdir(tmp_path / "snap")) == 1
