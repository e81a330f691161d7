"""Batch records: a whole appended batch as one record with one CRC (segment format 2).

Theory of operation: segments of format version 2 hold batch records. One
``append`` writes one batch record per segment it touches, so the cost that
format 1 pays per entry (a header, a CRC, two ``struct`` packs) is paid once
per batch. The fields of the entries are stored as columns, so encoding and
decoding them is a handful of C-level array operations rather than a Python
loop with a ``struct`` call per entry::

    offset     size   field
    0          4      body length n (u32, little-endian)
    4          4      n XOR 0xFFFFFFFF (guards the length)
    8          4      CRC-32 (zlib) of the body
    12         8      first index (u64)      \\
    20         4      count c >= 1 (u32)      |
    24         8c     terms (u64 each)        | the body, n bytes
    24+8c      c      types (u8 each)         |
    24+9c      4c     data lengths (u32 each) |
    24+13c     ...    the data, concatenated /

A batch is all or nothing: its CRC covers every entry, so a batch torn by a
crash is dropped whole, which is right because none of it was acknowledged
(acknowledgement waits for the fsync after the whole batch). In memory, every
entry of a batch has its batch's offset (see ``_log``), so reading any entry
reads and checks its whole batch. Cutting a log inside a batch rewrites the
batch's surviving prefix (``_rewrite``).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence

from ._errors import CorruptLogError
from ._record import HEADER_SIZE, LENGTH_MASK, REC_HEADER, Record

BATCH_META = struct.Struct("<QI")
# A batch of one entry, the common case of one proposal at a time, packed and
# unpacked with one struct call instead of column arrays.
SINGLE = struct.Struct("<QIQBI")
BATCH_PREFIX = struct.Struct("<IIIQI")
BATCH_META_SIZE = BATCH_META.size  # 12
PER_ENTRY = 13  # term u64 + type u8 + length u32
MIN_BATCH_BODY = BATCH_META_SIZE + PER_ENTRY
_SWAP = sys.byteorder != "little"


def _column(code: str, raw: bytes | memoryview) -> array[int]:
    column = array(code)
    column.frombytes(raw)
    if _SWAP:  # pragma: no cover - the file format is little-endian
        column.byteswap()
    return column


def _bytes(column: array[int]) -> bytes:
    if _SWAP:  # pragma: no cover
        column = array(column.typecode, column)
        column.byteswap()
    return column.tobytes()


def batch_size(records: Sequence[Record]) -> int:
    """Bytes the batch record of ``records`` takes on disk, header included."""
    return (
        HEADER_SIZE + BATCH_META_SIZE + PER_ENTRY * len(records) + sum(len(r.data) for r in records)
    )


def encode_batch_record(records: Sequence[Record], first_index: int) -> bytes:
    """One batch record holding ``records``, numbered from ``first_index`` on.

    Raises:
        ValueError: no records, an index out of sequence, or a field out of
            range (term or index not in u64, type not in 0-255, too long).
    """
    count = len(records)
    if count == 1:
        record = records[0]
        if record.index != first_index:
            raise ValueError(f"record indexes must be contiguous from {first_index}")
        try:
            body = (
                SINGLE.pack(first_index, 1, record.term, record.type, len(record.data))
                + record.data
            )
        except (struct.error, TypeError) as exc:
            raise ValueError(f"record {first_index} cannot be encoded: {exc}") from exc
        size = len(body)
        return REC_HEADER.pack(size, size ^ LENGTH_MASK, zlib.crc32(body)) + body
    if not count:
        raise ValueError("a batch record holds at least one record")
    if [r.index for r in records] != list(range(first_index, first_index + count)):
        raise ValueError(f"record indexes must be contiguous from {first_index}")
    try:
        terms = array("Q", [r.term for r in records])
        types = bytes([r.type for r in records])
        datas = [r.data for r in records]
        lengths = array("I", [len(d) for d in datas])
        body = b"".join(
            (
                BATCH_META.pack(first_index, count),
                _bytes(terms),
                types,
                _bytes(lengths),
                *datas,
            )
        )
    except (struct.error, OverflowError, ValueError, TypeError) as exc:
        raise ValueError(f"batch from record {first_index} cannot be encoded: {exc}") from exc
    size = len(body)
    if size > LENGTH_MASK:
        raise ValueError(f"batch from record {first_index} is too large ({size} bytes)")
    return REC_HEADER.pack(size, size ^ LENGTH_MASK, zlib.crc32(body)) + body


class BatchView:
    """One checked batch record: its columns, not yet turned into records."""

    __slots__ = ("first_index", "count", "terms", "types", "lengths", "data_start", "body")

    def __init__(self, body: bytes | memoryview, where: tuple[str, int]) -> None:
        """Check the body's columns against its length and keep them.

        Raises:
            CorruptLogError: the columns do not add up to the body length.
        """
        size = len(body)
        if size < MIN_BATCH_BODY:
            raise CorruptLogError(*where, "batch record too short")
        first_index, count = BATCH_META.unpack_from(body)
        table_end = BATCH_META_SIZE + PER_ENTRY * count
        if count < 1 or table_end > size:
            raise CorruptLogError(*where, f"batch record with a bad count ({count})")
        terms_end = BATCH_META_SIZE + 8 * count
        self.first_index: int = first_index
        self.count: int = count
        self.terms = _column("Q", body[BATCH_META_SIZE:terms_end])
        self.types = bytes(body[terms_end : terms_end + count])
        self.lengths = _column("I", body[terms_end + count : table_end])
        if table_end + sum(self.lengths) != size:
            raise CorruptLogError(*where, "batch record lengths do not add up")
        self.data_start = table_end
        self.body = body

    def records(self, lo: int, hi: int) -> list[Record]:
        """The records with ``lo <= index < hi`` (clipped to this batch)."""
        first = self.first_index
        lo_k = max(lo - first, 0)
        hi_k = min(hi - first, self.count)
        lengths = self.lengths
        pos = self.data_start + sum(lengths[:lo_k])
        body = self.body
        terms = self.terms
        types = self.types
        out: list[Record] = []
        put = out.append
        for k in range(lo_k, hi_k):
            end = pos + lengths[k]
            put(Record(first + k, terms[k], types[k], bytes(body[pos:end])))
            pos = end
        return out


def batch_terms(table: bytes, count: int, body_size: int, where: tuple[str, int]) -> array[int]:
    """The terms of a batch whose column table (terms, types, lengths) is ``table``.

    For the recovery scan, which copies only the table, not the data.

    Raises:
        CorruptLogError: the columns do not add up to ``body_size``.
    """
    terms_end = 8 * count
    lengths = _column("I", table[terms_end + count : terms_end + 5 * count])
    if BATCH_META_SIZE + PER_ENTRY * count + sum(lengths) != body_size:
        raise CorruptLogError(*where, "batch record lengths do not add up")
    return _column("Q", table[:terms_end])


def read_batch(buf: bytes | memoryview, pos: int, path: str, offset: int) -> tuple[BatchView, int]:
    """Check the batch record at ``buf[pos:]``; return it and the position after it.

    Raises:
        CorruptLogError: a length, CRC or column does not check out.
    """
    end = len(buf)
    where = (path, offset + pos)
    if end - pos < HEADER_SIZE + MIN_BATCH_BODY:
        raise CorruptLogError(*where, "batch record extends past its recorded end")
    size, check, crc = REC_HEADER.unpack_from(buf, pos)
    stop = pos + HEADER_SIZE + size
    if check != size ^ LENGTH_MASK or size < MIN_BATCH_BODY or stop > end:
        raise CorruptLogError(*where, "bad batch record header (length check)")
    body = memoryview(buf)[pos + HEADER_SIZE : stop]
    if zlib.crc32(body) != crc:
        raise CorruptLogError(*where, "bad CRC in batch record")
    return BatchView(body, where), stop


def decode_batches(buf: bytes, path: str, offset: int, lo: int, hi: int) -> list[Record]:
    """The records ``lo <= index < hi`` of the whole batch records packed in ``buf``.

    The first batch must hold ``lo`` and the batches must follow on from one
    another; ``buf`` was read from ``path`` at ``offset``.

    Raises:
        CorruptLogError: a batch fails its checks or is out of sequence.
    """
    out: list[Record] = []
    pos = 0
    expected: int | None = None
    if len(buf) >= HEADER_SIZE + SINGLE.size:
        size, check, crc = REC_HEADER.unpack_from(buf)
        first, count, term, rtype, length = SINGLE.unpack_from(buf, HEADER_SIZE)
        if (
            count == 1
            and len(buf) == HEADER_SIZE + size
            and check == size ^ LENGTH_MASK
            and size == SINGLE.size + length
            and first == lo
        ):
            # One batch of one entry: the common read of one proposal at a time.
            if zlib.crc32(memoryview(buf)[HEADER_SIZE:]) != crc:
                raise CorruptLogError(path, offset, "bad CRC in batch record")
            return [Record(first, term, rtype, buf[HEADER_SIZE + SINGLE.size :])] if hi > lo else []
    while pos < len(buf):
        batch, stop = read_batch(buf, pos, path, offset)
        if (expected is None and not batch.first_index <= lo < batch.first_index + batch.count) or (
            expected is not None and batch.first_index != expected
        ):
            raise CorruptLogError(
                path, offset + pos, f"batch record starts at {batch.first_index}, out of sequence"
            )
        out.extend(batch.records(lo, hi))
        expected = batch.first_index + batch.count
        pos = stop
    return out
