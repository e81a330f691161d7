"""The node's durable state: a Ready's storage part written with one fsync.

Theory of operation: :class:`Durable` adapts the ``storage`` package (which
knows nothing of Raft) to the core's Ready contract. ``persist(rd)`` runs
in a worker thread or inline (the node decides) and does, in order: save
term and vote together (atomic file replace) when they changed; pop the log
from ``truncate_from``; drop entries up to ``compact_upto``; append
``entries``; then ONE ``sync()`` of the log for all of it (group commit).
Nothing of the Ready may be sent before it returns.

An entry's id travels in the first eight bytes of the record's data, since
storage records hold (index, term, type, data) only.

:func:`recover` opens a node's storage at start and rebuilds the core and
the state machine from it: newest snapshot first, then the log after it.
"""

from __future__ import annotations

import gc
import logging
import random
import struct
from collections.abc import Iterable
from pathlib import Path

import storage
from traft.core import Config, Entry, EntryType, Membership, Raft, Ready, SnapshotMeta
from traft.node.statemachine import StateMachine

log = logging.getLogger(__name__)

_ID = struct.Struct(">Q")
_ENTRY_TYPES = tuple(EntryType)
_new = tuple.__new__  # Entry(...) adds a Python-level __new__ call per entry


def to_record(entry: Entry) -> storage.Record:
    return storage.Record(entry.index, entry.term, int(entry.type), _ID.pack(entry.id) + entry.data)


def to_entry(record: storage.Record) -> Entry:
    data = record.data
    (entry_id,) = _ID.unpack_from(data)
    return _new(Entry, (record.term, record.index, entry_id, _ENTRY_TYPES[record.type], data[8:]))


