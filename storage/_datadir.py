"""A node's data directory: ``meta``, ``log/`` and ``snap/`` together.

Theory of operation: :func:`open_data_dir` opens (creating or recovering) the
three stores of one node. :func:`inspect_data_dir` is its read-only twin for
operators (``traft log inspect`` / ``verify``): it runs the same checks as
opening but only reports what opening would repair, and it never writes,
renames or deletes anything, so it is safe on a directory a stopped node
will open later (and harmless, though possibly stale, on a running one).

One process at a time: :func:`open_data_dir` takes an exclusive ``flock`` on
the directory's ``lock`` file before it reads or repairs anything, writes its
pid into it, and holds it until :meth:`DataDir.close` (or until the process
dies: the kernel drops the lock, the file stays). A second open, in another
process or in this one, raises :class:`DataDirLocked` naming the holder's
pid. :func:`inspect_data_dir` takes no lock, so it works on a directory a
running node holds. The lock file is not data: it is never fsynced and its
content is only informative. The lower-level stores (``SegmentLog``,
``MetaStore``, ``SnapshotStore``) take no lock; open a node's directory
through :func:`open_data_dir`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
from types import TracebackType

from ._errors import CorruptLogError, DataDirLocked, write_error
from ._fileio import make_dirs
from ._log import DEFAULT_SEGMENT_BYTES, SegmentLog
from ._meta import MetaStore, decode_meta
from ._recovery import LogPlan, plan_log
from ._snapshot import SnapshotInfo, SnapshotStore, read_infos

META_NAME = "meta"
LOG_DIR = "log"
SNAP_DIR = "snap"
LOCK_NAME = "lock"


class DataDir:
    """The open stores of one node's data directory; close it when done."""

    def __init__(
        self,
        path: str,
        meta: MetaStore,
        log: SegmentLog,
        snapshots: SnapshotStore,
        lock_fd: int | None = None,
    ) -> None:
        self.path = path
        self.meta = meta
        self.log = log
        self.snapshots = snapshots
        self._lock_fd = lock_fd

    def close(self) -> None:
        """Sync and close the log (the other stores hold nothing open), then
        release the directory's lock. Closing twice is harmless.

        Raises:
            WriteError: the log's final sync failed (the lock is released anyway).
        """
        try:
            self.log.close()
        finally:
            if self._lock_fd is not None:
                _unlock(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> DataDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_data_dir(
    path: str, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES, keep_snapshots: int = 2
) -> DataDir:
    """Open (creating or recovering) the meta file, log and snapshots under ``path``.

    The directory is locked until the returned :class:`DataDir` is closed
    (see the module docstring).

    Raises:
        DataDirLocked: another process (or another open in this one) holds it.
        CorruptLogError: any of the three is damaged; nothing was changed.
        WriteError: the directory could not be created or a repair failed.
    """
    path = os.path.abspath(path)
    try:
        make_dirs(path)
    except OSError as exc:
        raise write_error(path, "creating data directory", exc) from exc
    lock_fd = _lock(path)
    try:
        meta, log, snapshots = _open_stores(path, segment_bytes, keep_snapshots)
    except BaseException:
        _unlock(lock_fd)
        raise
    return DataDir(path, meta, log, snapshots, lock_fd)


def _lock(path: str) -> int:
    """Take the exclusive lock of data directory ``path``; its file descriptor.

    Raises:
        DataDirLocked: it is held already.
        WriteError: the lock file could not be opened or written.
    """
    lock_path = os.path.join(path, LOCK_NAME)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise write_error(lock_path, "opening the lock file", exc) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raw = os.pread(fd, 32, 0)
        os.close(fd)
        text = raw.decode("ascii", "replace").strip()
        raise DataDirLocked(path, int(text) if text.isdigit() else None) from None
    except OSError as exc:
        os.close(fd)
        raise write_error(lock_path, "locking", exc) from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise write_error(lock_path, "writing the lock file", exc) from exc
    return fd


def _unlock(fd: int) -> None:
    """Release a directory lock (closing the descriptor drops the flock)."""
    with contextlib.suppress(OSError):
        os.close(fd)


def _open_stores(
    path: str, segment_bytes: int, keep_snapshots: int
) -> tuple[MetaStore, SegmentLog, SnapshotStore]:
    """Open the three stores of a data directory this process has locked."""
    # Check the meta file and the snapshots before the log's recovery repairs
    # anything, so damage in any store is reported with nothing changed.
    meta_path = os.path.join(path, META_NAME)
    snap_path = os.path.join(path, SNAP_DIR)
    if os.path.exists(meta_path):
        with open(meta_path, "rb") as f:
            decode_meta(meta_path, f.read(4096))
    if os.path.isdir(snap_path):
        read_infos(snap_path)
    log = SegmentLog.open(os.path.join(path, LOG_DIR), segment_bytes)
    try:
        meta = MetaStore.open(meta_path)
        snapshots = SnapshotStore.open(snap_path, keep_snapshots)
    except BaseException:
        log.close()
        raise
    return meta, log, snapshots


@dataclass
class SegmentReport:
    """One segment file as found on disk."""

    name: str
    first_index: int
    last_index: int
    size: int
    torn: str | None
    format: int = 2  # 1: one record per entry; 2: batch records


@dataclass
class DataDirReport:
    """Everything :func:`inspect_data_dir` found; ``problems`` is empty when all is well."""

    path: str
    meta: tuple[int, int | None] | None = None
    log_first_index: int | None = None
    log_last_index: int | None = None
    segments: list[SegmentReport] = field(default_factory=list)
    term_ranges: list[tuple[int, int, int]] = field(default_factory=list)  # (term, first, last)
    repairs: list[str] = field(default_factory=list)
    snapshots: list[SnapshotInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def inspect_data_dir(path: str, *, verify: bool = False) -> DataDirReport:
    """Describe the data directory ``path`` without changing anything.

    Every log record's CRC is always checked (that is what opening does);
    with ``verify`` every snapshot's data is read and checked too. Damage is
    reported in ``problems`` rather than raised, one entry per store.

    Raises:
        FileNotFoundError: ``path`` is not a directory.
    """
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such data directory")
    report = DataDirReport(path)
    _inspect_meta(report, os.path.join(path, META_NAME))
    _inspect_log(report, os.path.join(path, LOG_DIR))
    _inspect_snapshots(report, os.path.join(path, SNAP_DIR), verify)
    _inspect_coverage(report)
    return report


def _inspect_coverage(report: DataDirReport) -> None:
    """Entries between the newest snapshot and the log's start must exist.

    Each store can be sound while the directory is not: a deleted snapshot
    leaves a log that starts after the newest remaining snapshot ends. A node
    refuses to start on it; say so here too.
    """
    first, last = report.log_first_index, report.log_last_index
    if first is None or last is None or report.problems:
        return
    covered = max((info.index for info in report.snapshots), default=0)
    if last > covered and first > covered + 1:
        report.problems.append(
            f"{os.path.join(report.path, LOG_DIR)}: the log starts at {first} but the newest "
            f"snapshot ends at {covered}: entries {covered + 1}..{first - 1} are missing"
        )


def _inspect_meta(report: DataDirReport, meta_path: str) -> None:
    if os.path.exists(meta_path + ".tmp"):
        report.repairs.append("delete leftover meta.tmp (an unfinished save)")
    try:
        with open(meta_path, "rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        return
    except OSError as exc:
        report.problems.append(f"{meta_path}: cannot read: {exc}")
        return
    try:
        report.meta = decode_meta(meta_path, raw)
    except CorruptLogError as exc:
        report.problems.append(str(exc))


def _inspect_log(report: DataDirReport, log_path: str) -> None:
    try:
        plan = plan_log(log_path)
    except CorruptLogError as exc:
        report.problems.append(str(exc))
        return
    except OSError as exc:
        report.problems.append(f"{log_path}: cannot read: {exc}")
        return
    if not plan.exists:
        return
    report.log_first_index = plan.first_index
    report.log_last_index = plan.last_index
    report.repairs.extend(f"log: {repair}" for repair in plan.repairs())
    for scan in plan.segments + plan.dropped:
        report.segments.append(
            SegmentReport(
                os.path.basename(scan.path),
                scan.first_index,
                scan.last_index,
                scan.file_size,
                scan.torn,
                scan.version,
            )
        )
    report.segments.sort(key=lambda s: s.name)
    report.term_ranges = _term_ranges(plan)


def _term_ranges(plan: LogPlan) -> list[tuple[int, int, int]]:
    """(term, first index, last index) for each run of one term in the live log."""
    starts: list[int] = []
    terms: list[int] = []
    for scan in plan.segments:
        for start, term in zip(scan.run_starts, scan.run_terms, strict=True):
            if not terms or terms[-1] != term:
                starts.append(start)
                terms.append(term)
    out = []
    for k, (start, term) in enumerate(zip(starts, terms, strict=True)):
        stop = starts[k + 1] - 1 if k + 1 < len(starts) else plan.last_index
        first, last = max(start, plan.first_index), min(stop, plan.last_index)
        if first <= last:
            out.append((term, first, last))
    return out


def _inspect_snapshots(report: DataDirReport, snap_path: str, verify: bool) -> None:
    if not os.path.isdir(snap_path):
        return
    for name in sorted(os.listdir(snap_path)):
        if name.endswith(".snap.tmp"):
            report.repairs.append(f"snap: delete leftover {name} (an unfinished save)")
    try:
        report.snapshots = read_infos(snap_path)
    except CorruptLogError as exc:
        report.problems.append(str(exc))
        return
    if verify:
        store = SnapshotStore(snap_path, 1, report.snapshots)
        for info in report.snapshots:
            try:
                store.verify(info)
            except CorruptLogError as exc:
                report.problems.append(str(exc))
