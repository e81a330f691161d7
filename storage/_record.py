"""Log records and their byte encoding.

Theory of operation: a :class:`Record` is (index, term, type, data). On disk
each record is framed so that it can be checked on its own and so that a
record torn by a crash can be told apart from a damaged one::

    offset  size  field
    0       4     body length n (u32, little-endian; n = 17 + len(data))
    4       4     n XOR 0xFFFFFFFF (guards the length: a flipped bit in it is
                  caught before the length is trusted)
    8       4     CRC-32 (zlib) of the body
    12      8     index (u64)       \
    20      8     term (u64)         | the body, n bytes
    28      1     type (u8)          |
    29      n-17  data              /

Encoding a batch builds a list of parts and the caller joins it once and
writes it with one system call; per record that is two ``struct`` packs, one
CRC and a concatenation, which keeps the hot path well under a microsecond.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from ._errors import CorruptLogError

REC_HEADER = struct.Struct("<III")
REC_META = struct.Struct("<QQB")
REC_PREFIX = struct.Struct("<IIIQQB")
HEADER_SIZE = REC_HEADER.size  # 12
META_SIZE = REC_META.size  # 17
MIN_RECORD_SIZE = HEADER_SIZE + META_SIZE  # 29
LENGTH_MASK = 0xFFFFFFFF
MAX_DATA_SIZE = LENGTH_MASK - META_SIZE


class Record:
    """One log entry: ``index``, ``term``, ``type`` (0-255) and opaque ``data`` bytes.

    A plain slotted class rather than a frozen attrs class: creating one costs a
    third as much, and records are made by the thousand on the hot path. Treat
    it as immutable; equality and hashing are by value.
    """

    __slots__ = ("index", "term", "type", "data")
    __match_args__ = ("index", "term", "type", "data")

    index: int
    term: int
    type: int
    data: bytes

    def __init__(self, index: int, term: int, type: int, data: bytes) -> None:
        self.index = index
        self.term = term
        self.type = type
        self.data = data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (
            self.index == other.index
            and self.term == other.term
            and self.type == other.type
            and self.data == other.data
        )

    def __hash__(self) -> int:
        return hash((self.index, self.term, self.type, self.data))

    def __repr__(self) -> str:
        data = self.data if len(self.data) <= 32 else self.data[:32] + b"..."
        return (
            f"Record(index={self.index}, term={self.term}, type={self.type}, "
            f"data={data!r} ({len(self.data)} bytes))"
        )


# A record's term runs: parallel lists, run_starts[k] is the first index
# whose term is run_terms[k]. Terms change rarely, so this stays tiny.
TermRuns = tuple[list[int], list[int]]


def encode_batch(
    records: Sequence[Record], first_index: int, offset: int, last_term: int | None
) -> tuple[list[bytes], list[int], list[tuple[int, int]], int]:
    """Encode ``records``, which must be numbered from ``first_index`` on.

    ``offset`` is where the first record will land in its segment. Returns the
    parts to join, each record's offset, the term changes as (index, term)
    pairs relative to ``last_term``, and the offset after the last record.

    Raises:
        ValueError: an index is out of sequence, or a field is out of range
            (term or index not in u64, type not in 0-255, data too long).
    """
    parts: list[bytes] = []
    put = parts.append
    offsets: list[int] = []
    put_offset = offsets.append
    new_runs: list[tuple[int, int]] = []
    pack_meta = REC_META.pack
    pack_header = REC_HEADER.pack
    crc32 = zlib.crc32
    index = first_index
    try:
        for record in records:
            if record.index != index:
                raise ValueError(
                    f"record indexes must be contiguous: expected {index}, got {record.index}"
                )
            term = record.term
            body = pack_meta(index, term, record.type) + record.data
            size = len(body)
            put(pack_header(size, size ^ LENGTH_MASK, crc32(body)))
            put(body)
            put_offset(offset)
            offset += size + HEADER_SIZE
            if term != last_term:
                new_runs.append((index, term))
                last_term = term
            index += 1
    except (struct.error, TypeError) as exc:
        raise ValueError(f"record {index} cannot be encoded: {exc}") from exc
    return parts, offsets, new_runs, offset


def decode_records(buf: bytes, path: str, offset: int, first_index: int) -> list[Record]:
    """Decode the records packed in ``buf``, read from ``path`` at ``offset``.

    The records must be numbered from ``first_index`` and fill ``buf`` exactly.

    Raises:
        CorruptLogError: a length, CRC or index does not check out.
    """
    out: list[Record] = []
    put = out.append
    unpack = REC_PREFIX.unpack_from
    crc32 = zlib.crc32
    view = memoryview(buf)
    pos = 0
    end = len(buf)
    index = first_index
    try:
        while pos < end:
            if end - pos < MIN_RECORD_SIZE:
                raise CorruptLogError(path, offset + pos, "record extends past its recorded end")
            size, check, crc, rec_index, term, rtype = unpack(buf, pos)
            stop = pos + HEADER_SIZE + size
            if check != size ^ LENGTH_MASK or size < META_SIZE or stop > end:
                raise CorruptLogError(path, offset + pos, "bad record header (length check)")
            if crc32(view[pos + HEADER_SIZE : stop]) != crc:
                raise CorruptLogError(path, offset + pos, f"bad CRC in record {index}")
            if rec_index != index:
                raise CorruptLogError(
                    path, offset + pos, f"expected record {index}, found {rec_index}"
                )
            put(Record(index, term, rtype, buf[pos + HEADER_SIZE + META_SIZE : stop]))
            index += 1
            pos = stop
    finally:
        view.release()
    return out
