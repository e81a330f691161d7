"""Cutting a log inside a batch record, crash-safely.

Theory of operation: ``truncate_from(index)`` with ``index`` inside a batch
record (format 2, see ``_batch``) must keep the batch's entries before
``index``, which may have been acknowledged. The batch is rewritten: its
surviving prefix becomes a new, shorter batch record at the same offset. To
survive a crash at any point, the new record is first written, whole, to a
small ``rewrite`` file (``atomic_write``: temporary file, fsync, rename,
directory fsync) naming the segment, the offset and the truncation it
belongs to; only then is the segment cut at the batch and the new record
written there and fdatasync'ed; then the ``rewrite`` file is deleted and the
directory fsync'ed, before the state file's truncation intent is cleared.

Opening a log whose state file still holds that truncation intent and that
has a matching ``rewrite`` file applies it again first (cut the segment at the
offset, write the record, fdatasync), which is idempotent, then plans the log
afresh. A ``rewrite`` file without a matching intent is a leftover and is
deleted unread.

File layout: magic ``b"TRAFTRWR"``, version u32 (1), segment first index
u64, offset u64, truncate_from u64, the record's bytes, CRC-32 of all that
(little-endian).
"""

from __future__ import annotations

import os
import struct
import zlib

from . import _fileio
from ._batch import encode_batch_record, read_batch
from ._errors import CorruptLogError
from ._fileio import atomic_write, fsync_dir, remove_file, write_all
from ._segment import segment_name

REWRITE_NAME = "rewrite"
_MAGIC = b"TRAFTRWR"
_VERSION = 1
_HEAD = struct.Struct("<8sIQQQ")


class Rewrite:
    """A batch rewrite owed to segment ``segment`` (its first index) at ``offset``."""

    __slots__ = ("segment", "offset", "truncate_from", "record")

    def __init__(self, segment: int, offset: int, truncate_from: int, record: bytes) -> None:
        self.segment = segment
        self.offset = offset
        self.truncate_from = truncate_from
        self.record = record

    def encode(self) -> bytes:
        head = _HEAD.pack(_MAGIC, _VERSION, self.segment, self.offset, self.truncate_from)
        body = head + self.record
        return body + struct.pack("<I", zlib.crc32(body))


def read_rewrite(log_path: str) -> Rewrite | None:
    """The log's pending rewrite, or None when there is no ``rewrite`` file.

    Raises:
        CorruptLogError: the file is there but damaged (it is written atomically,
            so this is not a crash's doing).
        OSError: the file could not be read.
    """
    path = os.path.join(log_path, REWRITE_NAME)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    if len(raw) < _HEAD.size + 4:
        raise CorruptLogError(path, 0, f"rewrite file is short ({len(raw)} bytes)")
    (crc,) = struct.unpack_from("<I", raw, len(raw) - 4)
    if crc != zlib.crc32(raw[:-4]):
        raise CorruptLogError(path, len(raw) - 4, "bad CRC in rewrite file")
    magic, version, segment, offset, truncate_from = _HEAD.unpack_from(raw)
    if magic != _MAGIC or version != _VERSION:
        raise CorruptLogError(path, 0, "not a rewrite file of a known version")
    return Rewrite(segment, offset, truncate_from, raw[_HEAD.size : -4])


def prefix_record(batch: bytes, keep_before: int, path: str, offset: int) -> bytes:
    """The batch record holding the entries of ``batch`` before index ``keep_before``.

    Raises:
        CorruptLogError: ``batch`` (read from ``path`` at ``offset``) fails its checks.
    """
    view, _stop = read_batch(batch, 0, path, offset)
    records = view.records(view.first_index, keep_before)
    return encode_batch_record(records, view.first_index)


def write_rewrite(log_path: str, rewrite: Rewrite) -> None:
    """Make ``rewrite`` durable in the log directory before any byte is cut.

    Raises:
        OSError: the file could not be written.
    """
    atomic_write(os.path.join(log_path, REWRITE_NAME), rewrite.encode())


def apply_rewrite(fd: int, rewrite: Rewrite) -> int:
    """Cut the segment open as ``fd`` at the rewrite's offset and write its record, durably.

    Returns the segment's new size.

    Raises:
        OSError: a step failed.
    """
    _fileio.ops.ftruncate(fd, rewrite.offset)
    write_all(fd, rewrite.record, rewrite.offset)
    _fileio.ops.fdatasync(fd)
    return rewrite.offset + len(rewrite.record)


def finish_rewrite(log_path: str) -> None:
    """Delete the ``rewrite`` file, durably (before the truncation intent is cleared).

    Raises:
        OSError: the file could not be deleted or the directory synced.
    """
    remove_file(os.path.join(log_path, REWRITE_NAME))
    fsync_dir(log_path)


def redo_rewrite(path: str, rewrite: Rewrite) -> None:
    """Finish an interrupted cut inside a batch (see ``_rewrite``).

    Raises:
        OSError: a step failed.
    """
    fd = _fileio.ops.open(os.path.join(path, segment_name(rewrite.segment)), os.O_RDWR)
    try:
        apply_rewrite(fd, rewrite)
    finally:
        _fileio.ops.close(fd)
    finish_rewrite(path)
