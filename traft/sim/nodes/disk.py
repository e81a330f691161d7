"""A simulated disk under the real ``storage`` code: page cache, fsync and power loss.

Theory of operation. ``storage`` routes every call that changes the disk
through ``storage._fileio.ops`` (the seam). :class:`SimDisk` is a
``FileOps`` that lets each call reach the real file system (a scratch
directory, on tmpfs when there is one) -- which plays the *page cache*:
what the running node reads back -- and keeps, beside it, the *platter*:
what a power cut would leave. The real ``fsync`` is never called.

- A file's content reaches the platter only when the file is fsync'd;
  until then its writes and truncations wait in a per-file list.
- A creation, rename, deletion or ``mkdir`` reaches the platter only when
  its directory is fsync'd; until then it waits in a per-directory list.
- :meth:`SimDisk.power_loss` rebuilds a node's directory from the platter:
  every unsynced file change is gone (the first pending write of a file may
  survive as a torn prefix), and each directory keeps a random *prefix* of
  its pending namespace changes (a journaling file system commits metadata
  in order, so a later rename never survives an earlier one that did not).
- After a failed fsync (an injected ``EIO``), the file's pending writes are
  dropped from the platter's future for good, though the node can still
  read them: a later fsync succeeds without making them durable (Linux's
  behaviour, PostgreSQL's "fsyncgate").

Faults on request, each drawn from the disk's own seeded rng: ``ENOSPC``
on writes and fsyncs, ``EIO`` on fsyncs, slow fsyncs (the virtual clock
jumps: the node's event loop is blocked in the fsync, as it is when it
persists on the loop), and a crash at the N-th call (:class:`DiskCrash`, a
``BaseException`` nothing in the node catches, so the process dies exactly
there: mid-persist, mid-snapshot, between persist and send).

Files are identified by their path at call time; fsyncs of a descriptor
find its path through ``/proc/self/fd`` (Linux). Only paths under a
registered node root are tracked; anything else passes straight through.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
from collections.abc import Callable

import attrs

from storage import _fileio

__all__ = ["DiskCrash", "DiskFaults", "SimDisk"]


class DiskCrash(BaseException):
    """The simulated process died inside a disk call (a planned crash point)."""


@attrs.define
class DiskFaults:
    """Per-call fault probabilities (0..1) for one node's disk."""

    enospc: float = 0.0
    eio_fsync: float = 0.0
    slow_fsync: float = 0.0
    slow_fsync_ms: tuple[int, int] = (50, 500)


@attrs.define
class _File:
    durable: bytearray = attrs.Factory(bytearray)
    # ("w", offset, data) or ("t", length, b"") since the last fsync.
    pending: list[tuple[str, int, bytes]] = attrs.Factory(list)


@attrs.define
class _Dir:
    # name -> node key (a file id, or "d" + path for a subdirectory)
    durable: dict[str, str] = attrs.Factory(dict)
    # ("link", name, key) / ("unlink", name, "") / ("rename", src, dst) since the last fsync
    pending: list[tuple[str, str, str]] = attrs.Factory(list)