class Durable:
    """A node's meta file, segment log and snapshots, driven by Ready values."""

    def __init__(self, path: Path, *, segment_bytes: int = storage.DEFAULT_SEGMENT_BYTES) -> None:
        self.path = path
        self._dir = storage.open_data_dir(str(path), segment_bytes=segment_bytes)
        self.meta = self._dir.meta
        self.log = self._dir.log
        self.snapshots = self._dir.snapshots
        self.fsyncs = 0
        self.bytes_written = 0

    def close(self) -> None:
        self._dir.close()

    # -- recovery -------------------------------------------------------------------

    def latest_snapshot(self) -> tuple[SnapshotMeta, storage.SnapshotInfo] | None:
        """Metadata of the newest durable snapshot, if any.

        Raises:
            storage.CorruptLogError: its membership record is unreadable.
        """
        info = self.snapshots.latest_info()
        if info is None:
            return None
        try:
            membership = Membership.from_bytes(info.membership)
        except ValueError as exc:
            raise storage.CorruptLogError(info.path, 0, f"bad membership: {exc}") from None
        return SnapshotMeta(info.index, info.term, membership), info

    def finish_snapshot_install(self, index: int, term: int) -> None:
        """Make the log agree with the newest snapshot, ``(index, term)``, at start-up.

        Installing a snapshot saves it first and truncates and compacts the
        log in a later Ready (docs/storage-format.md, "Installing a snapshot
        from the leader"); a crash in between leaves one of:

        * a log that ends before ``index``: it is compacted up to ``index``,
          or the next entry (``index + 1``) would not be contiguous;
        * a log that contradicts the snapshot, an entry at ``index`` whose
          term is not ``term`` or entries after it with terms below ``term``:
          everything after ``index`` is dropped and the log compacted up to
          it. The snapshot's entry is committed, so by Log Matching no entry
          after a disagreeing one can be committed; a kept stale tail would
          make this server vote for candidates that lack the committed entry.

        A log that agrees with the snapshot is left alone.

        Raises:
            storage.StorageError: the repair could not be written.
        """
        log_ = self.log
        first, last = log_.first_index, log_.last_index
        contradicts = (first <= index <= last and log_.term_at(index) != term) or (
            first <= index + 1 <= last and log_.term_at(index + 1) < term
        )
        if contradicts:
            log.warning(
                "dropping log entries %d..%d: they contradict the snapshot at %d (term %d), "
                "left by an interrupted snapshot install",
                max(first, index + 1),
                last,
                index,
                term,
            )
            if first <= index + 1 <= last:
                log_.truncate_from(index + 1)
            log_.compact_upto(index)
            log_.sync()
        elif last < index:
            log.info(
                "finishing an interrupted snapshot install: log ends at %d, snapshot at %d",
                last,
                index,
            )
            log_.compact_upto(index)
            log_.sync()

    def entries_after(self, index: int) -> list[Entry]:
        """Every durable entry after ``index``, in order.

        Raises:
            storage.CorruptLogError: the log does not reach back to ``index + 1``.
        """
        log_ = self.log
        if log_.last_index <= index:
            return []
        if log_.first_index > index + 1:
            raise storage.CorruptLogError(
                log_.path,
                0,
                f"log starts at {log_.first_index} but entries after {index} are needed "
                "(no snapshot covers the gap)",
            )
        out: list[Entry] = []
        lo = index + 1
        step = 65536
        # to_entry inlined: recovery of 1M entries spent a quarter of its time in the calls.
        new = _new
        types = _ENTRY_TYPES
        unpack = _ID.unpack_from
        # Millions of new tuples set off the cyclic GC over and over, each pass
        # walking everything built so far; none of them can form a cycle.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            while lo <= log_.last_index:
                hi = min(lo + step, log_.last_index + 1)
                out.extend(
                    [
                        new(Entry, (r.term, r.index, unpack(r.data)[0], types[r.type], r.data[8:]))
                        for r in log_.read(lo, hi)
                    ]
                )
                lo = hi
        finally:
            if gc_was_enabled:
                gc.enable()
        return out

    # -- the Ready contract ---------------------------------------------------------------

    def persist(self, rd: Ready) -> None:
        """Make the storage part of ``rd`` durable with one log fsync (blocking)."""
        if rd.hard_state is not None:
            self.meta.save(rd.hard_state.term, rd.hard_state.voted_for)
        log_ = self.log
        changed = False
        if rd.truncate_from is not None and rd.truncate_from <= log_.last_index:
            log_.truncate_from(max(rd.truncate_from, log_.first_index))
            changed = True
        if rd.compact_upto is not None and rd.compact_upto >= log_.first_index:
            log_.compact_upto(rd.compact_upto)
            changed = True
        if rd.entries:
            # to_record inlined: one call less per entry.
            pack = _ID.pack
            record = storage.Record
            records = [
                record(e.index, e.term, int(e.type), pack(e.id) + e.data) for e in rd.entries
            ]
            log_.append(records)
            self.bytes_written += sum(len(r.data) for r in records)
            changed = True
        if changed:
            log_.sync()
            self.fsyncs += 1

    # -- snapshots --------------------------------------------------------------------

    def save_snapshot(self, meta: SnapshotMeta, chunks: Iterable[bytes]) -> storage.SnapshotInfo:
        """Write a snapshot durably (temporary file, fsync, rename)."""
        with self.snapshots.writer(meta.term, meta.index, meta.membership.to_bytes()) as writer:
            for chunk in chunks:
                writer.write(chunk)
        assert writer.info is not None
        return writer.info


def recover(
    node_id: int,
    data_dir: Path,
    *,
    config: Config,
    rng: random.Random,
    founding: Membership,
    state_machine: StateMachine,
    segment_bytes: int,
) -> tuple[Durable, Raft]:
    """Open a node's storage; restore the state machine from the newest
    snapshot and rebuild the core from it and the log after it.

    ``founding`` is the membership a node without a snapshot or membership
    entries starts with. Blocking: a worker thread's job.

    Raises:
        storage.CorruptLogError: the data directory is damaged.
    """
    durable = Durable(data_dir, segment_bytes=segment_bytes)
    try:
        snap = durable.latest_snapshot()
        meta = None
        if snap is not None:
            meta, info = snap
            with durable.snapshots.reader(info) as reader:
                state_machine.restore(reader.chunks())
            durable.finish_snapshot_install(meta.index, meta.term)
        entries = durable.entries_after(meta.index if meta else 0)
        raft = Raft.restore(
            node_id,
            config,
            rng,
            term=durable.meta.term,
            voted_for=durable.meta.voted_for,
            entries=entries,
            snapshot=meta,
            membership=founding,
        )
    except BaseException:
        durable.close()
        raise
    log.info(
        "node %d: restored term %d, snapshot %s, log %d..%d",
        node_id,
        raft.term,
        meta.index if meta else "none",
        raft.first_index,
        raft.current_index,
    )
    return durable, raft
