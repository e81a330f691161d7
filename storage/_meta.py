"""MetaStore: the durable (term, voted_for) pair.

Theory of operation: the pair lives in one 36-byte file, always replaced
whole by ``atomic_write`` (temporary file, fsync, rename, fsync of the
directory), so a crash at any point leaves the old pair or the new one::

    0   8  magic b"TRAFTMET"
    8   4  format version (1)
    12  4  flags: bit 0 set when there is a vote
    16  8  term (u64)
    24  8  voted_for (u64; 0 when there is no vote)
    32  4  CRC-32 of bytes 0-31

A missing file means term 0 and no vote (a new node). A file that fails its
checks is damage, never a torn write (the rename is atomic), so it raises
:class:`CorruptLogError`. A leftover ``meta.tmp`` is an unfinished save that
never took effect; opening deletes it.
"""

from __future__ import annotations

import os
import struct
import zlib

from ._errors import CorruptLogError, write_error
from ._fileio import atomic_write, fsync_dir, make_dirs, remove_file

META_MAGIC = b"TRAFTMET"
META_VERSION = 1
META_FIELDS = struct.Struct("<8sIIQQ")
META_SIZE = META_FIELDS.size + 4
_HAS_VOTE = 1
_U64 = 2**64


class MetaStore:
    """The durable current term and vote of one node. Open with :meth:`MetaStore.open`."""

    def __init__(self, path: str, term: int, voted_for: int | None) -> None:
        self._path = path
        self._term = term
        self._voted_for = voted_for

    @classmethod
    def open(cls, path: str) -> MetaStore:
        """Read the pair from file ``path`` (term 0 and no vote if there is no file).

        Raises:
            CorruptLogError: the file exists but is damaged.
            WriteError: a leftover temporary file could not be removed, or the
                directory could not be synced.
        """
        path = os.path.abspath(path)
        tmp = path + ".tmp"
        if os.path.exists(tmp):
            try:
                remove_file(tmp)
                fsync_dir(os.path.dirname(path))
            except OSError as exc:
                raise write_error(tmp, "removing leftover", exc) from exc
        try:
            with open(path, "rb") as f:
                raw = f.read(META_SIZE + 1)
        except FileNotFoundError:
            return cls(path, 0, None)
        except OSError as exc:
            raise CorruptLogError(path, 0, f"cannot read meta file: {exc}") from exc
        term, voted_for = decode_meta(path, raw)
        # A save killed after its rename but before the directory fsync left a
        # pair that is visible but not yet durable; make it durable before
        # anyone acts on it (a vote read back must never be lost).
        try:
            fsync_dir(os.path.dirname(path))
        except OSError as exc:
            raise write_error(path, "syncing the meta directory", exc) from exc
        return cls(path, term, voted_for)

    @property
    def path(self) -> str:
        """The meta file."""
        return self._path

    @property
    def term(self) -> int:
        """The last term saved (0 for a new node)."""
        return self._term

    @property
    def voted_for(self) -> int | None:
        """The vote saved with :attr:`term`, or None."""
        return self._voted_for

    def save(self, term: int, voted_for: int | None) -> None:
        """Durably replace the pair; returns once it would survive power loss.

        Saving the pair already stored does nothing.

        Raises:
            ValueError: ``term`` or ``voted_for`` is not an integer in 0..2**64-1.
            DiskFullError: the disk is full; the old pair is still stored.
            WriteError: another failure; the file holds the old or the new pair.
        """
        if not (isinstance(term, int) and 0 <= term < _U64):
            raise ValueError(f"term must be an integer in 0..2**64-1, not {term!r}")
        if voted_for is not None and not (isinstance(voted_for, int) and 0 <= voted_for < _U64):
            raise ValueError(f"voted_for must be None or an integer >= 0, not {voted_for!r}")
        if term == self._term and voted_for == self._voted_for and os.path.exists(self._path):
            return
        try:
            make_dirs(os.path.dirname(self._path))
            atomic_write(self._path, encode_meta(term, voted_for))
        except OSError as exc:
            raise write_error(self._path, "saving term and vote", exc) from exc
        self._term = term
        self._voted_for = voted_for

    def __repr__(self) -> str:
        return f"<MetaStore {self._path!r} term={self._term} voted_for={self._voted_for}>"


def encode_meta(term: int, voted_for: int | None) -> bytes:
    """The bytes of a meta file holding ``term`` and ``voted_for``."""
    flags = 0 if voted_for is None else _HAS_VOTE
    fields = META_FIELDS.pack(META_MAGIC, META_VERSION, flags, term, voted_for or 0)
    return fields + struct.pack("<I", zlib.crc32(fields))


def decode_meta(path: str, raw: bytes) -> tuple[int, int | None]:
    """Check and decode the bytes of meta file ``path``.

    Raises:
        CorruptLogError: wrong size, bad CRC, bad magic or version.
    """
    if len(raw) != META_SIZE:
        raise CorruptLogError(path, 0, f"meta file is {len(raw)} bytes, expected {META_SIZE}")
    (crc,) = struct.unpack_from("<I", raw, META_FIELDS.size)
    if crc != zlib.crc32(raw[: META_FIELDS.size]):
        raise CorruptLogError(path, META_FIELDS.size, "bad CRC in meta file")
    magic, version, flags, term, voted_for = META_FIELDS.unpack_from(raw)
    if magic != META_MAGIC:
        raise CorruptLogError(path, 0, "not a meta file (bad magic)")
    if version != META_VERSION:
        raise CorruptLogError(path, 8, f"unsupported meta file version {version}")
    return term, (voted_for if flags & _HAS_VOTE else None)
