"""Durable state for a Raft node: a segment log, term/vote metadata and snapshots.

This package knows nothing of Raft and never imports ``traft``: it stores
records of (index, term, type, data bytes), a (term, voted_for) pair and
snapshot files, and makes them survive ``kill -9`` and power loss.

Theory of operation, one module per concern:

- ``_record``: the :class:`Record` type and its length-prefixed, CRC'd encoding.
- ``_segment``: segment files and the read-only scan that tells a torn tail
  (cut on open) from damage (:class:`CorruptLogError`, naming file and offset).
- ``_recovery``: the log's ``state`` file and the plan of what opening repairs.
- ``_log``: :class:`SegmentLog` (append, group-commit ``sync``, truncate, compact, read).
- ``_meta``: :class:`MetaStore`, the atomically replaced (term, voted_for) pair.
- ``_snapshot``: :class:`SnapshotStore`, snapshots written and read as chunk streams.
- ``_datadir``: a node's directory (``meta``, ``log/``, ``snap/``) opened or
  inspected as one.
- ``_fileio``: every mutating system call, replaceable so tests inject faults.

The byte formats are documented in docs/storage-format.md.
"""

from ._datadir import (
    DataDir,
    DataDirReport,
    SegmentReport,
    inspect_data_dir,
    open_data_dir,
)
from ._errors import (
    CorruptLogError,
    DataDirLocked,
    DiskFullError,
    LogUnusableError,
    StorageError,
    WriteError,
)
from ._log import DEFAULT_SEGMENT_BYTES, SegmentLog
from ._meta import MetaStore
from ._record import Record
from ._snapshot import (
    Snapshot,
    SnapshotInfo,
    SnapshotReader,
    SnapshotStore,
    SnapshotWriter,
)

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "CorruptLogError",
    "DataDir",
    "DataDirLocked",
    "DataDirReport",
    "DiskFullError",
    "LogUnusableError",
    "MetaStore",
    "Record",
    "SegmentLog",
    "SegmentReport",
    "Snapshot",
    "SnapshotInfo",
    "SnapshotReader",
    "SnapshotStore",
    "SnapshotWriter",
    "StorageError",
    "WriteError",
    "inspect_data_dir",
    "open_data_dir",
]
