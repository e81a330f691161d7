"""Batch records (segment format 2) beside the per-entry records of format 1.

A data directory written by an older traft (format-1 segments) must open,
read, grow and be truncated by this one; new segments are written in format 2.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import Record, SegmentLog, inspect_data_dir
from storage._record import encode_batch
from storage._recovery import STATE_NAME, LogState, plan_log
from storage._segment import (
    SEG_HEADER_SIZE,
    SEG_VERSION_BATCHES,
    SEG_VERSION_RECORDS,
    encode_segment_header,
    segment_name,
)
from traft.cli import main as log_main

SEGMENT_BYTES = 1000


def rec(index: int, term: int = 1, size: int = 10) -> Record:
    return Record(index, term, index % 3, bytes([index % 256]) * size)


def old_format_log(path: Path, count: int = 20) -> list[Record]:
    """A log as traft wrote it before batch records: one format-1 segment, by hand."""
    path.mkdir(parents=True)
    records = [rec(i, 1 + i // 8) for i in range(1, count + 1)]
    parts, _, _, _ = encode_batch(records, 1, SEG_HEADER_SIZE, None)
    header = encode_segment_header(1, SEG_VERSION_RECORDS)
    (path / segment_name(1)).write_bytes(header + b"".join(parts))
    (path / STATE_NAME).write_bytes(LogState(1, 0, 1).encode())
    return records


def versions(path: Path) -> list[int]:
    return [scan.version for scan in plan_log(str(path)).segments]


def test_an_old_format_log_opens_reads_and_grows(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = old_format_log(path)
    with SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES) as log:
        assert log.read(1, 21) == records
        assert [log.term_at(i) for i in (1, 8, 20)] == [1, 2, 3]
        # A small batch still fits the format-1 segment: format-1 records.
        log.append([rec(21, 3), rec(22, 3)])
        size_before = os.path.getsize(path / segment_name(1))
        # A batch that does not fit rolls into a new, format-2 segment.
        log.append([rec(i, 4, 100) for i in range(23, 33)])
        log.append([rec(i, 4, 5) for i in range(33, 36)])
    formats = versions(path)
    assert formats[0] == SEG_VERSION_RECORDS and set(formats[1:]) == {SEG_VERSION_BATCHES}
    assert os.path.getsize(path / segment_name(1)) == size_before
    expected = records + [rec(21, 3), rec(22, 3)]
    expected += [rec(i, 4, 100) for i in range(23, 33)] + [rec(i, 4, 5) for i in range(33, 36)]
    with SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES) as log:
        assert log.read(1, 36) == expected
        assert log.read(20, 25, max_bytes=1) == [rec(20, 3)]
        log.truncate_from(10)  # back into the format-1 segment
        assert log.last_index == 9
        log.append([rec(10, 5), rec(11, 5)])  # the newest segment is format 1 again
    with SegmentLog.open(str(path), segment_bytes=SEGMENT_BYTES) as log:
        assert log.read(1, 12) == records[:9] + [rec(10, 5), rec(11, 5)]
    assert versions(path) == [SEG_VERSION_RECORDS]


def test_a_truncation_inside_a_batch_keeps_the_batch_prefix(tmp_path: Path) -> None:
    path = tmp_path / "log"
    batch = [rec(i, 2, 7) for i in range(1, 11)]
    with SegmentLog.open(str(path)) as log:
        log.append(batch)
        log.append([rec(11, 2)])
        log.truncate_from(6)
        assert log.read(1, 6) == batch[:5]
        log.append([rec(6, 3), rec(7, 3)])
        assert log.read(1, 8) == batch[:5] + [rec(6, 3), rec(7, 3)]
        assert [log.term_at(i) for i in (5, 6)] == [2, 3]
    assert not (path / "rewrite").exists()
    with SegmentLog.open(str(path)) as log:
        assert log.read(1, 8) == batch[:5] + [rec(6, 3), rec(7, 3)]
        log.truncate_from(1)  # at a batch's start: a plain cut
        assert log.last_index == 0
        log.append([rec(1, 4)])
    with SegmentLog.open(str(path)) as log:
        assert log.read(1, 2) == [rec(1, 4)]


def test_a_compaction_inside_a_batch_keeps_the_rest_readable(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with SegmentLog.open(str(path)) as log:
        log.append([rec(i) for i in range(1, 11)])
        log.compact_upto(4)
        assert log.read(5, 11) == [rec(i) for i in range(5, 11)]
    with SegmentLog.open(str(path)) as log:
        assert (log.first_index, log.last_index) == (5, 10)
        assert log.read(5, 11) == [rec(i) for i in range(5, 11)]
        log.compact_upto(10)
        log.append([rec(11)])
    with SegmentLog.open(str(path)) as log:
        assert log.read(11, 12) == [rec(11)]


def test_one_append_is_one_record_with_one_crc(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with SegmentLog.open(str(path)) as log:
        log.append([rec(i) for i in range(1, 101)])
        log.append([rec(101)])
    data = (path / segment_name(1)).read_bytes()
    # header, then (12-byte record header + 12-byte batch fields + 13 per entry + data) x 2
    assert len(data) == SEG_HEADER_SIZE + (24 + 100 * 23) + (24 + 23)


def test_inspect_and_verify_understand_both_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "node"
    old_format_log(node / "log")
    with SegmentLog.open(str(node / "log"), segment_bytes=SEGMENT_BYTES) as log:
        log.append([rec(i, 4, 200) for i in range(21, 31)])
    report = inspect_data_dir(str(node), verify=True)
    assert report.problems == []
    formats = [s.format for s in report.segments]
    assert formats[0] == 1 and set(formats[1:]) == {2}
    assert (report.log_first_index, report.log_last_index) == (1, 30)
    assert log_main(["log", "verify", str(node)]) == 0
    assert log_main(["log", "inspect", str(node)]) == 0
    out = capsys.readouterr().out
    assert "format 1 (one record per entry)" in out and "format 2 (batch records)" in out
