"""The leader role: proposals, replication, the commit rule, heartbeats, check-quorum.

Theory of operation. A :class:`Leader` is created when its server wins an
election and dropped when it steps down; everything only a leader knows
lives in it and goes with it: a :class:`~traft.core.progress.Progress` per
other member (§5.3; the per-follower rules, flow control among them, are in
:mod:`traft.core.progress`), the heartbeat round counter, the reads waiting
for a round and the lease (:class:`~traft.core.reads.LeaderReads`), and the
heartbeat and check-quorum timers. The server's state it shares with every
role (term, log, configuration, output) it reaches through
:class:`~traft.core.server.ServerState`. It never changes its server's role
itself: the methods after which it must step down return True, and
:class:`~traft.core.raft.Raft` makes the change.

New entries are not sent one message per proposal: :meth:`Leader.flush`
runs once per ``ready()`` and sends each follower one AppendEntries with
everything it is missing (cut to the message limits), so a burst of
proposals costs one message per follower. Heartbeats go out every
``request_timeout_ms``; each heartbeat round carries a new ``seq`` that
followers echo, which confirms leadership for ReadIndex reads (thesis §6.4)
and feeds check-quorum (thesis §6.2).

Commit rule (§5.3, §5.4.2), :meth:`Leader.maybe_commit`: the commit index is
the largest index stored on a majority of *voting* members, and only an
entry of the current term is committed by counting replicas. The leader's
own replica counts only once ``advance()`` reports it durable
(``_stable_index``): entries proposed since the last Ready, or handed out in
one not yet advanced, are in its log but not on its disk. That is what lets
a driver send the leader's AppendEntries before or while it persists them
(thesis §10.2.1; the exact exception is in the Ready contract in
:mod:`traft.core.ready`): followers' fsyncs overlap the leader's, and an
entry never commits on a leader copy that a crash could lose.

Membership (§6, seed semantics): a node removed by an entry the leader holds
keeps receiving AppendEntries until it reports a commit index at or past its
removal, so it learns that it was removed. Proposed changes are checked here
(:meth:`Leader.propose_membership`).
"""

from __future__ import annotations

from collections.abc import Sequence

from traft.core.election import Next
from traft.core.entry import Entry, EntryResponse, EntryType, membership_data
from traft.core.errors import (
    LeaderNotReady,
    MembershipError,
    NodeIdRemoved,
    NodeUnknown,
    OneVotingChangeOnly,
)
from traft.core.membership import NodeConfig
from traft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Message,
    ReadIndex,
    TimeoutNow,
)
from traft.core.progress import Progress, ProgressState
from traft.core.quorum import majority, quorum_index
from traft.core.reads import LeaderReads, refuse
from traft.core.ready import NodeHasSufficientLogs, Role, SendSnapshot
from traft.core.server import ServerState

_REPLICATE = ProgressState.REPLICATE
_SNAPSHOT = ProgressState.SNAPSHOT
_NORMAL = EntryType.NORMAL
# Entry(...) goes through a Python-level __new__; tuple.__new__ skips it (hot path).
_new = tuple.__new__


