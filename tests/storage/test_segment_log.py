"""SegmentLog's API: append, sync, read, term_at, truncate_from, compact_upto, reopen."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from storage_faults import FaultyOps, install

from storage import LogUnusableError, Record, SegmentLog
from storage._segment import SEG_HEADER_SIZE


def rec(index: int, term: int = 1, size: int | None = None) -> Record:
    n = index % 23 if size is None else size
    return Record(index, term, index % 3, bytes([index % 251]) * n)


def recs(lo: int, hi: int, term: int = 1, size: int | None = None) -> list[Record]:
    return [rec(i, term, size) for i in range(lo, hi)]


def segment_files(path: Path) -> list[str]:
    return sorted(name for name in os.listdir(path) if name.endswith(".seg"))


def test_new_log_is_empty(tmp_path: Path) -> None:
    with SegmentLog.open(str(tmp_path / "log")) as log:
        assert (log.first_index, log.last_index, len(log)) == (1, 0, 0)
        assert log.read(1, 1) == []
        with pytest.raises(IndexError):
            log.term_at(1)


def test_append_read_term_at_and_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    records = recs(1, 11, term=1) + recs(11, 21, term=3) + recs(21, 26, term=4)
    with SegmentLog.open(path) as log:
        log.append(records[:7])
        log.append(records[7:])
        log.sync()
        assert log.read(1, 26) == records
        assert log.read(5, 9) == records[4:8]
        assert [log.term_at(i) for i in (1, 10, 11, 20, 21, 25)] == [1, 1, 3, 3, 4, 4]
    with SegmentLog.open(path) as log:
        assert (log.first_index, log.last_index) == (1, 25)
        assert log.read(1, 26) == records
        assert log.term_at(25) == 4
        log.append([rec(26, 4)])
        assert log.read(25, 27) == [records[-1], rec(26, 4)]


def test_append_requires_contiguous_indexes(tmp_path: Path) -> None:
    with SegmentLog.open(str(tmp_path / "log")) as log:
        log.append(recs(1, 4))
        with pytest.raises(ValueError, match="contiguous"):
            log.append([rec(5)])
        with pytest.raises(ValueError, match="contiguous"):
            log.append([rec(4), rec(6)])
        log.append([])
        assert log.last_index == 3
        log.append([rec(4)])
        assert log.read(1, 5) == recs(1, 5)


@pytest.mark.parametrize(
    "bad",
    [Record(1, -1, 0, b""), Record(1, 1, 256, b""), Record(1, 2**64, 0, b""), Record(1, 1, 0, "x")],  # type: ignore[arg-type]
)
def test_append_rejects_unencodable_fields(tmp_path: Path, bad: Record) -> None:
    with SegmentLog.open(str(tmp_path / "log")) as log:
        with pytest.raises(ValueError):
            log.append([bad])
        assert log.last_index == 0
        log.append([rec(1)])
        assert log.read(1, 2) == [rec(1)]


def test_read_and_term_at_check_their_range(tmp_path: Path) -> None:
    with SegmentLog.open(str(tmp_path / "log")) as log:
        log.append(recs(1, 6))
        for lo, hi in [(0, 2), (1, 7), (4, 3)]:
            with pytest.raises(IndexError):
                log.read(lo, hi)
        for index in (0, 6):
            with pytest.raises(IndexError):
                log.term_at(index)


def test_read_max_bytes_returns_a_prefix_of_at_least_one_record(tmp_path: Path) -> None:
    with SegmentLog.open(str(tmp_path / "log"), segment_bytes=400) as log:
        for record in recs(1, 41, size=20):
            log.append([record])  # a batch record each: 57 bytes on disk, several segments
        assert log.read(3, 40, max_bytes=1) == [rec(3, size=20)]
        assert log.read(3, 40, max_bytes=57) == [rec(3, size=20)]
        assert log.read(3, 40, max_bytes=114) == recs(3, 5, size=20)
        assert log.read(3, 40, max_bytes=116) == recs(3, 5, size=20)
        got = log.read(1, 41, max_bytes=57 * 17)
        assert got == recs(1, 18, size=20)
        assert log.read(1, 41, max_bytes=10**9) == recs(1, 41, size=20)
        assert log.read(7, 7, max_bytes=1) == []


def test_read_max_bytes_counts_whole_batches(tmp_path: Path) -> None:
    with SegmentLog.open(str(tmp_path / "log")) as log:
        log.append(recs(1, 11, size=20))  # one batch record: 12 + 12 + 10 * 33 = 354 bytes
        log.append(recs(11, 21, size=20))
        assert log.read(1, 21, max_bytes=354) == recs(1, 11, size=20)
        assert log.read(1, 21, max_bytes=353) == [rec(1, size=20)]  # at least one record
        assert log.read(5, 21, max_bytes=400) == recs(5, 11, size=20)
        assert log.read(1, 21, max_bytes=708) == recs(1, 21, size=20)
        assert log.read(4, 14) == recs(4, 14, size=20)  # across a batch boundary


def test_segments_roll_over_at_segment_bytes(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with SegmentLog.open(str(path), segment_bytes=300) as log:
        for i in range(1, 61):
            log.append([rec(i, size=30)])
        log.append(recs(61, 121, size=30))  # one batch spanning several segments
        log.sync()
        names = segment_files(path)
        assert len(names) > 10
        for name in names:
            assert os.path.getsize(path / name) <= 300
        assert log.read(1, 121) == recs(1, 121, size=30)
    with SegmentLog.open(str(path), segment_bytes=300) as log:
        assert log.read(1, 121) == recs(1, 121, size=30)


def test_a_record_bigger_than_a_segment_gets_a_segment_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "log"
    big = Record(2, 1, 0, b"b" * 1000)
    with SegmentLog.open(str(path), segment_bytes=200) as log:
        log.append([rec(1), big, rec(3)])
        log.append([Record(4, 1, 0, b"c" * 1000)])
        assert log.read(1, 5) == [rec(1), big, rec(3), Record(4, 1, 0, b"c" * 1000)]
    assert len(segment_files(path)) == 4
    with SegmentLog.open(str(path), segment_bytes=200) as log:
        assert log.read(2, 3) == [big]


def test_truncate_from_drops_the_suffix_durably(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    with SegmentLog.open(path, segment_bytes=200) as log:
        log.append(recs(1, 31, term=1))
        log.truncate_from(31)  # past the end: nothing to drop
        assert log.last_index == 30
        log.truncate_from(12)
        assert log.last_index == 11
        with pytest.raises(IndexError):
            log.term_at(12)
        log.append(recs(12, 15, term=2))
        assert log.term_at(11) == 1 and log.term_at(12) == 2
    with SegmentLog.open(path, segment_bytes=200) as log:
        assert log.last_index == 14
        assert log.read(1, 15) == recs(1, 12, term=1) + recs(12, 15, term=2)


def test_truncate_from_the_first_index_empties_the_log(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    with SegmentLog.open(path, segment_bytes=200) as log:
        log.append(recs(1, 21))
        log.compact_upto(5)
        with pytest.raises(ValueError):
            log.truncate_from(5)
        log.truncate_from(6)
        assert (log.first_index, log.last_index) == (6, 5)
    with SegmentLog.open(path, segment_bytes=200) as log:
        assert (log.first_index, log.last_index) == (6, 5)
        log.append(recs(6, 8, term=7))
        assert log.read(6, 8) == recs(6, 8, term=7)


def test_compact_upto_drops_whole_segments_and_the_first_index_survives(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with SegmentLog.open(str(path), segment_bytes=200) as log:
        log.append(recs(1, 41, size=20))
        before = segment_files(path)
        log.compact_upto(0)  # before the first index: nothing happens
        log.compact_upto(17)
        assert (log.first_index, log.last_index) == (18, 40)
        with pytest.raises(IndexError):
            log.read(17, 18)
        assert log.read(18, 41) == recs(18, 41, size=20)
        after = segment_files(path)
        assert len(after) < len(before)
        # The segment holding 18 stays, so its first record may precede 18.
        assert int(after[0][:20]) <= 18
    with SegmentLog.open(str(path), segment_bytes=200) as log:
        assert (log.first_index, log.last_index) == (18, 40)
        assert log.read(18, 41) == recs(18, 41, size=20)
        assert log.term_at(18) == 1


@pytest.mark.parametrize("beyond", [0, 1, 50])
def test_compact_upto_at_or_past_the_end_empties_the_log(tmp_path: Path, beyond: int) -> None:
    """How a follower installs a snapshot that replaces its whole log."""
    path = tmp_path / "log"
    index = 30 + beyond
    with SegmentLog.open(str(path), segment_bytes=200) as log:
        log.append(recs(1, 31))
        log.compact_upto(index)
        assert (log.first_index, log.last_index, len(log)) == (index + 1, index, 0)
        assert segment_files(path) == []
    with SegmentLog.open(str(path), segment_bytes=200) as log:
        assert (log.first_index, log.last_index) == (index + 1, index)
        with pytest.raises(ValueError):
            log.append([rec(index)])
        log.append(recs(index + 1, index + 4, term=9))
        assert log.term_at(index + 1) == 9
    with SegmentLog.open(str(path), segment_bytes=200) as log:
        assert log.read(index + 1, index + 4) == recs(index + 1, index + 4, term=9)


def test_sync_is_one_fdatasync_for_many_appends(tmp_path: Path) -> None:
    with SegmentLog.open(str(tmp_path / "log")) as log:
        log.append(recs(1, 2))
        log.sync()
        counter = FaultyOps()
        install(counter)
        for i in range(2, 12):
            log.append([rec(i)])
        log.sync()
        log.sync()  # nothing new: no system call at all
        assert counter.log.count("pwrite") == 10
        assert counter.log.count("fdatasync") == 1
        assert counter.log.count("fsync") == 0


def test_new_segments_fsync_the_directory_and_seal_the_old_one(tmp_path: Path) -> None:
    with SegmentLog.open(str(tmp_path / "log"), segment_bytes=200) as log:
        log.append(recs(1, 3, size=20))
        log.sync()
        counter = FaultyOps()
        install(counter)
        log.append(recs(3, 12, size=20))  # rolls over into new segments
        log.sync()
        assert counter.log.count("open") >= 1
        assert counter.log.count("fsync") >= 1  # the directory


def test_closed_log_refuses_calls_and_close_is_idempotent(tmp_path: Path) -> None:
    log = SegmentLog.open(str(tmp_path / "log"))
    log.append([rec(1)])
    log.close()
    log.close()
    for call in (
        lambda: log.append([rec(2)]),
        log.sync,
        lambda: log.read(1, 2),
        lambda: log.term_at(1),
        lambda: log.truncate_from(1),
        lambda: log.compact_upto(1),
    ):
        with pytest.raises(LogUnusableError, match="closed"):
            call()


def test_segment_bytes_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SegmentLog.open(str(tmp_path / "log"), segment_bytes=SEG_HEADER_SIZE)


def test_many_segments_keep_few_files_open(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    with SegmentLog.open(path, segment_bytes=100) as log:
        log.append(recs(1, 81, size=20))  # 40 segments
        log.sync()
        assert log.read(1, 81) == recs(1, 81, size=20)
        assert log.read(1, 81, max_bytes=10**6) == recs(1, 81, size=20)
        assert len(log._open_files) <= 8


def test_record_is_a_cheap_value() -> None:
    a = Record(1, 2, 3, b"xy")
    assert a == Record(1, 2, 3, b"xy")
    assert a != Record(1, 2, 3, b"xz")
    assert a != (1, 2, 3, b"xy")
    assert hash(a) == hash(Record(1, 2, 3, b"xy"))
    assert "index=1" in repr(a) and "2 bytes" in repr(a)
    assert "..." in repr(Record(1, 1, 0, b"z" * 100))
    match a:
        case Record(index, term, type_, data):
            assert (index, term, type_, data) == (1, 2, 3, b"xy")
    with pytest.raises(AttributeError):
        a.extra = 1  # type: ignore[attr-defined]


def test_open_log_memory_does_not_hold_record_data(tmp_path: Path) -> None:
    """The in-memory index is offsets and term runs, not data (1,000 x 10 KB here)."""
    path = str(tmp_path / "log")
    with SegmentLog.open(path, segment_bytes=2**20) as log:
        for lo in range(1, 1001, 100):
            log.append(
                [Record(i, 1 + i // 300, 0, os.urandom(10_000)) for i in range(lo, lo + 100)]
            )
    tracemalloc.start()
    try:
        log = SegmentLog.open(path, segment_bytes=2**20)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with log:
        assert log.last_index == 1000
        assert current < 200_000, current  # 10 MB of data on disk
        assert peak < 400_000, peak
