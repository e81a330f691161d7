"""The Raft server: one object per server, driven by time, messages and proposals.

Theory of operation (Ongaro & Ousterhout 2014, "In Search of an
Understandable Consensus Algorithm", Figure 2; Ongaro's thesis for the
extensions). The object never performs I/O and never reads a clock: time
passes only through :meth:`Raft.periodic`, randomness comes only from the
injected ``random.Random``. Everything it wants done is collected and handed
out by :meth:`Raft.ready`; the driver persists, sends and applies, then calls
:meth:`Raft.advance`. Same inputs and seed give the same Ready values.

Where the rules live (etcd-raft's shape): this module keeps the public API,
the term rules every message goes through (Figure 2, "if RPC request or
response contains term T > currentTerm ...") and the role changes; it hands
each message of the current term to the object of the current role. The
state every role shares is :class:`~traft.core.server.ServerState`
(:mod:`traft.core.server`); each role's own state and rules are in its
module: :mod:`traft.core.leader` (proposals, replication, the commit rule,
heartbeats, check-quorum), :mod:`traft.core.follower` (taking entries from
the leader), :mod:`traft.core.election` (the vote and pre-vote rules, the
candidate). Per-follower flow control is in :mod:`traft.core.progress`,
commit index math in :mod:`traft.core.quorum`, reads in
:mod:`traft.core.reads`, leadership transfer in :mod:`traft.core.transfer`,
snapshot taking and loading in :mod:`traft.core.snapshots`, the
persist-before-send contract in :mod:`traft.core.ready`.
Input from peers never raises; misuse by the local caller raises a
:class:`~traft.core.errors.RaftError`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from traft.core import snapshots
from traft.core.config import Config
from traft.core.election import (
    Candidate,
    Next,
    answer_pre_vote,
    answer_vote,
    can_campaign,
    leader_is_fresh,
)
from traft.core.entry import Entry, EntryResponse, EntryType
from traft.core.errors import (
    LeaderNotReady,
    MembershipError,
    NodeUnknown,
    NoSnapshotInProgress,
    NotLeader,
    SnapshotInProgress,
    TransferError,
    TransferInProgress,
)
from traft.core.follower import Follower
from traft.core.leader import Leader
from traft.core.log import RaftLog
from traft.core.membership import Configuration, Membership, NodeConfig
from traft.core.messages import (
    AppendEntries,
    Message,
    PreVote,
    PreVoteResponse,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from traft.core.progress import Progress
from traft.core.reads import ForwardedReads
from traft.core.ready import (
    HardState,
    LeaderChanged,
    Ready,
    RemovedSelf,
    Role,
    RoleChanged,
    SnapshotMeta,
    TransferStarted,
)
from traft.core.server import ServerState
from traft.core.transfer import Transfer, check_target

_MEMBERSHIP_MIN = int(EntryType.ADD_NONVOTING_NODE)


class Raft(ServerState):
    """One Raft server's consensus state (the seed's ``raft_server_t``).

    Args:
        node_id: this server's id, unique in the cluster.
        config: timeouts and limits.
        rng: the only source of randomness (election timeouts, entry ids).
            Every server needs its own: two servers whose rngs are seeded
            alike draw identical election timeouts, start every election
            together and split the vote for ever (a livelock: no leader is
            ever elected). Use ``random.Random()`` (seeded by the OS), or a
            distinct seed per server when runs must be reproducible.
    """

    def __init__(self, node_id: int, config: Config, rng: random.Random) -> None:
        if not isinstance(rng, random.Random):
            raise TypeError("rng must be a random.Random instance")
        super().__init__(node_id, config, rng)
        # The current role's object; ``role`` names it (the Role enum, public).
        self._role: Follower | Candidate | Leader = Follower(self)
        # A follower's reads forwarded to its leader (traft.core.reads).
        self._forwarded = ForwardedReads(self)

    # -- construction ---------------------------------------------------------

    @classmethod
    def restore(
        cls,
        node_id: int,
        config: Config,
        rng: random.Random,
        *,
        term: int,
        voted_for: int | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None = None,
        membership: Membership | None = None,
        base_index: int | None = None,
        base_term: int | None = None,
    ) -> Raft:
        """Rebuild a server from what its storage kept after a crash or restart.

        Args:
            term, voted_for: the last persisted hard state.
            entries: the durable log, contiguous, starting right after the
                snapshot (or after ``base_index`` when given).
            snapshot: metadata of the latest durable snapshot, if any.
            membership: the bootstrap configuration, used when there is no
                snapshot; membership entries in ``entries`` apply on top.
            base_index, base_term: the index and term just before the first
                entry when the log was compacted below the snapshot's index.

        A server whose snapshot lists it among the removed ids gets
        ``RemovedSelf(snapshot.index)`` in its first Ready.

        Raises:
            ValueError: the pieces do not fit together: entries that do not
                start right after the base or are not contiguous, a term that
                goes backwards (from the base term on), or an entry at the
                snapshot's index whose term is not the snapshot's. A driver
                recovering from a crash in the middle of a snapshot install
                drops such a tail first (see docs/storage-format.md).
        """
        raft = cls(node_id, config, rng)
        raft.term = term
        raft.voted_for = voted_for
        raft._persisted_hs = HardState(term, voted_for)
        start = membership if snapshot is None else snapshot.membership
        raft._conf = Configuration(start or Membership())
        if snapshot is not None:
            raft.snapshot = snapshot
            raft.commit_index = raft.last_applied = snapshot.index
            raft._applying_to = snapshot.index
        if base_index is None:
            base_index = snapshot.index if snapshot is not None else 0
            base_term = snapshot.term if snapshot is not None else 0
        if snapshot is not None and base_index > snapshot.index:
            raise ValueError("log starts after the snapshot: entries are missing")
        base_term = base_term or 0
        raft._log = RaftLog(base_index, base_term)
        if entries:
            first = entries[0]
            if first.index != base_index + 1:
                raise ValueError(
                    f"log does not start right after index {base_index} (first is {first.index})"
                )
            # Terms never decrease along a log (§5.3, Log Matching), the
            # compaction point included: a tail below it is stale, and a
            # driver that kept one would vote for candidates lacking
            # committed entries (issue 10, bug 2).
            if first.term < base_term:
                raise ValueError(
                    f"entry {first.index} has term {first.term}, below the term {base_term} "
                    f"of index {base_index} before it"
                )
        for prev, entry in zip(entries, entries[1:], strict=False):
            if entry.index != prev.index + 1:
                raise ValueError(f"log is not contiguous at index {entry.index}")
            if entry.term < prev.term:
                raise ValueError(
                    f"log term goes backwards at index {entry.index} ({prev.term} -> {entry.term})"
                )
        raft._log.append(list(entries))
        if snapshot is not None:
            at = raft._log.term_at(snapshot.index)
            if at is not None and at != snapshot.term:
                raise ValueError(
                    f"entry {snapshot.index} has term {at} but the snapshot there has term "
                    f"{snapshot.term}: the log contradicts the snapshot"
                )
        for entry in entries:
            if entry.type >= _MEMBERSHIP_MIN:
                raft._apply_membership(entry, announce=False)
        raft._conf.prune_upto(raft.last_applied)
        if snapshot is not None and raft._removed_at is None and node_id in raft._conf.removed:
            # The snapshot says this server was removed: it is told again on
            # every start, as the removing entry is no longer in its log.
            raft._removed_at = snapshot.index
            raft._events.append(RemovedSelf(snapshot.index))
        raft._stable_index = raft._handed_index = raft._log.last_index
        raft._unsent_from = raft._log.last_index + 1
        return raft

    def add_node(self, node_id: int, *, is_self: bool = False, context: bytes = b"") -> None:
        """Add a voting member outside the log (bootstrap; the seed's raft_add_node).

        Raises:
            ValueError: ``is_self`` disagrees with this server's id.
        """
        if is_self != (node_id == self.id):
            raise ValueError(f"node {node_id} is_self={is_self} but this server is {self.id}")
        self._set_node(NodeConfig(node_id, True, context))

    def add_non_voting_node(self, node_id: int, *, context: bytes = b"") -> None:
        """Add a non-voting member outside the log (the seed's raft_add_non_voting_node)."""
        self._set_node(NodeConfig(node_id, False, context))

    def set_node_active(self, node_id: int, active: bool) -> None:
        """Mark a member reachable or not (the seed's raft_node_set_active).

        This server sends nothing to an inactive member; it stays in the
        configuration and still counts toward majorities.

        Raises:
            NodeUnknown: the node is not a member.
        """
        if node_id not in self._conf.nodes:
            raise NodeUnknown(node_id)
        if active:
            self._inactive.discard(node_id)
        else:
            self._inactive.add(node_id)

    def _set_node(self, node: NodeConfig) -> None:
        self._conf.set_node(node)
        role = self._role
        if isinstance(role, Leader) and node.node_id != self.id:
            role.ensure_progress(node.node_id)
        super()._membership_changed(node.node_id, node, 0)

    def _membership_changed(self, node_id: int, node: NodeConfig | None, index: int) -> None:
        self._role.membership_changed(node_id, node, index)
        super()._membership_changed(node_id, node, index)

    # -- time -------------------------------------------------------------------

    def periodic(self, elapsed_ms: int) -> None:
        """Let ``elapsed_ms`` milliseconds pass (the seed's raft_periodic).

        Raises:
            ValueError: ``elapsed_ms`` is negative.
        """
        if elapsed_ms < 0:
            raise ValueError("elapsed_ms must not be negative")
        self._now_ms += elapsed_ms
        self._election_elapsed_ms += elapsed_ms
        if self._boot_guard_ms:
            self._boot_guard_ms = max(0, self._boot_guard_ms - elapsed_ms)
        action = self._role.tick(elapsed_ms)
        if action is not None:
            self._act(action)
        transfer = self._transfer
        if transfer is not None:
            reason = transfer.tick(elapsed_ms, self.config.election_timeout_ms)
            if reason is not None:
                self._abort_transfer(reason)
        if self._forwarded:
            self._forwarded.expire()

    def _act(self, action: Next) -> None:
        """Make the role change the current role's object asked for."""
        if action is Next.PRE_CAMPAIGN:
            self._pre_campaign()
        elif action is Next.CAMPAIGN:
            self._campaign()
        elif action is Next.TRANSFER_CAMPAIGN:
            self._campaign(transfer=True)
        elif action is Next.LEAD:
            self._become_leader()
        elif action is Next.STEP_DOWN:
            self._become_follower(self.term, None)
        else:
            self._set_leader(None)
            self._timeout_ms = self._draw_timeout()

    # -- roles ------------------------------------------------------------------

    def _set_leader(self, leader_id: int | None) -> None:
        if leader_id != self.leader_id:
            self.leader_id = leader_id
            self._events.append(LeaderChanged(leader_id, self.term))
            self._forwarded.lose_all()
            transfer = self._transfer
            if transfer is not None and leader_id is not None and leader_id != self.id:
                outcome = transfer.leader_seen(leader_id)
                if isinstance(outcome, str):
                    self._abort_transfer(outcome)
                else:
                    self._transfer = None
                    self._events.append(outcome)

    def _set_role(self, role: Follower | Candidate | Leader) -> None:
        """Make ``role`` the current role; the old role's object is dropped."""
        old = self._role
        if isinstance(old, Leader):
            self._last_seq = old.seq
            old.reads.drop()
            transfer = self._transfer
            if transfer is not None and not transfer.handed_off:
                # The transfer goes on only if the target took over.
                self._abort_transfer("leadership was lost")
        self._role = role
        if role.role is not self.role:
            self.role = role.role
            self._events.append(RoleChanged(role.role, self.term))

    def _become_follower(
        self, term: int, leader_id: int | None, *, reset_timer: bool = True
    ) -> None:
        if term > self.term:
            self.term = term
            self.voted_for = None
        role = self._role
        if isinstance(role, Follower):
            role.pre_votes = None
        else:
            self._set_role(Follower(self))
        self._set_leader(leader_id)
        if reset_timer:
            self._election_elapsed_ms = 0
            self._timeout_ms = self._draw_timeout()

    def _become_leader(self) -> None:
        self._set_role(Leader(self))
        self._set_leader(self.id)

    def campaign(self) -> None:
        """Start an election now, as if the election timeout had fired.

        With ``Config.pre_vote`` this starts a pre-vote round; the real
        election follows only if a majority would vote for this server.

        Raises:
            MembershipError: this server is not a voting member.
        """
        if not can_campaign(self):
            raise MembershipError(f"node {self.id} is not a voting member; it cannot campaign")
        if not isinstance(self._role, Leader):
            self._election_elapsed_ms = 0
            if self.config.pre_vote:
                self._pre_campaign()
            else:
                self._campaign()

    def _pre_campaign(self) -> None:
        # Election rule 1: term, vote and role stay; nothing to persist.
        self._set_leader(None)
        self._timeout_ms = self._draw_timeout()
        role = self._role
        assert not isinstance(role, Leader), "a leader does not pre-campaign"
        role.pre_votes = {self.id}
        if self._is_majority(role.pre_votes):
            self._campaign()
            return
        msg = PreVote(
            term=self.term + 1,
            candidate_id=self.id,
            last_log_index=self._log.last_index,
            last_log_term=self._log.last_term,
        )
        for node_id in self._conf.voters():
            if node_id != self.id and node_id not in self._inactive:
                self._msgs.append((node_id, msg))

    def _campaign(self, *, transfer: bool = False) -> None:
        # §5.2: increment currentTerm, vote for self, reset the timer, send RequestVote.
        self.term += 1
        self.voted_for = self.id
        candidate = Candidate(self)
        self._set_role(candidate)
        self._set_leader(None)
        self._election_elapsed_ms = 0
        self._timeout_ms = self._draw_timeout()
        if self._is_majority(candidate.votes):
            self._become_leader()
            return
        msg = RequestVote(
            term=self.term,
            candidate_id=self.id,
            last_log_index=self._log.last_index,
            last_log_term=self._log.last_term,
            leader_transfer=transfer,
        )
        for node_id in self._conf.voters():
            if node_id != self.id and node_id not in self._inactive:
                self._msgs.append((node_id, msg))

    # -- input: messages --------------------------------------------------------

    def recv(self, from_id: int, msg: Message) -> None:
        """Take a message from peer ``from_id`` (every raft_recv_* of the seed).

        Stale, duplicated, reordered and unexpected messages are dropped or
        answered; this never raises for peer input.
        """
        term = msg.term
        if from_id in self._conf.removed and self._removal_committed(from_id):
            # A server whose removal committed can never lead or vote here
            # again, but it may not know it: removed while it was away, by a
            # leader since deposed, nobody replicates to it any more. Its terms
            # are ignored (thesis §4.2.3), and a leader that hears from it
            # replicates to it until it has learnt its removal.
            role = self._role
            if isinstance(role, Leader):
                role.remind_removed(from_id)
            if term > self.term:
                return
        if isinstance(msg, PreVote):
            # Never adopt a pre-vote's term: nobody is in it (election rule 3).
            answer_pre_vote(self, from_id, msg)
            return
        if isinstance(msg, PreVoteResponse) and (msg.vote_granted or term <= self.term):
            action = self._role.step(from_id, msg)
            if action is not None:
                self._act(action)
            return
        if term > self.term:
            if isinstance(msg, RequestVote) and not msg.leader_transfer and leader_is_fresh(self):
                # §4.2.3 (thesis): ignore disruptive candidates while a leader is alive.
                return
            leader = msg.leader_id if isinstance(msg, (AppendEntries, TimeoutNow)) else None
            leading = isinstance(self._role, Leader)
            transfer = self._transfer
            if leading and transfer is not None and from_id == transfer.target:
                # The transfer target's election (or leadership) deposes us: the
                # transfer goes on until we hear from it as leader.
                transfer.handed_off = True
            # Figure 2: a follower's timer restarts on hearing from the leader
            # or granting a vote, not on a candidate's higher term alone (that
            # vote may be refused). Restarting it let candidates that cannot
            # win, and removed servers, keep the only server that can win
            # (the one with the longest log) from ever timing out.
            reset = not isinstance(msg, RequestVote) or leading
            self._become_follower(term, leader, reset_timer=reset)
        elif term < self.term:
            # Figure 2: reply false to a stale leader or candidate so it learns the term.
            if isinstance(msg, AppendEntries):
                self._msgs.append((from_id, self._ae_response(False, self._log.last_index, 0)))
            elif isinstance(msg, RequestVote):
                self._msgs.append(
                    (from_id, RequestVoteResponse(term=self.term, vote_granted=False))
                )
            return
        self._step(from_id, msg)

    def _step(self, from_id: int, msg: Message) -> None:
        """A message of this server's term: the rules of every role, then the role's own."""
        if isinstance(msg, AppendEntries):
            # Same term: whoever sent it is the leader (§5.2 election safety).
            if not isinstance(self._role, Follower):
                self._become_follower(self.term, msg.leader_id)
            self._set_leader(msg.leader_id)
            follower = self._role
            assert isinstance(follower, Follower)
            follower.recv_append(from_id, msg)
        elif isinstance(msg, RequestVote):
            answer_vote(self, from_id, msg)
        elif isinstance(msg, ReadIndexResponse):
            self._forwarded.answered(msg)
        else:
            action = self._role.step(from_id, msg)
            if action is not None:
                self._act(action)

    # -- input: proposals -------------------------------------------------------

    def _proposer(self) -> Leader:
        """The leader role, if it takes proposals now: every proposal's one precheck.

        Raises:
            NotLeader: this server is not the leader (or its removal is appended).
            TransferInProgress: a leadership transfer is in progress.
        """
        role = self._role
        if not isinstance(role, Leader) or self._removed_at is not None:
            raise NotLeader(self.leader_id if self.leader_id != self.id else None)
        if self._transfer is not None:
            # Thesis §3.10: the leader stops accepting client requests.
            raise TransferInProgress(self._transfer.target)
        return role

    def recv_entry(self, data: bytes, *, id: int | None = None) -> EntryResponse:
        """Propose one entry (the seed's raft_recv_entry).

        Raises:
            NotLeader: this server is not the leader.
            TransferInProgress: a leadership transfer is in progress (a
                NotLeader naming no leader: retry shortly).
        """
        return self.recv_entries([data], ids=None if id is None else [id])[0]

    def recv_entries(
        self, datas: Sequence[bytes], *, ids: Sequence[int] | None = None
    ) -> list[EntryResponse]:
        """Propose many entries in one call (the seed's planned batch interface).

        Raises:
            NotLeader: this server is not the leader.
            TransferInProgress: a leadership transfer is in progress (a
                NotLeader naming no leader: retry shortly).
            ValueError: ``ids`` is given and its length differs from ``datas``.
        """
        term = self.term
        return [EntryResponse(e.id, term, e.index) for e in self._proposer().propose(datas, ids)]

    def recv_entries_batch(self, datas: Sequence[bytes]) -> tuple[int, int]:
        """Propose many entries; return their ``(term, first_index)``.

        The same as :meth:`recv_entries` without an :class:`EntryResponse`
        per entry: entry ``k`` of ``datas`` gets index ``first_index + k``.

        Raises:
            NotLeader: this server is not the leader.
            TransferInProgress: a leadership transfer is in progress (a
                NotLeader naming no leader: retry shortly).
        """
        leader = self._proposer()
        first = self._log.last_index + 1
        leader.propose(datas, None)
        return self.term, first

    def propose_membership(
        self, kind: EntryType, node_id: int, context: bytes = b""
    ) -> EntryResponse:
        """Propose a membership change through the log (§6; seed semantics).

        ADD_NONVOTING_NODE adds a node that replicates but does not vote;
        ADD_NODE promotes it to voting once it has caught up; REMOVE_NODE
        removes a node, the leader included. Each takes effect when appended.
        The id of a removed node is never reused: adding it again is refused
        (bring the server back with an empty log under a new id).

        Raises:
            NotLeader: this server is not the leader.
            TransferInProgress: a leadership transfer is in progress (a
                NotLeader naming no leader: retry shortly).
            OneVotingChangeOnly: a voting change, or any change of the same
                node, is still uncommitted.
            LeaderNotReady: promoting or removing before an entry of this
                term has committed.
            NodeIdRemoved: adding or promoting a node whose id was removed (a
                MembershipError).
            NodeUnknown: promoting or removing a node that is not a member.
            MembershipError: adding a node that is already a member, promoting a
                voter, removing the last voter, or ``kind`` is not a membership type.
        """
        return self._proposer().propose_membership(kind, node_id, context)

    # -- output -----------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether :meth:`ready` would return something to do."""
        return self._has_output() or self._role.has_sends()

    def ready(self) -> Ready:
        """Collect everything the driver must do now (see :mod:`traft.core.ready`).

        Raises:
            RuntimeError: the previous Ready has not been passed to :meth:`advance`.
        """
        if self._ready_out:
            raise RuntimeError("ready() called again before advance()")
        self._role.flush()
        return self._collect_ready()

    def advance(self, rd: Ready) -> None:
        """Tell the core the driver has done everything ``rd`` asked."""
        if self._advance(rd):
            # A leader's own copy counts toward commitment only now that it is
            # durable (the commit rule, traft.core.leader).
            action = self._role.durable()
            if action is not None:
                self._act(action)

    # -- snapshots (§7) ---------------------------------------------------------

    def begin_snapshot(self) -> SnapshotMeta:
        """Start a snapshot of the applied state (the seed's raft_begin_snapshot).

        Returns the snapshot's metadata; the driver saves its state machine as
        of ``last_applied`` with it, then calls :meth:`end_snapshot`.

        Raises:
            SnapshotInProgress: a snapshot is being taken or loaded.
            NothingToSnapshot: nothing was applied since the last snapshot.
        """
        return snapshots.begin(self)

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
        snapshots.end(self, meta, keep_entries)
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
        snapshots.install(self, term, index, membership)
        return True

    def end_load_snapshot(self) -> None:
        """Finish installing a snapshot (the seed's raft_end_load_snapshot).

        Raises:
            NoSnapshotInProgress: :meth:`begin_load_snapshot` did not start one.
        """
        if not self._loading:
            raise NoSnapshotInProgress("snapshot load")
        self._loading = False

    # -- reads (thesis §6.4) ------------------------------------------------------

    def read_index(self, ctx: object) -> None:
        """Register a linearizable read (ReadIndex, thesis §6.4).

        On the leader, a :class:`~traft.core.ready.ReadReady` event follows
        once a majority has confirmed this leadership (at once under a lease,
        ``Config.lease_reads``); serve the read when the applied index
        reaches the event's index. On a follower that knows a leader, the
        read is forwarded to the leader and ``ReadReady`` follows its answer;
        the driver serves it from this server once its own applied index
        reaches the event's index. A :class:`~traft.core.ready.ReadLost`
        follows instead if leadership is lost first (on a follower: the
        leader changes, refuses, or does not answer within an election
        timeout); retry it.

        Raises:
            NotLeader: this server knows no leader (``leader_id`` None), or is
                a candidate.
            LeaderNotReady: this server is the leader and no entry of its term
                has committed yet (the leader does not yet know the full
                commit index, §8).
        """
        role = self._role
        if isinstance(role, Leader):
            if self._log.term_at(self.commit_index) != self.term:
                raise LeaderNotReady()
            role.read_index(ctx)
            return
        leader = self.leader_id
        if leader is None or leader == self.id or not isinstance(role, Follower):
            raise NotLeader(None)
        self._forwarded.forward(ctx, leader)

    def lease_remaining_ms(self) -> int:
        """How long this leader's read lease still runs (0: none; thesis §6.4.1)."""
        role = self._role
        return role.reads.lease_remaining_ms() if isinstance(role, Leader) else 0

    # -- leadership transfer (thesis §3.10) -------------------------------------------

    def transfer_leadership(self, to: int) -> None:
        """Hand leadership to voting member ``to`` (thesis §3.10).

        Emits ``TransferStarted(to)`` now, then ``TransferFinished(to)`` or
        ``TransferAborted(to, reason)``. Until then this leader refuses
        proposals with :class:`~traft.core.errors.TransferInProgress`. A
        transfer that has not finished within an election timeout is aborted.

        Raises:
            NotLeader: this server is not the leader.
            TransferError: ``to`` is this server, is not a member, is not a
                voting member, or a transfer is already in progress.
        """
        role = self._role
        if not isinstance(role, Leader) or self._removed_at is not None:
            raise NotLeader(self.leader_id if self.leader_id != self.id else None)
        if self._transfer is not None:
            raise TransferError(
                f"a leadership transfer to node {self._transfer.target} is already in progress"
            )
        check_target(self._conf.nodes, self.id, to)
        self._transfer = Transfer(to)
        role.reads.lease_void = True
        self._events.append(TransferStarted(to))
        pr = role.progress.get(to)
        if pr is not None:
            role.transfer_progress(pr)

    # -- diagnostics ------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Raft(id={self.id}, {self.role.value}, term={self.term}, "
            f"last={self._log.last_index}, commit={self.commit_index}, "
            f"applied={self.last_applied})"
        )

    def progress(self) -> dict[int, Progress]:
        """The leader's per-follower progress (empty on other roles)."""
        role = self._role
        return dict(role.progress) if isinstance(role, Leader) else {}
