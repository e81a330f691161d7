"""Opening a damaged log: torn tails are cut, any other damage is named and left alone."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from storage_faults import snapshot_tree

from storage import CorruptLogError, Record, SegmentLog
from storage._batch import encode_batch_record
from storage._record import encode_batch
from storage._recovery import STATE_NAME, LogState
from storage._segment import (
    SEG_HEADER_SIZE,
    SEG_VERSION_BATCHES,
    SEG_VERSION_RECORDS,
    encode_segment_header,
    segment_name,
)


def rec(index: int, term: int = 1) -> Record:
    return Record(index, term, index % 2, f"payload-{index}".encode() * (1 + index % 3))


def build(path: Path, count: int, segment_bytes: int = 400, term_every: int = 7) -> list[Record]:
    records = [rec(i, 1 + i // term_every) for i in range(1, count + 1)]
    with SegmentLog.open(str(path), segment_bytes=segment_bytes) as log:
        for k in range(0, count, 5):
            log.append(records[k : k + 5])
    return records


def segments(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix == ".seg")


def record_offsets(seg: Path) -> list[int]:
    """Start offset of each record in a segment, worked out from the lengths."""
    data = seg.read_bytes()
    pos, out = SEG_HEADER_SIZE, []
    while pos < len(data):
        out.append(pos)
        pos += 12 + int.from_bytes(data[pos : pos + 4], "little")
    return out


def record_counts(seg: Path) -> list[int]:
    """Entries in each record of a segment: 1 in format 1, the batch's count in format 2."""
    data = seg.read_bytes()
    batched = int.from_bytes(data[8:12], "little") == SEG_VERSION_BATCHES
    return [
        int.from_bytes(data[pos + 20 : pos + 24], "little") if batched else 1
        for pos in record_offsets(seg)
    ]