class SimDisk(_fileio.FileOps):
    """The seam's simulated file system (see the module docstring).

    Args:
        rng: the disk's randomness (faults, torn tails, which directory changes survive).
        jump: moves the virtual clock forward by that many seconds (a slow fsync).
    """

    def __init__(self, rng: random.Random, jump: Callable[[float], None] | None = None) -> None:
        self._rng = rng
        self._jump = jump
        self._roots: dict[str, int] = {}
        self._faults: dict[int, DiskFaults] = {}
        self._crash_at: dict[int, int] = {}
        self._frozen: set[int] = set()
        self.calls: dict[int, int] = {}
        self._files: dict[str, _File] = {}  # file id -> platter state
        self._ids: dict[str, str] = {}  # current path -> file id
        self._dirs: dict[str, _Dir] = {}  # directory path -> platter state
        self._next_id = 0
        self.stats: dict[str, int] = {
            "fsyncs": 0,
            "power_losses": 0,
            "torn_tails": 0,
            "reverted_dir_changes": 0,
            "enospc": 0,
            "eio": 0,
            "slow_fsyncs": 0,
            "crash_points": 0,
        }

    # -- set-up --------------------------------------------------------------------

    def add_root(self, path: str, node_id: int) -> None:
        """Track ``path`` (an empty, durable directory) as node ``node_id``'s disk."""
        path = os.path.abspath(path)
        os.makedirs(path, exist_ok=True)
        self._roots[path] = node_id
        self._dirs[path] = _Dir()
        self.calls.setdefault(node_id, 0)

    def set_faults(self, node_id: int, faults: DiskFaults) -> None:
        """Inject ``faults`` into node ``node_id``'s disk calls from now on."""
        self._faults[node_id] = faults

    def crash_after(self, node_id: int, calls: int | None) -> None:
        """Raise :class:`DiskCrash` in node ``node_id``'s ``calls``-th next disk call (None: never)."""
        if calls is None:
            self._crash_at.pop(node_id, None)
        else:
            self._crash_at[node_id] = self.calls.get(node_id, 0) + calls

    def freeze(self, node_id: int) -> None:
        """The node's process is dead: its disk calls fail until :meth:`power_loss`."""
        self._frozen.add(node_id)

    # -- bookkeeping ---------------------------------------------------------------

    def _owner(self, path: str) -> int | None:
        for root, node_id in self._roots.items():
            if path == root or path.startswith(root + os.sep):
                return node_id
        return None

    def _enter(self, path: str, *, writes: bool = False, fsync: bool = False) -> int | None:
        """Count a call on ``path`` and apply this node's faults; the owner id."""
        node_id = self._owner(path)
        if node_id is None:
            return None
        if node_id in self._frozen:
            raise DiskCrash(f"node {node_id}'s process is gone")
        self.calls[node_id] += 1
        crash = self._crash_at.get(node_id)
        if crash is not None and self.calls[node_id] >= crash:
            del self._crash_at[node_id]
            self._frozen.add(node_id)
            self.stats["crash_points"] += 1
            raise DiskCrash(f"node {node_id} crashed in a disk call")
        faults = self._faults.get(node_id)
        if faults is not None and (writes or fsync):
            rng = self._rng
            if faults.enospc and rng.random() < faults.enospc:
                self.stats["enospc"] += 1
                raise OSError(errno.ENOSPC, "No space left on device (simulated)", path)
            if fsync and faults.slow_fsync and rng.random() < faults.slow_fsync:
                self.stats["slow_fsyncs"] += 1
                if self._jump is not None:
                    lo, hi = faults.slow_fsync_ms
                    self._jump(rng.uniform(lo, hi) / 1000)
        return node_id

    def _new_id(self) -> str:
        self._next_id += 1
        return f"f{self._next_id}"

    def _parent(self, path: str) -> tuple[_Dir | None, str]:
        head, name = os.path.split(path)
        return self._dirs.get(head), name

    @staticmethod
    def _path_of(fd: int) -> str:
        return os.readlink(f"/proc/self/fd/{fd}")

    # -- FileOps -------------------------------------------------------------------

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        path = os.path.abspath(path)
        creates = bool(flags & os.O_CREAT)
        if self._enter(path, writes=creates) is None:
            return super().open(path, flags, mode)
        existed = path in self._ids
        fd = super().open(path, flags, mode)
        if not existed and creates:
            file_id = self._new_id()
            self._files[file_id] = _File()
            self._ids[path] = file_id
            parent, name = self._parent(path)
            if parent is not None:
                parent.pending.append(("link", name, file_id))
        elif flags & os.O_TRUNC and path in self._ids:
            self._files[self._ids[path]].pending.append(("t", 0, b""))
        return fd

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        path = self._path_of(fd)
        if self._enter(path, writes=True) is None:
            return super().pwrite(fd, data, offset)
        done = super().pwrite(fd, data, offset)
        file_id = self._ids.get(path)
        if file_id is not None:
            self._files[file_id].pending.append(("w", offset, bytes(data[:done])))
        return done

    def ftruncate(self, fd: int, length: int) -> None:
        path = self._path_of(fd)
        if self._enter(path, writes=True) is None:
            return super().ftruncate(fd, length)
        super().ftruncate(fd, length)
        file_id = self._ids.get(path)
        if file_id is not None:
            self._files[file_id].pending.append(("t", length, b""))

    def fsync(self, fd: int) -> None:
        path = self._path_of(fd)
        if self._enter(path, fsync=True) is None:
            return super().fsync(fd)
        self._sync(path)

    def fdatasync(self, fd: int) -> None:
        self.fsync(fd)

    def _sync(self, path: str) -> None:
        self.stats["fsyncs"] += 1
        faults = self._faults.get(self._owner(path) or 0)
        if path in self._dirs:
            d = self._dirs[path]
            if faults is not None and faults.eio_fsync and self._rng.random() < faults.eio_fsync:
                self.stats["eio"] += 1
                raise OSError(errno.EIO, "Input/output error (simulated)", path)
            d.durable = _apply_names(d.durable, d.pending)
            d.pending.clear()
            return
        file_id = self._ids.get(path)
        if file_id is None:
            return
        f = self._files[file_id]
        if faults is not None and faults.eio_fsync and self._rng.random() < faults.eio_fsync:
            # fsyncgate: the failed writeback marks the pages clean; they are never written.
            self.stats["eio"] += 1
            f.pending.clear()
            raise OSError(errno.EIO, "Input/output error (simulated)", path)
        _apply_data(f.durable, f.pending)
        f.pending.clear()

    def rename(self, src: str, dst: str) -> None:
        src, dst = os.path.abspath(src), os.path.abspath(dst)
        if self._enter(dst, writes=True) is None:
            return super().rename(src, dst)
        super().rename(src, dst)
        file_id = self._ids.pop(src, None)
        if file_id is None:
            return
        self._ids[dst] = file_id
        src_dir, src_name = self._parent(src)
        dst_dir, dst_name = self._parent(dst)
        if src_dir is dst_dir and src_dir is not None:
            src_dir.pending.append(("rename", src_name, dst_name))
        else:
            if src_dir is not None:
                src_dir.pending.append(("unlink", src_name, ""))
            if dst_dir is not None:
                dst_dir.pending.append(("link", dst_name, file_id))

    def unlink(self, path: str) -> None:
        path = os.path.abspath(path)
        if self._enter(path, writes=True) is None:
            return super().unlink(path)
        super().unlink(path)
        if self._ids.pop(path, None) is not None:
            parent, name = self._parent(path)
            if parent is not None:
                parent.pending.append(("unlink", name, ""))

    def mkdir(self, path: str) -> None:
        path = os.path.abspath(path)
        if self._enter(path, writes=True) is None:
            return super().mkdir(path)
        super().mkdir(path)
        self._dirs[path] = _Dir()
        parent, name = self._parent(path)
        if parent is not None:
            parent.pending.append(("link", name, "d" + path))

    # -- power loss ----------------------------------------------------------------

    def power_loss(self, node_id: int, *, torn: bool = True) -> None:
        """Cut node ``node_id``'s power: rebuild its directory from the platter.

        Each file keeps its fsync'd content (with ``torn``, maybe plus a prefix
        of its first pending write); each directory keeps a random prefix of
        its unsynced namespace changes. The disk then counts as fully synced.
        """
        root = next(r for r, n in self._roots.items() if n == node_id)
        self.stats["power_losses"] += 1
        image: dict[str, bytes | None] = {}  # relative path -> content (None: a directory)
        self._survivors(root, "", image, torn)
        shutil.rmtree(root)
        for path in [p for p in self._ids if p.startswith(root + os.sep)]:
            del self._ids[path]
        for path in [p for p in self._dirs if p == root or p.startswith(root + os.sep)]:
            del self._dirs[path]
        os.makedirs(root)
        self._dirs[root] = _Dir()
        for rel, content in sorted(image.items()):
            path = os.path.join(root, rel)
            parent, name = self._parent(path)
            if content is None:
                os.mkdir(path)
                self._dirs[path] = _Dir()
                key = "d" + path
            else:
                with open(path, "wb") as stream:
                    stream.write(content)
                key = self._new_id()
                self._files[key] = _File(durable=bytearray(content))
                self._ids[path] = key
            assert parent is not None
            parent.durable[name] = key
        self._frozen.discard(node_id)
        self._crash_at.pop(node_id, None)

    def process_crash(self, node_id: int) -> None:
        """Node ``node_id``'s process died but the machine did not: the page cache
        reaches the platter in time, so every change so far counts as durable
        (except writes an earlier failed fsync dropped)."""
        root = next(r for r, n in self._roots.items() if n == node_id)
        for path, d in self._dirs.items():
            if path == root or path.startswith(root + os.sep):
                d.durable = _apply_names(d.durable, d.pending)
                d.pending.clear()
        for path, file_id in self._ids.items():
            if path.startswith(root + os.sep):
                f = self._files[file_id]
                _apply_data(f.durable, f.pending)
                f.pending.clear()
        self._frozen.discard(node_id)
        self._crash_at.pop(node_id, None)

    def _survivors(self, path: str, rel: str, image: dict[str, bytes | None], torn: bool) -> None:
        d = self._dirs.get(path)
        if d is None:
            return
        keep = self._rng.randint(0, len(d.pending))
        self.stats["reverted_dir_changes"] += len(d.pending) - keep
        names = _apply_names(d.durable, d.pending[:keep])
        for name, key in sorted(names.items()):
            child = os.path.join(path, name)
            child_rel = os.path.join(rel, name) if rel else name
            if key.startswith("d"):
                image[child_rel] = None
                self._survivors(key[1:], child_rel, image, torn)
                continue
            f = self._files.get(key)
            content = bytes(f.durable) if f is not None else b""
            if torn and f is not None and f.pending and self._rng.random() < 0.5:
                kind, offset, data = f.pending[0]
                if kind == "w" and offset <= len(content) and data:
                    cut = self._rng.randint(0, len(data))
                    content = content[:offset] + data[:cut] + content[offset + cut :]
                    self.stats["torn_tails"] += 1
            image[child_rel] = content
            _ = child


def _apply_names(names: dict[str, str], ops: list[tuple[str, str, str]]) -> dict[str, str]:
    out = dict(names)
    for kind, a, b in ops:
        if kind == "link":
            out[a] = b
        elif kind == "unlink":
            out.pop(a, None)
        else:
            key = out.pop(a, None)
            if key is not None:
                out[b] = key
    return out


def _apply_data(data: bytearray, ops: list[tuple[str, int, bytes]]) -> None:
    for kind, offset, chunk in ops:
        if kind == "t":
            del data[offset:]
        else:
            if offset > len(data):
                data.extend(bytes(offset - len(data)))
            data[offset : offset + len(chunk)] = chunk
