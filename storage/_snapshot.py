"""SnapshotStore: snapshot files written and read as streams of chunks.

Theory of operation: a snapshot is (term, index, membership bytes, data). The
data may be larger than memory, so it is written through a
:class:`SnapshotWriter` (``write(chunk)`` any number of times, then
``commit()``) and read back through a :class:`SnapshotReader`
(``chunks()``); :meth:`SnapshotStore.save` and :meth:`SnapshotStore.latest`
are in-memory conveniences on top. File layout (docs/storage-format.md)::

    header      52 bytes: magic b"TRAFTSNP", version, flags, term, index,
                membership length, membership CRC, reserved, header CRC
    membership  the bytes given by the caller
    chunk*      u32 length (> 0), u32 CRC-32 of the chunk, the chunk's bytes
    trailer     24 bytes: u32 0 (end mark), u32 chunk count, u64 data length,
                u32 CRC-32 of all data, u32 CRC-32 of the trailer

A snapshot is written to ``<name>.tmp``, fsynced, renamed to
``<index>-<term>.snap`` and the directory fsynced, so a crash leaves either
no new snapshot (a leftover ``.tmp``, deleted on open) or the whole of it.
After a commit only the newest ``keep`` snapshots remain.

Checking costs: opening the store checks every snapshot's header and trailer
and that the file has exactly the size they imply (cheap, no data read);
every chunk's CRC is checked as it is read, before it is handed out, and the
whole-data CRC at the end. :meth:`SnapshotStore.verify` reads a snapshot
through once for ``traft log verify`` or for callers that want to check
before they start to apply.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

from . import _fileio
from ._errors import CorruptLogError, write_error
from ._fileio import fsync_dir, make_dirs, remove_file, write_all

SNAP_MAGIC = b"TRAFTSNP"
SNAP_VERSION = 1
SNAP_HEADER = struct.Struct("<8sIIQQQII")
SNAP_HEADER_SIZE = SNAP_HEADER.size + 4  # 52
CHUNK_HEADER = struct.Struct("<II")
SNAP_TRAILER = struct.Struct("<IIQI")
SNAP_TRAILER_SIZE = SNAP_TRAILER.size + 4  # 24
DEFAULT_CHUNK_SIZE = 1 << 20
_NAME_RE = re.compile(r"^(\d{20})-(\d{20})\.snap$")
_U64 = 2**64


@dataclass(frozen=True, slots=True, repr=False)
class Snapshot:
    """A whole snapshot in memory: the state machine as of ``index`` (in ``term``)."""

    term: int
    index: int
    membership: bytes
    data: bytes

    def __repr__(self) -> str:
        return (
            f"Snapshot(term={self.term}, index={self.index}, "
            f"membership=<{len(self.membership)} bytes>, data=<{len(self.data)} bytes>)"
        )


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A stored snapshot's metadata; ``size`` is the length of its data in bytes."""

    term: int
    index: int
    membership: bytes
    size: int
    path: str


def snapshot_name(index: int, term: int) -> str:
    """The file name of the snapshot at ``index`` taken in ``term``."""
    return f"{index:020d}-{term:020d}.snap"


