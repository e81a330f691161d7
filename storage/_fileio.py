"""File-system calls that change durable state, in one replaceable place.

Theory of operation: every call that changes what is on disk (create, write,
truncate, fsync, rename, unlink, mkdir) goes through the module attribute
:data:`ops`, an instance of :class:`FileOps`. Production code never replaces
it; tests swap in a subclass that fails or "crashes" at the N-th call, which is
how crash points and ``ENOSPC`` are injected without a special file system.
Reads (``pread``, ``fstat``, ``listdir``) call :mod:`os` directly: they
cannot damage anything.

Durability rules implemented here:
- :func:`fsync_dir` makes a creation, rename or deletion in a directory
  durable (POSIX says nothing survives a crash until the directory is synced).
- :func:`atomic_write` replaces a small file so that a crash at any point
  leaves either the old or the new content: write a temporary file in the same
  directory, fsync it, rename it over the target, fsync the directory.
"""

from __future__ import annotations

import contextlib
import os

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class FileOps:
    """The mutating system calls used by the storage package (see module docstring)."""

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags | _CLOEXEC, mode)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        # fdatasync also flushes the file size, which is all a log append changes.
        if hasattr(os, "fdatasync"):
            os.fdatasync(fd)
        else:  # pragma: no cover - macOS
            os.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def mkdir(self, path: str) -> None:
        os.mkdir(path)

    def close(self, fd: int) -> None:
        os.close(fd)


ops = FileOps()


def write_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``, retrying short writes.

    Raises:
        OSError: the write failed; part of ``data`` may have been written.
    """
    done = ops.pwrite(fd, data, offset)
    if done == len(data):
        return
    view = memoryview(data)
    while done < len(view):
        if done <= 0:  # pragma: no cover - POSIX reports an error instead
            raise OSError(0, "write made no progress")
        step = ops.pwrite(fd, view[done:], offset + done)
        if step <= 0:  # pragma: no cover
            raise OSError(0, "write made no progress")
        done += step


def fsync_dir(path: str) -> None:
    """Make creations, renames and deletions inside directory ``path`` durable.

    Raises:
        OSError: the directory could not be opened or synced.
    """
    fd = os.open(path, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        ops.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: str) -> bool:
    """Create directory ``path`` (and missing parents) durably; True if it was created.

    Raises:
        OSError: a directory could not be created or synced.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return False
    parent = os.path.dirname(path)
    make_dirs(parent)
    try:
        ops.mkdir(path)
    except FileExistsError:
        if os.path.isdir(path):
            return False
        raise
    fsync_dir(parent)
    return True


def atomic_write(path: str, data: bytes) -> None:
    """Replace file ``path`` with ``data`` so that a crash leaves old or new, never a mix.

    Raises:
        OSError: any step failed; ``path`` still holds its old content, or (if
            only the final directory fsync failed) possibly the new one.
    """
    tmp = path + ".tmp"
    fd = ops.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        write_all(fd, data, 0)
        ops.fsync(fd)
    except BaseException:
        os.close(fd)
        _discard(tmp)
        raise
    os.close(fd)
    ops.rename(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def _discard(path: str) -> None:
    """Best-effort removal of a temporary file after a failure."""
    with contextlib.suppress(OSError):
        ops.unlink(path)


def remove_file(path: str) -> None:
    """Delete ``path`` (the caller fsyncs the directory); a missing file is fine.

    Raises:
        OSError: the file exists but could not be deleted.
    """
    with contextlib.suppress(FileNotFoundError):
        ops.unlink(path)
