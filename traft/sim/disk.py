"""What one simulated server has made durable: :class:`MemoryDisk`.

An in-memory model of a node's durable storage: whatever the driver
"fsyncs" here (the storage part of a Ready, a snapshot file) survives a
crash, everything else is lost. :meth:`MemoryDisk.recover` reads it back as
the node's recovery does (``Node._open``, ``Durable.finish_snapshot_install``).
"""

from __future__ import annotations

import attrs

from traft.core import Entry, Ready, SnapshotMeta
from traft.sim.kv import KVStore

__all__ = ["MemoryDisk"]


@attrs.define
class MemoryDisk:
    """What one server has made durable: hard state, log, latest snapshot."""

    term: int = 0
    voted_for: int | None = None
    entries: list[Entry] = attrs.Factory(list)
    base_index: int = 0
    base_term: int = 0
    snapshot: SnapshotMeta | None = None
    snapshot_state: int = 0
    snapshot_kv: KVStore = attrs.Factory(KVStore)
    fsyncs: int = 0

    def persist(self, rd: Ready) -> None:
        """Apply the storage part of a Ready in the documented order, then 'fsync'."""
        if rd.hard_state is not None:
            self.term = rd.hard_state.term
            self.voted_for = rd.hard_state.voted_for
        if rd.truncate_from is not None:
            keep = rd.truncate_from - self.base_index - 1
            if keep < len(self.entries):
                del self.entries[max(keep, 0) :]
        if rd.compact_upto is not None and rd.compact_upto > self.base_index:
            drop = rd.compact_upto - self.base_index
            if drop >= len(self.entries):
                self.entries.clear()
                assert self.snapshot is not None and self.snapshot.index >= rd.compact_upto
                self.base_term = self.snapshot.term if self.snapshot.index == rd.compact_upto else 0
            else:
                self.base_term = self.entries[drop - 1].term
                del self.entries[:drop]
            self.base_index = rd.compact_upto
        if rd.entries:
            first = rd.entries[0].index
            assert first == self.base_index + len(self.entries) + 1, (
                f"disk append gap: first {first}, last {self.base_index + len(self.entries)}"
            )
            self.entries.extend(rd.entries)
        if rd.hard_state is not None or rd.entries or rd.truncate_from or rd.compact_upto:
            self.fsyncs += 1

    @property
    def last_index(self) -> int:
        return self.base_index + len(self.entries)

    def term_at(self, index: int) -> int | None:
        offset = index - self.base_index
        if 0 < offset <= len(self.entries):
            return self.entries[offset - 1].term
        return None

    def recover(self) -> list[Entry]:
        """The entries a restarting node hands to ``Raft.restore``, as the node finds them.

        Mirrors ``Node._open`` and :class:`~traft.node.durable.Durable`:
        ``finish_snapshot_install`` first makes the log agree with the newest
        snapshot (S, T), where an install interrupted by a crash can leave a
        log that ends before S (it is compacted up to S) or one that
        contradicts the snapshot, another term at S or a lower one at S + 1
        (everything after S goes and the log is compacted up to S); then
        ``entries_after(S)`` reads the rest, and the snapshot is the base.
        """
        snap = self.snapshot
        if snap is None:
            return list(self.entries)
        index, term = snap.index, snap.term
        at, after = self.term_at(index), self.term_at(index + 1)
        if (at is not None and at != term) or (after is not None and after < term):
            if after is not None:
                del self.entries[index + 1 - self.base_index - 1 :]
            self._compact_to_snapshot()
        elif self.last_index < index:
            self._compact_to_snapshot()
        # Durable.entries_after.
        offset = index - self.base_index
        assert offset >= 0, "the log starts after the snapshot: entries are missing"
        return self.entries[offset:]

    def _compact_to_snapshot(self) -> None:
        snap = self.snapshot
        assert snap is not None
        drop = snap.index - self.base_index
        if drop > 0:
            del self.entries[:drop]
            self.base_index = snap.index
            self.base_term = snap.term
        self.fsyncs += 1
