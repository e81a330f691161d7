"""Segment files: naming, header, and the read-only scan that recovery relies on.

Theory of operation: the log is a sequence of segment files named after the
index of their first record (``00000000000000000001.seg``, 20 digits so names
sort by index). Each starts with a 32-byte header::

    0   8  magic b"TRAFTSEG"
    8   4  format version (1: one record per entry; 2: batch records)
    12  4  flags (0)
    16  8  index of the first record (must equal the file name)
    24  4  reserved (0)
    28  4  CRC-32 of bytes 0-27

followed by records with consecutive indexes, nothing else: in format 1 one
record per entry (``_record``), in format 2 one batch record per append
(``_batch``). New segments are written in format 2; a segment keeps the
format it was created in, so a log from an older version reads on, and its
newest format-1 segment takes format-1 records until it rolls over.

:func:`scan_segment` reads a segment without changing it, checks every
record's length and CRC, and builds the in-memory index (one u32 offset per
record, plus the term runs). What it does with damage follows one rule: a
crash can only tear the end of the *last* segment, because a segment is
fsynced before the next one is created. So in the last segment, a bad record
with nothing but zeros (or nothing at all) after it is a torn tail to cut;
every other anomaly is damage, reported as :class:`CorruptLogError` with the
file and offset. Concretely, in the last segment these are torn tails:

- fewer than 12 bytes left for a record header (short length);
- a header whose length check passes but whose body runs past the end of the
  file (short payload);
- a body whose CRC fails when the record ends exactly at the end of the file
  or is followed only by zero bytes (bad CRC of the final record);
- a header whose length check fails, followed only by zero bytes (a file
  extended by the file system but never written);
- a file shorter than the segment header, or whose header is all zeros.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import zlib
from array import array
from bisect import bisect_right

from ._batch import BATCH_META_SIZE, BATCH_PREFIX, MIN_BATCH_BODY, PER_ENTRY, batch_terms
from ._errors import CorruptLogError
from ._record import HEADER_SIZE, LENGTH_MASK, META_SIZE, MIN_RECORD_SIZE, REC_HEADER, REC_PREFIX

SEGMENT_SUFFIX = ".seg"
SEG_MAGIC = b"TRAFTSEG"
SEG_VERSION_RECORDS = 1
SEG_VERSION_BATCHES = 2
SEG_VERSION = SEG_VERSION_BATCHES  # what new segments are written in
SEG_VERSIONS = (SEG_VERSION_RECORDS, SEG_VERSION_BATCHES)
SEG_HEADER = struct.Struct("<8sIIQI")
SEG_HEADER_SIZE = SEG_HEADER.size + 4  # 32: the fields above, then their CRC
_NAME_RE = re.compile(r"^(\d{20})\.seg$")


def segment_name(first_index: int) -> str:
    """The file name of the segment whose first record has index ``first_index``."""
    return f"{first_index:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The first index encoded in a segment file name, or None if ``name`` is not one."""
    match = _NAME_RE.match(name)
    return int(match.group(1)) if match else None


def encode_segment_header(first_index: int, version: int = SEG_VERSION) -> bytes:
    """The 32-byte header of a new segment starting at ``first_index``."""
    fields = SEG_HEADER.pack(SEG_MAGIC, version, 0, first_index, 0)
    return fields + struct.pack("<I", zlib.crc32(fields))


class SegmentScan:
    """What :func:`scan_segment` found in one segment file.

    ``offsets[k]`` is the byte offset of record ``first_index + k`` (in format
    2, of the batch record holding it, shared by the batch); ``end`` is
    the offset after the last good record. When ``torn`` is set, the bytes from
    ``end`` to ``file_size`` are a torn tail that opening will cut off; when
    ``drop_file`` is set, the file holds only a torn header and opening will
    delete it.
    """

    __slots__ = (
        "path",
        "first_index",
        "offsets",
        "run_starts",
        "run_terms",
        "end",
        "file_size",
        "torn",
        "drop_file",
        "version",
    )

    def __init__(self, path: str, first_index: int, file_size: int) -> None:
        self.path = path
        self.first_index = first_index
        self.offsets: array[int] = array("I")
        self.run_starts: list[int] = []
        self.run_terms: list[int] = []
        self.end = SEG_HEADER_SIZE
        self.file_size = file_size
        self.torn: str | None = None
        self.drop_file = False
        self.version = SEG_VERSION

    @property
    def count(self) -> int:
        """Number of good records in the segment."""
        return len(self.offsets)

    @property
    def last_index(self) -> int:
        """Index of the last good record (``first_index - 1`` when there is none)."""
        return self.first_index + len(self.offsets) - 1


