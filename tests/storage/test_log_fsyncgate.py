"""A failed fsync leaves no record a restarted process could read back ("fsyncgate").

After ``EIO`` from fsync, Linux may mark the unwritten pages clean: they stay
readable in the page cache, yet no disk holds them. Here the real file system
plays that page cache (a failing :class:`FaultyOps` fsync writes nothing
back and drops nothing), so reopening the log is a process restarted
without a reboot: it must see only what an fsync made durable, as after a
power cut, or it would append after records a later power cut loses.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from storage_faults import FaultyOps, fail_nth, install

from storage import LogUnusableError, Record, SegmentLog, WriteError
from storage._fileio import FileOps


def recs(lo: int, hi: int, term: int = 1) -> list[Record]:
    return [Record(i, term, 0, b"data-%d-" % i * 3) for i in range(lo, hi)]


def reopen_all(path: Path, segment_bytes: int) -> list[Record]:
    with SegmentLog.open(str(path), segment_bytes=segment_bytes) as log:
        return log.read(log.first_index, log.last_index + 1)


def test_a_failed_sync_cuts_the_unsynced_records_off_the_segment(tmp_path: Path) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path), segment_bytes=4000)
    log.append(recs(1, 11))
    log.sync()
    log.append(recs(11, 21))
    install(FaultyOps(fail=fail_nth("fdatasync", err=errno.EIO)))
    with pytest.raises(WriteError, match="Input/output error"):
        log.sync()
    with pytest.raises(LogUnusableError):
        log.append(recs(21, 22))
    log.close()
    install(FileOps())
    assert reopen_all(path, 4000) == recs(1, 11)
    # The restarted log carries on from what is durable, without a hole.
    with SegmentLog.open(str(path), segment_bytes=4000) as log:
        log.append(recs(11, 15, term=2))
        log.sync()
    assert reopen_all(path, 4000) == recs(1, 11) + recs(11, 15, term=2)


def test_a_failed_sync_deletes_a_segment_created_since_the_last_sync(tmp_path: Path) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path), segment_bytes=400)
    log.append(recs(1, 4))
    log.sync()
    log.append(recs(4, 30))  # rolls over: older segments are sealed, the newest is not
    newest = log._segments[-1]
    assert newest.synced < 0
    install(FaultyOps(fail=fail_nth("fdatasync", err=errno.EIO)))
    with pytest.raises(WriteError):
        log.sync()
    log.close()
    install(FileOps())
    assert not Path(newest.path).exists()
    assert reopen_all(path, 400) == recs(1, newest.first_index)


def test_a_failed_directory_sync_deletes_the_new_segment(tmp_path: Path) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path), segment_bytes=400)
    log.append(recs(1, 4))
    log.sync()
    log.append(recs(4, 30))
    newest = log._segments[-1]
    assert newest.first_index > 1 and newest.synced < 0
    # fdatasync of the segment succeeds; fsync of the directory (its name) fails.
    install(FaultyOps(fail=fail_nth("fsync", err=errno.EIO)))
    with pytest.raises(WriteError):
        log.sync()
    log.close()
    install(FileOps())
    assert not Path(newest.path).exists()
    assert reopen_all(path, 400) == recs(1, newest.first_index)