class SnapshotStore:
    """The snapshot files of one node, in a directory. Open with :meth:`SnapshotStore.open`."""

    def __init__(self, path: str, keep: int, infos: list[SnapshotInfo]) -> None:
        self._path = path
        self._keep = keep
        self._infos = infos  # oldest first, by (index, term)

    @classmethod
    def open(cls, path: str, keep: int = 2) -> SnapshotStore:
        """Open the snapshot directory ``path`` (created on the first save).

        Deletes temporary files left by a crash during a save, fsyncs the
        directory, and checks the header, trailer and size of every snapshot.

        Raises:
            ValueError: ``keep`` is less than 1.
            CorruptLogError: a snapshot file is damaged.
            WriteError: a leftover temporary file could not be deleted, or the
                directory could not be synced.
        """
        if keep < 1:
            raise ValueError("keep must be at least 1")
        path = os.path.abspath(path)
        infos: list[SnapshotInfo] = []
        if os.path.isdir(path):
            leftovers = [name for name in os.listdir(path) if name.endswith(".snap.tmp")]
            infos = read_infos(path)
            # Also makes durable a snapshot whose save was killed between its
            # rename and the directory fsync: the log may be compacted on the
            # strength of it.
            try:
                for name in leftovers:
                    remove_file(os.path.join(path, name))
                fsync_dir(path)
            except OSError as exc:
                raise write_error(path, "syncing the snapshot directory", exc) from exc
        return cls(path, keep, infos)

    @property
    def path(self) -> str:
        """The snapshot directory."""
        return self._path

    def infos(self) -> list[SnapshotInfo]:
        """Every stored snapshot, oldest first."""
        return list(self._infos)

    def latest_info(self) -> SnapshotInfo | None:
        """The newest snapshot's metadata, or None if there is none."""
        return self._infos[-1] if self._infos else None

    def latest(self) -> Snapshot | None:
        """The newest snapshot, read whole into memory (use :meth:`reader` for big ones).

        Raises:
            CorruptLogError: the snapshot's data is damaged.
        """
        info = self.latest_info()
        if info is None:
            return None
        with self.reader(info) as reader:
            data = b"".join(reader.chunks())
        return Snapshot(info.term, info.index, info.membership, data)

    def save(self, snapshot: Snapshot) -> SnapshotInfo:
        """Store ``snapshot`` durably and atomically.

        Raises:
            ValueError: term or index out of range.
            DiskFullError: the disk is full; nothing was stored.
            WriteError: another write failure; nothing new was stored, or the
                whole snapshot was (if only the final directory fsync failed).
        """
        with self.writer(snapshot.term, snapshot.index, snapshot.membership) as writer:
            writer.write(snapshot.data)
        assert writer.info is not None
        return writer.info

    def writer(
        self, term: int, index: int, membership: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> SnapshotWriter:
        """Start writing a snapshot; ``write`` its data, then ``commit`` (or use ``with``).

        Raises:
            ValueError: term or index out of range, or ``chunk_size`` < 1.
            WriteError: the temporary file could not be created.
        """
        if not (0 <= term < _U64 and 0 <= index < _U64) or chunk_size < 1:
            raise ValueError(f"bad snapshot term {term}, index {index} or chunk size")
        return SnapshotWriter(self, term, index, bytes(membership), chunk_size)

    def reader(self, info: SnapshotInfo | None = None) -> SnapshotReader:
        """Open a stored snapshot (the newest by default) for streaming.

        Raises:
            LookupError: there is no snapshot.
            CorruptLogError: the file cannot be opened.
        """
        if info is None:
            info = self.latest_info()
            if info is None:
                raise LookupError(f"{self._path}: no snapshot stored")
        return SnapshotReader(info)

    def verify(self, info: SnapshotInfo) -> None:
        """Read snapshot ``info`` through and check every CRC.

        Raises:
            CorruptLogError: the snapshot is damaged.
        """
        with self.reader(info) as reader:
            for _chunk in reader.chunks():
                pass

    def _committed(self, info: SnapshotInfo) -> None:
        """Record a newly committed snapshot and delete the oldest beyond ``keep``.

        Raises:
            OSError: an old snapshot could not be deleted.
        """
        infos = [i for i in self._infos if i.path != info.path]
        infos.append(info)
        infos.sort(key=lambda i: (i.index, i.term))
        doomed = [i for i in infos[: max(0, len(infos) - self._keep)] if i is not info]
        self._infos = [i for i in infos if i not in doomed]
        for old in doomed:
            remove_file(old.path)
        if doomed:
            fsync_dir(self._path)

    def __repr__(self) -> str:
        return f"<SnapshotStore {self._path!r} snapshots={len(self._infos)}>"


class SnapshotWriter:
    """Streams one snapshot to a temporary file; :meth:`commit` makes it visible.

    As a context manager it commits on a normal exit and aborts on an exception.
    """

    def __init__(
        self, store: SnapshotStore, term: int, index: int, membership: bytes, chunk_size: int
    ) -> None:
        self._store = store
        self._term = term
        self._index = index
        self._membership = membership
        self._chunk_size = chunk_size
        self._final = os.path.join(store.path, snapshot_name(index, term))
        self._tmp = self._final + ".tmp"
        self._buffer = bytearray()
        self._chunks = 0
        self._size = 0
        self._crc = 0
        self._done = False
        self.info: SnapshotInfo | None = None
        fields = SNAP_HEADER.pack(
            SNAP_MAGIC, SNAP_VERSION, 0, term, index, len(membership), zlib.crc32(membership), 0
        )
        header = fields + struct.pack("<I", zlib.crc32(fields)) + membership
        try:
            make_dirs(store.path)
            self._fd = _fileio.ops.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        except OSError as exc:
            raise write_error(self._tmp, "creating snapshot", exc) from exc
        self._offset = 0
        self._put(header)

    def write(self, data: bytes) -> None:
        """Add ``data`` to the snapshot's data.

        Raises:
            DiskFullError: the disk is full (the snapshot is aborted).
            WriteError: another write failure (the snapshot is aborted).
            ValueError: the writer was already committed or aborted.
        """
        if self._done:
            raise ValueError("snapshot writer is finished")
        size = self._chunk_size
        view = memoryview(data).cast("B")
        if self._buffer:
            take = size - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < size:
                return
            self._emit(bytes(self._buffer))
            self._buffer.clear()
        while len(view) >= size:
            self._emit(view[:size])
            view = view[size:]
        self._buffer += view

    def commit(self) -> SnapshotInfo:
        """Finish the file, make it durable and visible, and prune old snapshots.

        Raises:
            DiskFullError: the disk is full (the snapshot is aborted).
            WriteError: another failure (aborted, unless only the last
                directory fsync or the pruning failed: then it is stored).
            ValueError: the writer was already committed or aborted.
        """
        if self._done:
            raise ValueError("snapshot writer is finished")
        if self._buffer:
            self._emit(bytes(self._buffer))
            self._buffer.clear()
        fields = SNAP_TRAILER.pack(0, self._chunks, self._size, self._crc)
        self._put(fields + struct.pack("<I", zlib.crc32(fields)))
        try:
            _fileio.ops.fsync(self._fd)
        except OSError as exc:
            self.abort()
            raise write_error(self._tmp, "fsync of snapshot", exc) from exc
        self._done = True
        os.close(self._fd)
        try:
            _fileio.ops.rename(self._tmp, self._final)
        except OSError as exc:
            remove_file_quietly(self._tmp)
            raise write_error(self._final, "renaming snapshot", exc) from exc
        info = SnapshotInfo(self._term, self._index, self._membership, self._size, self._final)
        self.info = info
        try:
            fsync_dir(self._store.path)
            self._store._committed(info)
        except OSError as exc:
            raise write_error(self._store.path, "syncing snapshot directory", exc) from exc
        return info

    def abort(self) -> None:
        """Discard the unfinished snapshot. Harmless after commit or a previous abort."""
        if self._done:
            return
        self._done = True
        os.close(self._fd)
        remove_file_quietly(self._tmp)

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
            return
        if not self._done:
            self.commit()

    def _emit(self, chunk: bytes | memoryview) -> None:
        crc = zlib.crc32(chunk)
        self._put(CHUNK_HEADER.pack(len(chunk), crc) + chunk)
        self._chunks += 1
        self._size += len(chunk)
        self._crc = zlib.crc32(chunk, self._crc)

    def _put(self, data: bytes) -> None:
        try:
            write_all(self._fd, data, self._offset)
        except OSError as exc:
            self.abort()
            raise write_error(self._tmp, "writing snapshot", exc) from exc
        self._offset += len(data)


class SnapshotReader:
    """Streams a stored snapshot's data, checking each chunk before handing it out."""

    def __init__(self, info: SnapshotInfo) -> None:
        self.info = info
        try:
            self._file: BinaryIO = open(info.path, "rb")  # noqa: SIM115 - closed by close()
            self._data_end = os.fstat(self._file.fileno()).st_size - SNAP_TRAILER_SIZE
        except OSError as exc:
            raise CorruptLogError(info.path, 0, f"cannot open snapshot: {exc}") from exc

    def chunks(self) -> Iterator[bytes]:
        """Yield the data in chunks, in order.

        Raises:
            CorruptLogError: a chunk or the trailer fails its checks; every
                chunk already yielded had passed its own CRC.
        """
        f = self._file
        path = self.info.path
        offset = SNAP_HEADER_SIZE + len(self.info.membership)
        f.seek(offset)
        crc = 0
        size = 0
        count = 0
        while True:
            head = f.read(CHUNK_HEADER.size)
            if len(head) != CHUNK_HEADER.size:
                raise CorruptLogError(path, offset, "snapshot ends inside a chunk header")
            length, chunk_crc = CHUNK_HEADER.unpack(head)
            if length == 0:
                break
            if offset + CHUNK_HEADER.size + length > self._data_end:
                raise CorruptLogError(path, offset, f"snapshot chunk {count} runs past the data")
            chunk = f.read(length)
            if len(chunk) != length or zlib.crc32(chunk) != chunk_crc:
                raise CorruptLogError(path, offset, f"bad CRC in snapshot chunk {count}")
            crc = zlib.crc32(chunk, crc)
            size += length
            count += 1
            offset += CHUNK_HEADER.size + length
            yield chunk
        rest = f.read(SNAP_TRAILER_SIZE - CHUNK_HEADER.size + 1)
        trailer = head + rest
        if len(trailer) != SNAP_TRAILER_SIZE:
            raise CorruptLogError(path, offset, "snapshot trailer is not at the end of the file")
        _zero, chunks, total, data_crc = SNAP_TRAILER.unpack_from(trailer)
        if (chunks, total, data_crc) != (count, size, crc):
            raise CorruptLogError(path, offset, "snapshot data does not match its trailer")

    def read_all(self) -> bytes:
        """The whole data in one bytes object.

        Raises:
            CorruptLogError: the data is damaged.
        """
        return b"".join(self.chunks())

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> SnapshotReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_infos(path: str) -> list[SnapshotInfo]:
    """Check the structure of every snapshot in directory ``path``; oldest first.

    Raises:
        CorruptLogError: a snapshot's header, trailer or size is wrong.
    """
    infos = []
    for name in os.listdir(path):
        match = _NAME_RE.match(name)
        if match:
            infos.append(read_info(os.path.join(path, name), int(match[1]), int(match[2])))
    infos.sort(key=lambda i: (i.index, i.term))
    return infos


def read_info(path: str, index: int, term: int) -> SnapshotInfo:
    """Read and check one snapshot's header and trailer (not its data).

    Raises:
        CorruptLogError: the header, the trailer or the file size is wrong.
    """
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            head = f.read(SNAP_HEADER_SIZE)
            if len(head) != SNAP_HEADER_SIZE:
                raise CorruptLogError(path, 0, "snapshot header is short")
            (crc,) = struct.unpack_from("<I", head, SNAP_HEADER.size)
            if crc != zlib.crc32(head[: SNAP_HEADER.size]):
                raise CorruptLogError(path, SNAP_HEADER.size, "bad CRC in snapshot header")
            magic, version, _flags, h_term, h_index, m_len, m_crc, _r = SNAP_HEADER.unpack_from(
                head
            )
            if magic != SNAP_MAGIC:
                raise CorruptLogError(path, 0, "not a snapshot file (bad magic)")
            if version != SNAP_VERSION:
                raise CorruptLogError(path, 8, f"unsupported snapshot version {version}")
            if (h_term, h_index) != (term, index):
                raise CorruptLogError(
                    path, 16, f"header says term {h_term} index {h_index}; the name disagrees"
                )
            if m_len > file_size:
                raise CorruptLogError(path, 32, "membership length exceeds the file")
            membership = f.read(m_len)
            if len(membership) != m_len or zlib.crc32(membership) != m_crc:
                raise CorruptLogError(path, SNAP_HEADER_SIZE, "bad CRC in snapshot membership")
            if file_size < SNAP_HEADER_SIZE + m_len + SNAP_TRAILER_SIZE:
                raise CorruptLogError(path, file_size, "snapshot is too short for its trailer")
            f.seek(file_size - SNAP_TRAILER_SIZE)
            trailer = f.read(SNAP_TRAILER_SIZE)
    except OSError as exc:
        raise CorruptLogError(path, 0, f"cannot read snapshot: {exc}") from exc
    where = file_size - SNAP_TRAILER_SIZE
    (t_crc,) = struct.unpack_from("<I", trailer, SNAP_TRAILER.size)
    if t_crc != zlib.crc32(trailer[: SNAP_TRAILER.size]):
        raise CorruptLogError(path, where, "bad CRC in snapshot trailer (file torn or damaged)")
    zero, chunks, size, _data_crc = SNAP_TRAILER.unpack_from(trailer)
    expected = SNAP_HEADER_SIZE + m_len + chunks * CHUNK_HEADER.size + size + SNAP_TRAILER_SIZE
    if zero != 0 or expected != file_size:
        raise CorruptLogError(
            path, where, f"snapshot is {file_size} bytes but its trailer implies {expected}"
        )
    return SnapshotInfo(term, index, membership, size, path)


def remove_file_quietly(path: str) -> None:
    """Delete ``path`` if possible; errors are ignored (used while failing anyway)."""
    with contextlib.suppress(OSError):
        remove_file(path)
