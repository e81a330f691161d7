"""Fault injection for the storage tests: crash or fail the N-th mutating call.

``storage._fileio.ops`` is the one place the storage package makes system
calls that change the disk. :class:`FaultyOps` replaces it and counts those
calls. With ``crash_at=N`` the N-th call (0-based) raises
:class:`SimulatedCrash`, a ``BaseException`` so that no ``except OSError``
in the code under test can swallow it, and every later call raises it too:
after the crash point nothing more reaches the disk, as after ``kill -9``.
A crashing ``pwrite`` first writes a prefix of its data, like a write cut
short. With ``fail`` set, a chosen call raises an ``OSError`` (``ENOSPC``, say)
instead, optionally after a partial write, and the storage code carries on.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from storage import _fileio
from storage._fileio import FileOps


class SimulatedCrash(BaseException):
    """The process 'died' at this call."""


class FaultyOps(FileOps):
    """A FileOps that counts mutating calls and crashes or fails on request."""

    def __init__(
        self,
        crash_at: int | None = None,
        fail: Callable[[str, int], int | None] | None = None,
        partial: bool = True,
    ) -> None:
        self.calls = 0
        self.crash_at = crash_at
        self.crashed = False
        self.fail = fail
        self.partial = partial
        self.log: list[str] = []

    def _step(self, name: str) -> int | None:
        """Count a call; crash, or return an errno to fail it with, or None."""
        if self.crashed:
            raise SimulatedCrash(f"after crash: {name}")
        if self.crash_at is not None and self.calls >= self.crash_at:
            self.crashed = True
            raise SimulatedCrash(name)
        n = self.calls
        self.calls += 1
        self.log.append(name)
        return self.fail(name, n) if self.fail is not None else None

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        err = self._step("open")
        if err:
            raise OSError(err, os.strerror(err), path)
        return super().open(path, flags, mode)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        crashing = not self.crashed and self.crash_at is not None and self.calls >= self.crash_at
        if crashing and self.partial and len(data) > 1:
            os.pwrite(fd, bytes(data[: len(data) // 2]), offset)  # torn by the crash
        err = self._step("pwrite")
        if err:
            if self.partial and len(data) > 1:
                os.pwrite(fd, bytes(data[: len(data) // 2]), offset)
            raise OSError(err, os.strerror(err))
        return super().pwrite(fd, data, offset)

    def fsync(self, fd: int) -> None:
        err = self._step("fsync")
        if err:
            raise OSError(err, os.strerror(err))
        super().fsync(fd)

    def fdatasync(self, fd: int) -> None:
        err = self._step("fdatasync")
        if err:
            raise OSError(err, os.strerror(err))
        super().fdatasync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        err = self._step("ftruncate")
        if err:
            raise OSError(err, os.strerror(err))
        super().ftruncate(fd, length)

    def rename(self, src: str, dst: str) -> None:
        err = self._step("rename")
        if err:
            raise OSError(err, os.strerror(err), src)
        super().rename(src, dst)

    def unlink(self, path: str) -> None:
        err = self._step("unlink")
        if err:
            raise OSError(err, os.strerror(err), path)
        super().unlink(path)

    def mkdir(self, path: str) -> None:
        err = self._step("mkdir")
        if err:
            raise OSError(err, os.strerror(err), path)
        super().mkdir(path)


def fail_nth(name: str, nth: int = 0, err: int = errno.ENOSPC) -> Callable[[str, int], int | None]:
    """A ``fail`` policy: the ``nth`` call (0-based) to ``name`` fails with ``err``."""
    seen = {"n": 0}

    def policy(call: str, _index: int) -> int | None:
        if call != name:
            return None
        k = seen["n"]
        seen["n"] += 1
        return err if k == nth else None

    return policy


def install(ops: FileOps) -> FileOps:
    """Make ``ops`` the storage package's FileOps; returns the previous one."""
    previous = _fileio.ops
    _fileio.ops = ops
    return previous


