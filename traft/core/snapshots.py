"""Snapshots in the core: taking them and installing them (§7, seed API).

Theory of operation: ``begin_snapshot`` fixes the snapshot point at the
applied index (its term and the configuration in force there); the driver
saves its state machine as of that point, then ``end_snapshot`` compacts the
log, which reaches the driver as ``Ready.compact_upto``. A follower that
received a snapshot from its leader installs it with
``begin_load_snapshot``: entries after the snapshot survive when the logs
agree at its index (§7), the rest of the log goes, the configuration is the
snapshot's plus the membership entries that survive, and the commit and
applied indexes jump to the snapshot. A snapshot never moves the term
backwards; the leader that sent it may move it forwards, as any message from
a newer leader does.

A snapshot whose configuration lists this server among the removed ids (see
:mod:`traft.core.membership`) tells it that its removal committed at or
before the snapshot's index, perhaps while it was away: it gets
``RemovedSelf(index)`` as if it had applied the removing entry, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traft.core.entry import EntryType
from traft.core.errors import NoSnapshotInProgress, NothingToSnapshot, SnapshotInProgress
from traft.core.membership import Configuration, Membership
from traft.core.ready import MembershipChanged, RemovedSelf, Role, SnapshotMeta

if TYPE_CHECKING:
    from traft.core.entry import Entry
    from traft.core.log import RaftLog
    from traft.core.ready import Event

_MEMBERSHIP_MIN = int(EntryType.ADD_NONVOTING_NODE)


class SnapshotMixin:
    """Snapshot taking and loading of :class:`~traft.core.raft.Raft`."""

    if TYPE_CHECKING:
        id: int
        role: Role
        commit_index: int
        last_applied: int
        snapshot: SnapshotMeta | None
        _log: RaftLog
        _conf: Configuration
        _snapshotting: SnapshotMeta | None
        _loading: bool
        _compact_upto: int | None
        _handed_index: int
        _unsent_from: int
        _stable_index: int
        _applying_to: int
        _removed_at: int | None
        _events: list[Event]
        term: int
        _election_elapsed_ms: int

        def _become_follower(self, term: int, leader_id: int | None) -> None: ...
        def _set_leader(self, leader_id: int | None) -> None: ...
        def _truncate(self, index: int) -> None: ...
        def _apply_membership(self, entry: Entry, *, announce: bool) -> None: ...

    def begin_snapshot(self) -> SnapshotMeta:
        """Start a snapshot of the applied state (the seed's raft_begin_snapshot).

        Returns the snapshot's metadata; the driver saves its state machine as
        of ``last_applied`` with it, then calls :meth:`end_snapshot`.

        Raises:
            SnapshotInProgress: a snapshot is being taken or loaded.
            NothingToSnapshot: nothing was applied since the last snapshot.
        """
        if self._snapshotting is not None or self._loading:
            raise SnapshotInProgress()
        index = self.last_applied
        if index <= self._log.base_index or (self.snapshot and index <= self.snapshot.index):
            raise NothingToSnapshot()
        term = self._log.term_at(index)
        assert term is not None, "applied entry missing from the log"
        meta = SnapshotMeta(index, term, self._conf.membership_at(index))
        self._snapshotting = meta
        return meta

    def end_snapshot(self, *, keep_entries: int = 0) -> SnapshotMeta:
        """Finish the snapshot and compact the log (the seed's raft_end_snapshot).

        ``keep_entries`` entries before the snapshot's index stay in the log so
        followers slightly behind can still catch up without a snapshot.

        Raises:
            NoSnapshotInProgress: :meth:`begin_snapshot` was not called.
        """
        meta = self._snapshotting
        if meta is None:
            raise NoSnapshotInProgress("snapshot")
        self._snapshotting = None
        self.snapshot = meta
        upto = meta.index - max(keep_entries, 0)
        if upto > self._log.base_index:
            term = self._log.term_at(upto)
            assert term is not None
            self._log.compact_upto(upto, term)
            self._compact_upto = upto
        return meta

    def begin_load_snapshot(
        self,
        term: int,
        index: int,
        membership: Membership,
        *,
        leader_term: int,
        leader_id: int | None = None,
    ) -> bool:
        """Start installing a snapshot received from the leader (§7).

        ``term``, ``index`` and ``membership`` describe the snapshot;
        ``leader_term`` is the term of the leader that sent it (and
        ``leader_id`` that leader, when known). The sender is treated as any
        message from it would be (Figure 2): a snapshot from a stale term is
        refused; a newer term is adopted (the vote is reset and a leader or
        candidate steps down, as on an AppendEntries of that term); and the
        election timer restarts.

        Returns False, installing nothing, when the sender's term is stale or
        below the snapshot's (nothing changes then), when this server is the
        leader of ``leader_term``, or when the snapshot is not newer than what
        this server has committed (a newer sender's term is still adopted).
        Otherwise the log keeps the entries after ``index`` if
        the entry at ``index`` has ``term``, and is discarded otherwise; the
        configuration becomes ``membership``. The driver restores its state
        machine, then calls :meth:`end_load_snapshot`.

        Raises:
            SnapshotInProgress: a snapshot is being taken or loaded.
        """
        if self._snapshotting is not None or self._loading:
            raise SnapshotInProgress()
        if leader_term < self.term or term > leader_term:
            return False  # a stale leader's, or malformed: no leader holds a later term
        if leader_term > self.term or self.role is Role.CANDIDATE:
            self._become_follower(leader_term, leader_id)
        elif self.role is Role.FOLLOWER:
            if leader_id is not None:
                self._set_leader(leader_id)
            self._election_elapsed_ms = 0
        if index <= self.commit_index:
            return False
        if self.role is Role.LEADER:
            return False  # a leader's log already holds every committed entry
        log = self._log
        if log.term_at(index) != term and log.last_index > self.commit_index:
            # The log disagrees with the snapshot: drop its uncommitted tail;
            # the committed part is covered by the snapshot and compacted below.
            self._truncate(max(self.commit_index, log.base_index) + 1)
        log.compact_upto(index, term)
        self._compact_upto = index
        self._handed_index = max(self._handed_index, index)
        self._unsent_from = max(self._unsent_from, index + 1)
        self._stable_index = max(self._stable_index, index)
        removed = self._removed_at
        told = removed is not None and removed <= self._applying_to  # RemovedSelf went out
        self.commit_index = self.last_applied = self._applying_to = index
        self._removed_at = None
        old = self._conf.nodes
        self._conf = Configuration(membership)
        for entry in log.slice(index + 1, log.last_index + 1):
            if entry.type >= _MEMBERSHIP_MIN:
                self._apply_membership(entry, announce=False)
        if self._removed_at is None and self.id in self._conf.removed:
            # Removed by an entry the snapshot covers: committed, and maybe never seen here.
            self._removed_at = index
            if not told:
                self._events.append(RemovedSelf(index))
        for node_id in sorted(set(old) | set(self._conf.nodes)):
            if old.get(node_id) != self._conf.nodes.get(node_id):
                self._events.append(MembershipChanged(node_id, self._conf.nodes.get(node_id)))
        self.snapshot = SnapshotMeta(index, term, membership)
        self._loading = True
        return True

    def end_load_snapshot(self) -> None:
        """Finish installing a snapshot (the seed's raft_end_load_snapshot).

        Raises:
            NoSnapshotInProgress: :meth:`begin_load_snapshot` did not start one.
        """
        if not self._loading:
            raise NoSnapshotInProgress("snapshot load")
        self._loading = False

    @property
    def snapshot_in_progress(self) -> bool:
        return self._snapshotting is not None or self._loading