class Leader:
    """The leader of ``server.term``: its followers' progress, reads and timers."""

    role = Role.LEADER

    def __init__(self, server: ServerState) -> None:
        self._s = server
        self.progress: dict[int, Progress] = {}
        self._peers: list[Progress] = []  # progress in node id order
        self.seq = server._last_seq  # the current heartbeat round
        self._want_broadcast = False
        self._heartbeat_elapsed_ms = 0
        self._quorum_elapsed_ms = 0
        self.reads = LeaderReads(server, self.progress)
        log = server._log
        for node_id in sorted(server._conf.nodes):
            if node_id != server.id:
                self.progress[node_id] = Progress(node_id, log.last_index + 1)
        # A node removed by an entry that is not committed yet (perhaps the
        # previous leader removing itself) must still hear that its removal
        # committed: replicate to it until it says so.
        for node_id, index in server._conf.pending_removals(server.commit_index):
            if node_id != server.id:
                pr = self.progress.setdefault(node_id, Progress(node_id, log.last_index + 1))
                pr.removal_index = index
        self._rebuild_peers()
        # §8: a new leader commits a blank no-op entry of its own term, which
        # also settles every earlier entry (§5.4.2) and makes reads safe.
        noop = Entry(
            server.term, log.last_index + 1, server._rng.getrandbits(63), EntryType.NO_OP, b""
        )
        log.append_one(noop)

    def __repr__(self) -> str:
        return f"Leader(term={self._s.term}, seq={self.seq}, {sorted(self.progress)})"

    # -- followers ------------------------------------------------------------------

    def _rebuild_peers(self) -> None:
        self._peers = [self.progress[i] for i in sorted(self.progress)]

    def ensure_progress(self, node_id: int) -> Progress:
        pr = self.progress.get(node_id)
        if pr is None:
            pr = Progress(node_id, self._s._log.last_index + 1)
            self.progress[node_id] = pr
            self._rebuild_peers()
        return pr

    def remind_removed(self, node_id: int) -> None:
        """Replicate to ``node_id``, removed by a committed entry, until it knows.

        It reports a commit index at or past ours once it has the entries (or
        the snapshot) that removed it; then it gets ``RemovedSelf``.
        """
        s = self._s
        if node_id in self.progress or node_id == s.id:
            return
        pr = Progress(node_id, s._log.last_index + 1)
        pr.removal_index = s.commit_index
        self.progress[node_id] = pr
        self._rebuild_peers()

    def membership_changed(self, node_id: int, node: NodeConfig | None, index: int) -> None:
        if node_id == self._s.id:
            return
        if node is None:
            pr = self.progress.get(node_id)
            if pr is not None:
                pr.removal_index = index
        else:
            self.ensure_progress(node_id).removal_index = None

    # -- proposals ------------------------------------------------------------------

    def propose(self, datas: Sequence[bytes], ids: Sequence[int] | None) -> list[Entry]:
        """Append ``datas`` as entries of this term; return them.

        Raises:
            ValueError: ``ids`` is given and its length differs from ``datas``.
        """
        s = self._s
        first = s._log.last_index + 1
        term = s.term
        if ids is None:
            bits = s._rng.getrandbits
            ids = [bits(63) for _ in datas]
        elif len(ids) != len(datas):
            raise ValueError("ids and datas differ in length")
        entries = [
            _new(Entry, (term, first + k, ids[k], _NORMAL, data)) for k, data in enumerate(datas)
        ]
        s._log.append(entries)
        return entries

    def propose_membership(self, kind: EntryType, node_id: int, context: bytes) -> EntryResponse:
        """Append a membership change (see :meth:`traft.core.raft.Raft.propose_membership`)."""
        s = self._s
        conf = s._conf
        kind = EntryType(kind)
        if not kind.is_membership:
            raise MembershipError(f"{kind.name} is not a membership entry type")
        current = conf.nodes.get(node_id)
        if conf.change_pending(node_id, s.commit_index):
            # Removing and re-adding the same node must not race (seed regression).
            raise OneVotingChangeOnly()
        if kind is not EntryType.REMOVE_NODE and node_id in conf.removed:
            raise NodeIdRemoved(node_id)
        if kind is EntryType.ADD_NONVOTING_NODE:
            if current is not None:
                raise MembershipError(f"node {node_id} is already a member")
        else:
            if current is None:
                raise NodeUnknown(node_id)
            if kind is EntryType.ADD_NODE and current.voting:
                raise MembershipError(f"node {node_id} is already a voting member")
            if kind is EntryType.REMOVE_NODE and current.voting:
                if conf.voters() == [node_id]:
                    raise MembershipError(f"node {node_id} is the last voting member")
            if s.voting_change_in_progress():
                raise OneVotingChangeOnly()
            if s._log.term_at(s.commit_index) != s.term:
                # Ongaro, raft-dev 2015 ("bug in single-server membership
                # changes"): until an entry of its term commits, a new leader
                # may not know of a change a previous leader appended; its own
                # change would then make two configurations whose quorums
                # need not overlap.
                raise LeaderNotReady()
        entry = Entry(
            s.term,
            s._log.last_index + 1,
            s._rng.getrandbits(63),
            kind,
            membership_data(node_id, context),
        )
        s._append([entry])
        return EntryResponse(entry.id, entry.term, entry.index)

    # -- time -----------------------------------------------------------------------

    def tick(self, elapsed_ms: int) -> Next | None:
        """Time passed; STEP_DOWN when cut off from a majority (check-quorum, thesis §6.2)."""
        self._heartbeat_elapsed_ms += elapsed_ms
        self._quorum_elapsed_ms += elapsed_ms
        config = self._s.config
        if config.check_quorum and self._quorum_elapsed_ms >= config.election_timeout_ms:
            self._quorum_elapsed_ms = 0
            if not self._quorum_active():
                return Next.STEP_DOWN
        resend_ms = config.snapshot_resend_ms
        for pr in self._peers:
            if pr.snapshot_tick(elapsed_ms, resend_ms):
                self._start_snapshot(pr)
        if self._heartbeat_elapsed_ms >= config.request_timeout_ms:
            self._heartbeat_elapsed_ms = 0
            self.broadcast()
        return None

    def _quorum_active(self) -> bool:
        s = self._s
        voters = s._conf.voters()
        active = 0
        for v in voters:
            if v == s.id:
                active += 1
                continue
            pr = self.progress.get(v)
            if pr is not None and pr.recent_active:
                active += 1
        for pr in self._peers:
            pr.recent_active = False
        return active >= majority(len(voters))

    # -- sending ------------------------------------------------------------------------

    def broadcast(self) -> None:
        """A heartbeat round: every follower hears from the leader with a new seq."""
        self.seq += 1
        self._want_broadcast = False
        self.reads.note_round(self.seq)
        s = self._s
        inactive = s._inactive
        log = s._log
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
        s = self._s
        msg = AppendEntries(
            term=s.term,
            leader_id=s.id,
            prev_log_index=prev,
            prev_log_term=prev_term,
            entries=(),
            leader_commit=s.commit_index,
            seq=self.seq,
        )
        s._msgs.append((pr.node_id, msg))

    def _start_snapshot(self, pr: Progress) -> None:
        snap = self._s.snapshot
        assert snap is not None, "entries were compacted without a snapshot"
        pr.become_snapshot(snap.index, snap.term)
        self._s._events.append(SendSnapshot(pr.node_id, snap.index, snap.term))

    def _send_append(self, pr: Progress) -> None:
        s = self._s
        log = s._log
        next_index = pr.next_index
        prev = next_index - 1
        prev_term = log.term_at(prev)
        if prev_term is None:
            # The follower needs entries we have compacted (§7).
            self._start_snapshot(pr)
            return
        config = s.config
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
            term=s.term,
            leader_id=s.id,
            prev_log_index=prev,
            prev_log_term=prev_term,
            entries=tuple(entries),
            leader_commit=s.commit_index,
            seq=self.seq,
        )
        s._msgs.append((pr.node_id, msg))
        pr.sent(prev, len(entries))

    def flush(self) -> None:
        """Send what flow control allows to every active follower (once per ``ready()``)."""
        if self._want_broadcast:
            self.broadcast()
        s = self._s
        last = s._log.last_index
        inflight = s.config.max_inflight_entries
        inactive = s._inactive
        for pr in self._peers:
            if inactive and pr.node_id in inactive:
                continue
            # In REPLICATE one call may not reach ``last`` (message limits):
            # keep sending until flow control or the log says stop.
            while pr.can_send(last, inflight):
                self._send_append(pr)
                if pr.state is not _REPLICATE:
                    break

    def has_sends(self) -> bool:
        """Whether :meth:`flush` would send anything."""
        if self._want_broadcast:
            return True
        s = self._s
        last = s._log.last_index
        inflight = s.config.max_inflight_entries
        inactive = s._inactive
        return any(
            pr.can_send(last, inflight)
            for pr in self._peers
            if not (inactive and pr.node_id in inactive)
        )

    # -- receiving ----------------------------------------------------------------------

    def recv_append_response(self, from_id: int, msg: AppendEntriesResponse) -> bool:
        """A follower answered; True when the leader must step down (see :meth:`maybe_commit`)."""
        pr = self.progress.get(from_id)
        if pr is None:
            return False
        pr.recent_active = True
        if msg.seq > pr.acked_seq:
            pr.acked_seq = msg.seq
            if self.reads.pending:
                self.reads.check()
        log = self._s._log
        if not msg.success:
            pr.on_reject(msg.current_index, log.base_index, log.last_index)
            return False
        if pr.on_success(msg.current_index, log.base_index, log.last_index):
            if self.maybe_commit():
                return True
        self.transfer_progress(pr)
        if pr.removal_index is not None:
            if msg.commit_index >= pr.removal_index:
                # The removed node now knows its removal committed.
                del self.progress[from_id]
                self._rebuild_peers()
            return False
        self._check_sufficient_logs(pr)
        return False

    def step(self, from_id: int, msg: Message) -> Next | None:
        """A message of this leader's term: answers to its AppendEntries, forwarded reads."""
        if isinstance(msg, AppendEntriesResponse):
            if self.recv_append_response(from_id, msg):
                return Next.STEP_DOWN
        elif isinstance(msg, ReadIndex):
            self.recv_read_index(from_id, msg)
        return None  # votes, pre-vote answers and TimeoutNow mean nothing to a leader

    def recv_read_index(self, from_id: int, msg: ReadIndex) -> None:
        """A follower forwards a read (thesis §6.4); refused until this term has committed."""
        s = self._s
        if s._log.term_at(s.commit_index) != s.term:
            refuse(s, from_id, msg)
        elif self.reads.register_remote(from_id, msg, self.seq):
            self._want_broadcast = True

    def read_index(self, ctx: object) -> None:
        """Register the leader's own read (see :meth:`traft.core.raft.Raft.read_index`)."""
        if self.reads.register(ctx, self.seq):
            self._want_broadcast = True

    def transfer_progress(self, pr: Progress) -> None:
        """Thesis §3.10 step 2: send TimeoutNow once the transfer target is caught up."""
        s = self._s
        transfer = s._transfer
        if (
            transfer is not None
            and pr.node_id == transfer.target
            and pr.match_index == s._log.last_index
        ):
            s._msgs.append((pr.node_id, TimeoutNow(term=s.term, leader_id=s.id)))

    def _check_sufficient_logs(self, pr: Progress) -> None:
        if pr.sufficient_logs_reported:
            return
        s = self._s
        node = s._conf.nodes.get(pr.node_id)
        if node is None or node.voting:
            return
        if (
            pr.match_index + 1 >= s._log.last_index
            and not s.voting_change_in_progress()
            and s._log.term_at(s.commit_index) == s.term
        ):
            pr.sufficient_logs_reported = True
            s._events.append(NodeHasSufficientLogs(pr.node_id))

    def durable(self) -> Next | None:
        """``advance()`` reported more of the log durable: the leader's own copy now counts."""
        return Next.STEP_DOWN if self.maybe_commit() else None

    def maybe_commit(self) -> bool:
        """Apply the commit rule; True when the leader must step down (its removal committed)."""
        s = self._s
        voters = s._conf.voters()
        if not voters:
            return False
        progress = self.progress
        matches = []
        for v in voters:
            if v == s.id:
                matches.append(s._stable_index)
            else:
                pr = progress.get(v)
                matches.append(pr.match_index if pr is not None else 0)
        index = quorum_index(matches)
        if index <= s.commit_index or s._log.term_at(index) != s.term:
            return False  # §5.4.2: only entries of the current term commit by counting
        s.commit_index = index
        removed = s._removed_at
        if removed is not None and index >= removed:
            # A leader that removed itself steps down once the removal commits,
            # telling the others the new commit index on its way out.
            self.broadcast()
            return True
        return False
