"""The errors the storage package raises.

Theory of operation: every failure the caller can do something about has its
own type, all under :class:`StorageError`.

- :class:`CorruptLogError`: what is on disk is damaged in a way that recovery
  must not paper over (anything but a torn tail). It names the file, the byte
  offset and what is wrong, and the operation that found it changed nothing.
- :class:`WriteError` (and :class:`DiskFullError` for ``ENOSPC``): the
  operating system refused a write, fsync, rename or delete. What was synced
  before stays readable.
- :class:`DataDirLocked`: another process (named by its pid) holds the data
  directory; one process at a time may open it.
- :class:`LogUnusableError`: the object was closed, or an earlier failure left
  its in-memory view uncertain (a failed fsync, say); close it and reopen the
  directory, which re-reads the truth from disk.

Misuse by the caller (indexes that are not contiguous, a range outside the
log) raises the built-in ``ValueError`` or ``IndexError``.
"""

from __future__ import annotations

import errno


class StorageError(Exception):
    """Base class of every error raised by the storage package."""


class CorruptLogError(StorageError):
    """Data on disk is damaged; nothing was changed by the operation that found it.

    Attributes:
        path: the damaged file.
        offset: byte offset of the damage in that file (0 for whole-file problems).
        reason: what is wrong, in words.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason

    def __reduce__(self) -> tuple[type[CorruptLogError], tuple[str, int, str]]:
        return (type(self), (self.path, self.offset, self.reason))


class WriteError(StorageError):
    """The operating system refused to write, sync, rename or delete a file.

    Attributes:
        path: the file or directory being changed.
        errno: the ``errno`` of the underlying ``OSError`` (or ``None``).
    """

    def __init__(self, path: str, message: str, err: int | None = None) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.errno = err


class DiskFullError(WriteError):
    """A write failed because the disk is full (``ENOSPC``) or over quota."""


class LogUnusableError(StorageError):
    """The object is closed, or an earlier failure means it must be reopened."""


def write_error(path: str, action: str, exc: OSError) -> WriteError:
    """Translate an ``OSError`` raised while changing ``path`` into a :class:`WriteError`."""
    message = f"{action} failed: {exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(path, message + " (disk full)", exc.errno)
    return WriteError(path, message, exc.errno)


class DataDirLocked(StorageError):
    """Another process (or another open in this one) holds the data directory."""

    def __init__(self, path: str, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"{path}: the data directory is in use by another process ({holder})")
        self.path = path
        self.pid = pid

    def __reduce__(self) -> tuple[type[DataDirLocked], tuple[str, int | None]]:
        return (type(self), (self.path, self.pid))