def scan_segment(path: str, first_index: int, is_last: bool) -> SegmentScan:
    """Read and check segment ``path``, whose name says it starts at ``first_index``.

    Changes nothing on disk. ``is_last`` says whether this is the newest
    segment, the only one whose tail a crash may have torn.

    Raises:
        CorruptLogError: the segment is damaged other than by a torn tail.
        OSError: the file could not be read.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        scan = SegmentScan(path, first_index, size)
        if size < SEG_HEADER_SIZE:
            reason = f"segment header is short ({size} of {SEG_HEADER_SIZE} bytes)"
            if not is_last:
                raise CorruptLogError(path, 0, reason)
            scan.torn = reason
            scan.drop_file = True
            scan.end = 0
            return scan
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mm:
            _check_header(mm, scan, is_last)
            if not scan.drop_file:
                _scan_records(mm, scan, is_last)
        return scan
    finally:
        os.close(fd)


def _check_header(mm: mmap.mmap, scan: SegmentScan, is_last: bool) -> None:
    head = mm[:SEG_HEADER_SIZE]
    magic, version, _flags, first, _reserved = SEG_HEADER.unpack_from(head)
    (crc,) = struct.unpack_from("<I", head, SEG_HEADER.size)
    if crc != zlib.crc32(head[: SEG_HEADER.size]) or magic != SEG_MAGIC:
        if is_last and _all_zero(mm, 0, len(mm)):
            scan.torn = "segment holds only zero bytes (created but never written)"
            scan.drop_file = True
            scan.end = 0
            return
        raise CorruptLogError(scan.path, 0, "bad segment header (magic or CRC)")
    if version not in SEG_VERSIONS:
        raise CorruptLogError(scan.path, 8, f"unsupported segment format version {version}")
    scan.version = version
    if first != scan.first_index:
        raise CorruptLogError(
            scan.path,
            16,
            f"segment header says first index {first} but the file name says {scan.first_index}",
        )


def _scan_records(mm: mmap.mmap, scan: SegmentScan, is_last: bool) -> None:
    if scan.version == SEG_VERSION_BATCHES:
        _scan_batches(mm, scan, is_last)
        return
    size = len(mm)
    offsets = scan.offsets
    put_offset = offsets.append
    run_starts = scan.run_starts
    run_terms = scan.run_terms
    unpack = REC_PREFIX.unpack_from
    crc32 = zlib.crc32
    view = memoryview(mm)
    pos = SEG_HEADER_SIZE
    index = scan.first_index
    last_term = -1
    try:
        while pos < size:
            if size - pos < MIN_RECORD_SIZE:
                break
            length, check, crc, rec_index, term, _type = unpack(mm, pos)
            stop = pos + HEADER_SIZE + length
            if (
                check != length ^ LENGTH_MASK
                or length < META_SIZE
                or stop > size
                or crc32(view[pos + HEADER_SIZE : stop]) != crc
                or rec_index != index
            ):
                break
            put_offset(pos)
            if term != last_term:
                run_starts.append(index)
                run_terms.append(term)
                last_term = term
            index += 1
            pos = stop
    finally:
        view.release()
    scan.end = pos
    if pos < size:
        _diagnose(mm, scan, pos, index, is_last)


def _scan_batches(mm: mmap.mmap, scan: SegmentScan, is_last: bool) -> None:
    """Format 2: check each batch record; every entry gets its batch's offset."""
    size = len(mm)
    offsets = scan.offsets
    run_starts = scan.run_starts
    run_terms = scan.run_terms
    unpack = BATCH_PREFIX.unpack_from
    crc32 = zlib.crc32
    view = memoryview(mm)
    pos = SEG_HEADER_SIZE
    index = scan.first_index
    last_term = -1
    try:
        while pos < size:
            if size - pos < HEADER_SIZE + MIN_BATCH_BODY:
                break
            length, check, crc, first, count = unpack(mm, pos)
            stop = pos + HEADER_SIZE + length
            if (
                check != length ^ LENGTH_MASK
                or length < MIN_BATCH_BODY
                or stop > size
                or crc32(view[pos + HEADER_SIZE : stop]) != crc
                or first != index
                or count < 1
                or BATCH_META_SIZE + PER_ENTRY * count > length
            ):
                break
            # Only the column table is copied out, not the data.
            table = pos + HEADER_SIZE + BATCH_META_SIZE
            terms = batch_terms(
                mm[table : table + PER_ENTRY * count], count, length, (scan.path, pos)
            )
            offsets.extend(array("I", [pos]) * count)
            for k, term in enumerate(terms):
                if term != last_term:
                    run_starts.append(index + k)
                    run_terms.append(term)
                    last_term = term
            index += count
            pos = stop
    finally:
        view.release()
    scan.end = pos
    if pos < size:
        _diagnose(mm, scan, pos, index, is_last)