def snapshot_tree(path: str) -> dict[str, bytes]:
    """Every file under ``path`` and its bytes, to prove something changed nothing."""
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def fast_scratch_root() -> str | None:
    """tmpfs for fast scratch space (see conftest.py), or None for the default."""
    if os.environ.get("TRAFT_TEST_REAL_DISK") == "1":
        return None
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class PowerLossOps(FaultyOps):
    """FaultyOps that also knows what a power cut would take away.

    It keeps, for every file the code touches, its content as of the last
    fsync of that file, and for every directory the names created, renamed
    or deleted since that directory's last fsync. :meth:`power_loss` then
    rewinds the disk to exactly what was made durable: the strictest model
    a POSIX file system allows (nothing survives without an fsync, and the
    names in a directory need an fsync of the directory). Files are assumed
    durable as they were when first touched.
    """

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__(crash_at=crash_at)
        self.paths: dict[int, str] = {}
        self.durable: dict[str, bytes | None] = {}  # last fsynced content; None = absent
        self.dirty: set[str] = set()
        self.pending: dict[str, list[tuple[str, str, str, bytes | None]]] = {}

    def _know(self, path: str) -> None:
        if path not in self.durable:
            try:
                with open(path, "rb") as f:
                    self.durable[path] = f.read()
            except FileNotFoundError:
                self.durable[path] = None

    def _dir_op(self, op: str, a: str, b: str = "", saved: bytes | None = None) -> None:
        self.pending.setdefault(os.path.dirname(a), []).append((op, a, b, saved))

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        path = os.path.realpath(path)
        self._know(path)
        existed = os.path.exists(path)
        fd = super().open(path, flags, mode)
        self.paths[fd] = path
        if flags & os.O_CREAT and not existed:
            self._dir_op("create", path)
        if flags & os.O_TRUNC:
            self.dirty.add(path)
        return fd

    def _path(self, fd: int) -> str:
        """The file behind ``fd``, also for descriptors opened before we were installed."""
        if fd not in self.paths:
            self.paths[fd] = os.readlink(f"/proc/self/fd/{fd}")
            self._know(self.paths[fd])
        return self.paths[fd]

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        self.dirty.add(self._path(fd))  # before: a crashing pwrite may write part
        return super().pwrite(fd, data, offset)

    def ftruncate(self, fd: int, length: int) -> None:
        self.dirty.add(self._path(fd))
        super().ftruncate(fd, length)

    def _synced(self, fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.isdir(target):
            self.pending.pop(target, None)
        else:
            path = self._path(fd)
            with open(path, "rb") as f:
                self.durable[path] = f.read()
            self.dirty.discard(path)

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        self._synced(fd)

    def fdatasync(self, fd: int) -> None:
        super().fdatasync(fd)
        self._synced(fd)

    def rename(self, src: str, dst: str) -> None:
        src, dst = os.path.realpath(src), os.path.realpath(dst)
        self._know(src)
        self._know(dst)
        super().rename(src, dst)
        self._dir_op("rename", src, dst, self.durable[dst])
        self.durable[dst] = self.durable[src]
        self.durable[src] = None
        if src in self.dirty:
            self.dirty.discard(src)
            self.dirty.add(dst)

    def unlink(self, path: str) -> None:
        path = os.path.realpath(path)
        self._know(path)
        super().unlink(path)
        self._dir_op("unlink", path, "", self.durable[path])
        self.durable[path] = None
        self.dirty.discard(path)

    def revive(self) -> None:
        """A new process starts: calls go through again (and are still tracked)."""
        self.crashed = False
        self.crash_at = None

    def power_loss(self) -> None:
        """Put the disk back to what was durable (call once the 'process' is dead)."""
        for ops in self.pending.values():
            for op, a, b, saved in reversed(ops):
                if op == "create":
                    self.durable[a] = None
                    self.dirty.add(a)
                elif op == "rename":
                    self.durable[a] = self.durable[b]
                    self.durable[b] = saved
                    self.dirty.update((a, b))
                else:  # unlink
                    self.durable[a] = saved
                    self.dirty.add(a)
        for path in sorted(self.dirty):
            content = self.durable.get(path)
            if content is None:
                if os.path.exists(path):
                    os.unlink(path)
            else:
                with open(path, "wb") as f:
                    f.write(content)
        self.pending.clear()
        self.dirty.clear()