def overwrite(file: Path, offset: int, data: bytes) -> None:
    """Change bytes in place (rewriting whole files is slow on ext4: auto_da_alloc)."""
    fd = os.open(file, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def reopen(path: Path) -> list[Record]:
    with SegmentLog.open(str(path), segment_bytes=400) as log:
        return log.read(log.first_index, log.last_index + 1)


def test_truncation_at_every_byte_of_the_final_records_recovers_the_prefix(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log"
    records = build(path, 40)
    last = segments(path)[-1]
    original = last.read_bytes()
    starts = record_offsets(last)
    counts = record_counts(last)
    first_in_last = int(last.name[:20])
    tail_from = starts[-min(2, len(starts))]  # the final two (batch) records, every byte
    for cut in range(tail_from, len(original) + 1):
        os.truncate(last, cut)
        survivors = sum(1 for k, start in enumerate(starts) if _end(starts, k, original) <= cut)
        # A torn batch is dropped whole: none of it was acknowledged.
        expected = records[: first_in_last - 1 + sum(counts[:survivors])]
        assert reopen(path) == expected, cut
        assert last.stat().st_size == (
            _end(starts, survivors - 1, original) if survivors else SEG_HEADER_SIZE
        )
        overwrite(last, last.stat().st_size, original[last.stat().st_size :])


def _end(starts: list[int], k: int, data: bytes) -> int:
    return starts[k + 1] if k + 1 < len(starts) else len(data)


def test_zero_filled_tail_is_cut(tmp_path: Path) -> None:
    """A file system may extend a file with zeros that were never written."""
    path = tmp_path / "log"
    records = build(path, 20)
    last = segments(path)[-1]
    data = last.read_bytes()
    starts = record_offsets(last)
    dropped = record_counts(last)[-1]
    for keep, zeros in [(len(data), 7), (len(data), 4096), (starts[-1] + 20, 300)]:
        last.write_bytes(data[:keep] + bytes(zeros))
        expected = records if keep == len(data) else records[:-dropped]
        assert reopen(path) == expected
        last.write_bytes(data)


def test_torn_new_segment_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = build(path, 20)
    for content in [b"", b"TRAFTS", bytes(SEG_HEADER_SIZE), bytes(100)]:
        torn = path / segment_name(21)
        torn.write_bytes(content)
        assert reopen(path) == records
        assert not torn.exists()


def test_a_flipped_bit_before_the_tail_is_detected_with_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = build(path, 24, segment_bytes=300)
    rng = random.Random(1)
    files = segments(path)
    final_start = record_offsets(files[-1])[-1]
    before = snapshot_tree(path)
    checked = 0
    for seg in files:
        original = seg.read_bytes()
        # Every byte of every segment, except the final record of the last one.
        end = final_start if seg == files[-1] else len(original)
        for offset in range(end):
            damaged = bytearray(original)
            damaged[offset] ^= 1 << rng.randrange(8)
            overwrite(seg, offset, damaged[offset : offset + 1])
            with pytest.raises(CorruptLogError) as info:
                SegmentLog.open(str(path), segment_bytes=300)
            message = str(info.value)
            assert seg.name in message and "offset" in message
            assert info.value.path == str(seg)
            assert info.value.offset <= offset
            assert seg.read_bytes() == bytes(damaged)  # open changed nothing
            overwrite(seg, offset, original[offset : offset + 1])
            checked += 1
    assert checked > 500
    assert snapshot_tree(path) == before
    assert reopen(path) == records


def test_a_flipped_bit_in_the_final_record_either_cuts_it_or_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = build(path, 10)
    last = segments(path)[-1]
    original = last.read_bytes()
    final_start = record_offsets(last)[-1]
    dropped = record_counts(last)[-1]
    for offset in range(final_start, len(original)):
        for bit in (0, 7):
            overwrite(last, offset, bytes([original[offset] ^ (1 << bit)]))
            try:
                assert reopen(path) == records[:-dropped]
            except CorruptLogError as exc:
                assert exc.path == str(last) and exc.offset == final_start
            else:  # the final record was cut off: put it back
                overwrite(last, final_start, original[final_start:])
            overwrite(last, offset, original[offset : offset + 1])


def test_garbage_after_the_last_record_is_reported_not_cut(tmp_path: Path) -> None:
    """Non-zero bytes after a bad header may hide records: never skip them silently."""
    path = tmp_path / "log"
    build(path, 10)
    last = segments(path)[-1]
    size = last.stat().st_size
    with open(last, "ab") as f:
        f.write(b"\xff" * 40)
    with pytest.raises(CorruptLogError, match=f"offset {size}"):
        SegmentLog.open(str(path))


def test_a_missing_middle_segment_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log"
    build(path, 40, segment_bytes=300)
    files = segments(path)
    files[1].unlink()
    with pytest.raises(CorruptLogError, match="missing") as info:
        SegmentLog.open(str(path), segment_bytes=300)
    assert info.value.path == str(files[2])


def test_a_missing_first_segment_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log"
    build(path, 40, segment_bytes=300)
    first = segments(path)[0]
    first.unlink()
    with pytest.raises(CorruptLogError, match="missing"):
        SegmentLog.open(str(path), segment_bytes=300)


def test_a_missing_newest_segment_is_reported(tmp_path: Path) -> None:
    """Deleting the newest segment leaves a log that only looks shorter; the
    state file names the newest synced segment, so open refuses it."""
    path = tmp_path / "log"
    build(path, 40, segment_bytes=300)
    newest = segments(path)[-1]
    newest.unlink()
    with pytest.raises(CorruptLogError, match="newest segment") as info:
        SegmentLog.open(str(path), segment_bytes=300)
    assert info.value.path == str(newest)


def test_the_newest_segment_is_named_only_once_synced(tmp_path: Path) -> None:
    path = tmp_path / "log"
    log = SegmentLog.open(str(path), segment_bytes=300)
    log.append([rec(i) for i in range(1, 30)])  # rolls into new segments, not synced
    log._release()
    # Records never synced were never acknowledged: losing their segment is
    # a crash, not damage.
    segments(path)[-1].unlink()
    with SegmentLog.open(str(path), segment_bytes=300) as reopened:
        assert reopened.last_index < 29


def test_a_version_1_state_file_still_opens(tmp_path: Path) -> None:
    import struct
    import zlib

    path = tmp_path / "log"
    records = build(path, 12)
    fields = struct.pack("<8sIIQQ", b"TRAFTLOG", 1, 0, 1, 0)
    (path / STATE_NAME).write_bytes(fields + struct.pack("<I", zlib.crc32(fields)))
    assert reopen(path) == records
    assert len((path / STATE_NAME).read_bytes()) == 44  # upgraded to version 2


def test_a_missing_or_damaged_state_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log"
    build(path, 10)
    state = path / STATE_NAME
    good = state.read_bytes()
    state.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(CorruptLogError, match="state"):
        SegmentLog.open(str(path))
    state.unlink()
    with pytest.raises(CorruptLogError, match="missing"):
        SegmentLog.open(str(path))


def test_a_record_out_of_sequence_is_reported_even_at_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.mkdir()
    (path / STATE_NAME).write_bytes(LogState(1).encode())
    parts, _, _, _ = encode_batch([rec(1), rec(2)], 1, SEG_HEADER_SIZE, None)
    skipped, _, _, _ = encode_batch([rec(4)], 4, 0, None)
    header = encode_segment_header(1, SEG_VERSION_RECORDS)
    (path / segment_name(1)).write_bytes(header + b"".join(parts + skipped))
    with pytest.raises(CorruptLogError, match="expected record 3, found record 4"):
        SegmentLog.open(str(path))
    batches = encode_batch_record([rec(1), rec(2)], 1) + encode_batch_record([rec(4)], 4)
    (path / segment_name(1)).write_bytes(encode_segment_header(1) + batches)
    with pytest.raises(CorruptLogError, match="expected batch record 3, found batch record 4"):
        SegmentLog.open(str(path))


def test_a_segment_whose_header_disagrees_with_its_name_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log"
    build(path, 40, segment_bytes=300)
    files = segments(path)
    data = bytearray(files[1].read_bytes())
    data[:SEG_HEADER_SIZE] = encode_segment_header(999)
    files[1].write_bytes(bytes(data))
    with pytest.raises(CorruptLogError, match="file name"):
        SegmentLog.open(str(path), segment_bytes=300)


def test_leftovers_of_an_interrupted_compaction_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = build(path, 40, segment_bytes=300)
    files = segments(path)
    second_first = int(files[1].name[:20])
    (path / STATE_NAME).write_bytes(LogState(second_first + 1).encode())
    (path / (STATE_NAME + ".tmp")).write_bytes(b"half-written")
    with SegmentLog.open(str(path), segment_bytes=300) as log:
        assert log.first_index == second_first + 1
        assert log.read(log.first_index, 41) == records[second_first:]
    assert not files[0].exists() and files[1].exists()
    assert not (path / (STATE_NAME + ".tmp")).exists()


def test_an_interrupted_truncation_is_finished(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = build(path, 40, segment_bytes=300)
    (path / STATE_NAME).write_bytes(LogState(1, 17).encode())
    with SegmentLog.open(str(path), segment_bytes=300) as log:
        assert log.last_index == 16
        assert log.read(1, 17) == records[:16]
    with SegmentLog.open(str(path), segment_bytes=300) as log:
        assert log.last_index == 16
        log.append([rec(17, 9)])
    assert reopen(path)[-1] == rec(17, 9)


def test_a_compaction_past_the_end_that_was_interrupted_leaves_an_empty_log(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log"
    build(path, 40, segment_bytes=300)
    (path / STATE_NAME).write_bytes(LogState(101).encode())
    with SegmentLog.open(str(path), segment_bytes=300) as log:
        assert (log.first_index, log.last_index) == (101, 100)
    assert segments(path) == []


def test_damage_report_changes_nothing_even_with_repairs_pending(tmp_path: Path) -> None:
    """A torn tail elsewhere is not repaired when damage is found: open changes nothing."""
    path = tmp_path / "log"
    build(path, 40, segment_bytes=300)
    files = segments(path)
    with open(files[-1], "ab") as f:
        f.write(b"\x01\x02")  # a torn tail that open would cut
    (path / (STATE_NAME + ".tmp")).write_bytes(b"x")
    data = bytearray(files[0].read_bytes())
    data[SEG_HEADER_SIZE + 20] ^= 0x10
    files[0].write_bytes(bytes(data))
    before = snapshot_tree(path)
    with pytest.raises(CorruptLogError):
        SegmentLog.open(str(path), segment_bytes=300)
    assert snapshot_tree(path) == before


def test_bit_rot_after_open_is_caught_by_read(tmp_path: Path) -> None:
    path = tmp_path / "log"
    build(path, 10)
    with SegmentLog.open(str(path)) as log:
        seg = segments(path)[0]
        data = bytearray(seg.read_bytes())
        data[record_offsets(seg)[1] + 25] ^= 4  # in the second batch (records 6..10)
        seg.write_bytes(bytes(data))
        assert len(log.read(1, 6)) == 5
        with pytest.raises(CorruptLogError, match="CRC"):
            log.read(1, 11)
        with pytest.raises(CorruptLogError, match="CRC"):
            log.read(7, 8)


def test_copy_of_a_log_opens_identically(tmp_path: Path) -> None:
    """Nothing in a log depends on its absolute path."""
    path = tmp_path / "log"
    records = build(path, 30, segment_bytes=300)
    shutil.copytree(path, tmp_path / "copy")
    assert reopen(tmp_path / "copy") == records
    assert os.listdir(tmp_path / "copy")


def test_repairs_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "log"
    build(path, 10)
    with open(segments(path)[-1], "ab") as f:
        f.write(b"\x09")
    with caplog.at_level("WARNING", logger="storage"):
        reopen(path)
    assert any("recovery: cut" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="storage"):
        reopen(path)
    assert not caplog.records