def _diagnose(mm: mmap.mmap, scan: SegmentScan, pos: int, index: int, is_last: bool) -> None:
    """Classify the bad bytes at ``pos``: a torn tail (recorded) or damage (raised)."""
    size = len(mm)
    left = size - pos
    batches = scan.version == SEG_VERSION_BATCHES
    kind = "batch record" if batches else "record"
    smallest = MIN_BATCH_BODY if batches else META_SIZE
    if left < HEADER_SIZE:
        reason = f"short {kind} header ({left} of {HEADER_SIZE} bytes)"
        tearable = True
    else:
        length, check, crc = REC_HEADER.unpack_from(mm, pos)
        stop = pos + HEADER_SIZE + length
        if check != length ^ LENGTH_MASK or length < smallest:
            reason = f"bad length in header of {kind} {index}"
            tearable = _all_zero(mm, pos, size)
        elif stop > size:
            reason = f"short payload of {kind} {index} ({left - HEADER_SIZE} of {length} bytes)"
            tearable = True
        elif zlib.crc32(mm[pos + HEADER_SIZE : stop]) != crc:
            reason = f"bad CRC in {kind} {index}"
            tearable = _all_zero(mm, stop, size)
        else:
            (found,) = struct.unpack_from("<Q", mm, pos + HEADER_SIZE)
            if found == index:  # only a batch can get here with the right index
                raise CorruptLogError(scan.path, pos, f"batch record {index} has a bad count")
            raise CorruptLogError(
                scan.path, pos, f"expected {kind} {index}, found {kind} {found} (gap or reorder)"
            )
    if is_last and tearable:
        scan.torn = f"torn tail: {reason}, {left} bytes cut at offset {pos}"
        return
    where = "in the last segment with data after it" if is_last else "in a sealed segment"
    raise CorruptLogError(scan.path, pos, f"{reason} {where}")


def _all_zero(mm: mmap.mmap, start: int, stop: int) -> bool:
    step = 1 << 20
    for pos in range(start, stop, step):
        chunk = mm[pos : min(stop, pos + step)]
        if chunk.count(0) != len(chunk):
            return False
    return True


class OpenSegment:
    """An open log's view of one segment: where its records are, and its file descriptor.

    In a segment of batch records (``batched``), every entry's offset is its
    batch record's, so equal neighbouring offsets mean one batch.
    """

    __slots__ = ("path", "first_index", "offsets", "size", "synced", "fd", "batched")

    def __init__(
        self, path: str, first_index: int, offsets: array[int], size: int, batched: bool = True
    ) -> None:
        self.path = path
        self.first_index = first_index
        self.offsets = offsets
        self.size = size
        # The size an fsync made durable; -1 for a file created since the
        # last sync. Invariant: synced == size unless the segment is unsynced.
        self.synced = size
        self.fd: int | None = None
        self.batched = batched

    def batch_end(self, k: int) -> int:
        """The offset just after the record holding entry ``first_index + k``."""
        offsets = self.offsets
        j = bisect_right(offsets, offsets[k], k + 1) if self.batched else k + 1
        return offsets[j] if j < len(offsets) else self.size

    @property
    def stop_index(self) -> int:
        """One past the index of the segment's last record."""
        return self.first_index + len(self.offsets)
