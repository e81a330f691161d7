"""The leader's side of Raft: replication, commitment, heartbeats, reads.

Theory of operation. A leader keeps a :class:`~traft.core.progress.Progress`
per other member (§5.3). New entries are not sent one message per proposal:
:meth:`LeaderMixin._flush_appends` runs once per ``ready()`` and sends each
follower one AppendEntries with everything it is missing (cut to the message
limits), so a burst of proposals costs one message per follower. Heartbeats
go out every ``request_timeout_ms``; each heartbeat round carries a new
``seq`` that followers echo, which confirms leadership for ReadIndex reads
(thesis §6.4) and feeds check-quorum (thesis §6.2).

Commit rule (§5.3, §5.4.2): the commit index is the largest index stored on
a majority of *voting* members, and only an entry of the current term is
committed by counting replicas. The leader's own replica counts only once
``advance()`` reports it durable (``_stable_index``): entries proposed since
the last Ready, or handed out in one not yet advanced, are in its log but not
on its disk. That is what lets a driver send the leader's AppendEntries
before or while it persists them (thesis §10.2.1; the exact exception is in
the Ready contract in :mod:`traft.core.ready`): followers' fsyncs overlap the
leader's, and an entry never commits on a leader copy that a crash could lose.

Membership (§6, seed semantics): a node removed by an entry the leader holds
keeps receiving AppendEntries until it reports a commit index at or past its
removal, so it learns that it was removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traft.core.entry import Entry, EntryType
from traft.core.membership import NodeConfig
from traft.core.messages import AppendEntries, AppendEntriesResponse
from traft.core.progress import Progress, ProgressState
from traft.core.quorum import majority, quorum_index
from traft.core.ready import NodeHasSufficientLogs, Role, SendSnapshot

if TYPE_CHECKING:
    import random

    from traft.core.config import Config
    from traft.core.log import RaftLog
    from traft.core.membership import Configuration
    from traft.core.messages import Message
    from traft.core.ready import Event, SnapshotMeta

_REPLICATE = ProgressState.REPLICATE
_SNAPSHOT = ProgressState.SNAPSHOT


class LeaderMixin:
    """Leader-only behaviour of :class:`~traft.core.raft.Raft`."""

    if TYPE_CHECKING:
        id: int
        term: int
        config: Config
        commit_index: int
        role: Role
        snapshot: SnapshotMeta | None
        _rng: random.Random
        _log: RaftLog
        _conf: Configuration
        _stable_index: int
        _removed_at: int | None
        _inactive: set[int]
        _msgs: list[tuple[int, Message]]
        _events: list[Event]
        _election_elapsed_ms: int
        _heartbeat_elapsed_ms: int
        _quorum_elapsed_ms: int
        _reads: list[tuple[object, int, int]]
        _rounds_sent: list[tuple[int, int]]
        _lease_void: bool
        _transfer_target: int | None

        def _set_role(self, role: Role) -> None: ...
        def _set_leader(self, leader_id: int | None) -> None: ...
        def _become_follower(self, term: int, leader_id: int | None) -> None: ...
        def voting_change_in_progress(self) -> bool: ...
        def _note_round(self, seq: int) -> None: ...
        def _check_reads(self) -> None: ...
        def _transfer_progress(self, pr: Progress) -> None: ...

    def _init_leader_state(self) -> None:
        self._progress: dict[int, Progress] = {}
        self._peers: list[Progress] = []
        self._seq = 0
        self._want_broadcast = False

    # -- becoming and being leader ----------------------------------------------

    def _become_leader(self) -> None:
        self._set_role(Role.LEADER)
        self._set_leader(self.id)
        self._heartbeat_elapsed_ms = 0
        self._quorum_elapsed_ms = 0
        self._lease_void = False
        self._rounds_sent = []
        log = self._log
        self._progress = {}
        for node_id in sorted(self._conf.nodes):
            if node_id != self.id:
                self._progress[node_id] = Progress(node_id, log.last_index + 1)
        # A node removed by an entry that is not committed yet (perhaps the
        # previous leader removing itself) must still hear that its removal
        # committed: replicate to it until it says so.
        for node_id, index in self._conf.pending_removals(self.commit_index):
            if node_id != self.id:
                pr = self._progress.setdefault(node_id, Progress(node_id, log.last_index + 1))
                pr.removal_index = index
        self._rebuild_peers()
        # §8: a new leader commits a blank no-op entry of its own term, which
        # also settles every earlier entry (§5.4.2) and makes reads safe.
        noop = Entry(self.term, log.last_index + 1, self._rng.getrandbits(63), EntryType.NO_OP, b"")
        log.append_one(noop)

    def _remind_removed(self, node_id: int) -> None:
        """Replicate to ``node_id``, removed by a committed entry, until it knows.

        It reports a commit index at or past ours once it has the entries (or
        the snapshot) that removed it; then it gets ``RemovedSelf``.
        """
        if node_id in self._progress or node_id == self.id:
            return
        pr = Progress(node_id, self._log.last_index + 1)
        pr.removal_index = self.commit_index
        self._progress[node_id] = pr
        self._rebuild_peers()

    def _rebuild_peers(self) -> None:
        self._peers = [self._progress[i] for i in sorted(self._progress)]

    def _ensure_progress(self, node_id: int) -> Progress:
        pr = self._progress.get(node_id)
        if pr is None:
            pr = Progress(node_id, self._log.last_index + 1)
            self._progress[node_id] = pr
            self._rebuild_peers()
        return pr

    def _leader_membership_changed(self, node_id: int, node: NodeConfig | None, index: int) -> None:
        if node_id == self.id:
            return
        if node is None:
            pr = self._progress.get(node_id)
            if pr is not None:
                pr.removal_index = index
        else:
            self._ensure_progress(node_id).removal_index = None

    def _leader_tick(self, elapsed_ms: int) -> None:
        self._heartbeat_elapsed_ms += elapsed_ms
        self._quorum_elapsed_ms += elapsed_ms
        config = self.config
        if config.check_quorum and self._quorum_elapsed_ms >= config.election_timeout_ms:
            self._quorum_elapsed_ms = 0
            if not self._quorum_active():
                # Thesis §6.2: a leader cut off from a majority steps down.
                self._become_follower(self.term, None)
                return
        resend_ms = config.snapshot_resend_ms
        for pr in self._peers:
            if pr.snapshot_tick(elapsed_ms, resend_ms):
                self._start_snapshot(pr)
        if self._heartbeat_elapsed_ms >= config.request_timeout_ms:
            self._heartbeat_elapsed_ms = 0
            self._broadcast()

    def _quorum_active(self) -> bool:
        voters = self._conf.voters()
        active = 0
        for v in voters:
            if v == self.id:
                active += 1
                continue
            pr = self._progress.get(v)
            if pr is not None and pr.recent_active:
                active += 1
        for pr in self._peers:
            pr.recent_active = False
        return active >= majority(len(voters))

    # -- sending ------------------------------------------------------------------

    def _broadcast(self) -> None:
        """A heartbeat round: every follower hears from the leader with a new seq."""
        self._seq += 1
        self._want_broadcast = False
        self._note_round(self._seq)
        inactive = self._inactive
        log = self._log
        base, last = log.base_index, log.last_index
        for pr in self._peers:
            if inactive and pr.node_id in inactive:
                continue
            if pr.begin_round(base, last):
                self._send_append(pr)
            elif pr.state is _SNAPSHOT:
                # Probe the snapshot being sent: once the follower has it, the
                # answer is a success and replication resumes after it.
                self._send_heartbeat(pr, pr.pending_snapshot, pr.pending_snapshot_term)
            else:
                self._send_heartbeat(pr, pr.match_index, log.term_at(pr.match_index) or 0)

    def _send_heartbeat(self, pr: Progress, prev: int, prev_term: int) -> None:
        msg = AppendEntries(
            term=self.term,
            leader_id=self.id,
            prev_log_index=prev,
            prev_log_term=prev_term,
            entries=(),
            leader_commit=self.commit_index,
            seq=self._seq,
        )
        self._msgs.append((pr.node_id, msg))

    def _start_snapshot(self, pr: Progress) -> None:
        snap = self.snapshot
        assert snap is not None, "entries were compacted without a snapshot"
        pr.become_snapshot(snap.index, snap.term)
        self._events.append(SendSnapshot(pr.node_id, snap.index, snap.term))

    def _send_append(self, pr: Progress) -> None:
        log = self._log
        next_index = pr.next_index
        prev = next_index - 1
        prev_term = log.term_at(prev)
        if prev_term is None:
            # The follower needs entries we have compacted (§7).
            self._start_snapshot(pr)
            return
        config = self.config
        hi = pr.send_limit(
            log.last_index, config.max_entries_per_message, config.max_inflight_entries
        )
        entries = log.slice(next_index, hi)
        if len(entries) > 1:
            budget = config.max_bytes_per_message
            overhead = config.entry_overhead_bytes
            total = 0
            for k, entry in enumerate(entries):
                total += len(entry.data) + overhead
                if total > budget and k:
                    del entries[k:]
                    break
        msg = AppendEntries(
            term=self.term,
            leader_id=self.id,
            prev_log_index=prev,
            prev_log_term=prev_term,
            entries=tuple(entries),
            leader_commit=self.commit_index,
            seq=self._seq,
        )
        self._msgs.append((pr.node_id, msg))
        pr.sent(prev, len(entries))

    def _flush_appends(self) -> None:
        if self._want_broadcast:
            self._broadcast()
        last = self._log.last_index
        inflight = self.config.max_inflight_entries
        inactive = self._inactive
        for pr in self._peers:
            if inactive and pr.node_id in inactive:
                continue
            # In REPLICATE one call may not reach ``last`` (message limits):
            # keep sending until flow control or the log says stop.
            while pr.can_send(last, inflight):
                self._send_append(pr)
                if pr.state is not _REPLICATE:
                    break

    def _leader_has_sends(self) -> bool:
        if self._want_broadcast:
            return True
        last = self._log.last_index
        inflight = self.config.max_inflight_entries
        inactive = self._inactive
        return any(
            pr.can_send(last, inflight)
            for pr in self._peers
            if not (inactive and pr.node_id in inactive)
        )

    # -- receiving ----------------------------------------------------------------

    def _recv_append_response(self, from_id: int, msg: AppendEntriesResponse) -> None:
        pr = self._progress.get(from_id)
        if pr is None:
            return
        pr.recent_active = True
        if msg.seq > pr.acked_seq:
            pr.acked_seq = msg.seq
            if self._reads:
                self._check_reads()

        log = self._log
        if msg.success:
            advanced = pr.on_success(msg.current_index, log.base_index, log.last_index)
            if advanced:
                self._maybe_commit()
                if self.role is not Role.LEADER:
                    return
            if from_id == self._transfer_target:
                self._transfer_progress(pr)
            if pr.removal_index is not None:
                if msg.commit_index >= pr.removal_index:
                    # The removed node now knows its removal committed.
                    del self._progress[from_id]
                    self._rebuild_peers()
                return
            self._check_sufficient_logs(pr)
        else:
            pr.on_reject(msg.current_index, log.base_index, log.last_index)

    def _check_sufficient_logs(self, pr: Progress) -> None:
        if pr.sufficient_logs_reported:
            return
        node = self._conf.nodes.get(pr.node_id)
        if node is None or node.voting:
            return
        if (
            pr.match_index + 1 >= self._log.last_index
            and not self.voting_change_in_progress()
            and self._log.term_at(self.commit_index) == self.term
        ):
            pr.sufficient_logs_reported = True
            self._events.append(NodeHasSufficientLogs(pr.node_id))

    def _maybe_commit(self) -> None:
        voters = self._conf.voters()
        if not voters:
            return
        progress = self._progress
        matches = []
        for v in voters:
            if v == self.id:
                matches.append(self._stable_index)
            else:
                pr = progress.get(v)
                matches.append(pr.match_index if pr is not None else 0)
        index = quorum_index(matches)
        if index <= self.commit_index or self._log.term_at(index) != self.term:
            return  # §5.4.2: only entries of the current term commit by counting
        self.commit_index = index
        removed = self._removed_at
        if removed is not None and index >= removed:
            # A leader that removed itself steps down once the removal commits,
            # telling the others the new commit index on its way out.
            self._broadcast()
            self._become_follower(self.term, None)
