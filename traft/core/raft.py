"""The Raft server: one object per server, driven by time, messages and proposals.

Theory of operation (Ongaro & Ousterhout 2014, "In Search of an
Understandable Consensus Algorithm", Figure 2; Ongaro's thesis for the
extensions). The object never performs I/O and never reads a clock: time
passes only through :meth:`Raft.periodic`, randomness comes only from the
injected ``random.Random``. Everything it wants done is collected and handed
out by :meth:`Raft.ready`; the driver persists, sends and applies, then calls
:meth:`Raft.advance`. Same inputs and seed give the same Ready values.

Role-specific message handling lives in :mod:`traft.core.leader` (the
replication and commit side), :mod:`traft.core.election` (timeouts,
pre-vote, voting) and this module (following, proposals, output); reads in
:mod:`traft.core.reads`, leadership transfer in :mod:`traft.core.transfer`,
snapshot taking and loading in :mod:`traft.core.snapshots`.
Input from peers never raises; misuse by the local caller raises a
:class:`~traft.core.errors.RaftError`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from traft.core.config import Config
from traft.core.election import ElectionMixin
from traft.core.entry import Entry, EntryResponse, EntryStatus, EntryType, membership_data
from traft.core.errors import (
    LeaderNotReady,
    MembershipError,
    NodeIdRemoved,
    NodeUnknown,
    NotLeader,
    OneVotingChangeOnly,
    TransferInProgress,
)
from traft.core.leader import LeaderMixin
from traft.core.log import RaftLog
from traft.core.membership import Configuration, Membership, NodeConfig
from traft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Message,
    PreVote,
    PreVoteResponse,
    ReadIndex,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from traft.core.progress import Progress
from traft.core.reads import ReadsMixin
from traft.core.ready import (
    Event,
    HardState,
    LeaderChanged,
    MembershipChanged,
    Ready,
    RemovedSelf,
    Role,
    RoleChanged,
    SnapshotMeta,
)
from traft.core.snapshots import SnapshotMixin
from traft.core.transfer import TransferMixin

_NORMAL = EntryType.NORMAL
# Entry(...) goes through a Python-level __new__; tuple.__new__ skips it (hot path).
_new = tuple.__new__
_MEMBERSHIP_MIN = int(EntryType.ADD_NONVOTING_NODE)


class Raft(ElectionMixin, LeaderMixin, ReadsMixin, TransferMixin, SnapshotMixin):
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
        self.id = node_id
        self.config = config
        self._rng = rng
        # Persistent state on all servers (Figure 2).
        self.term = 0
        self.voted_for: int | None = None
        self._log = RaftLog()
        # Volatile state on all servers.
        self.commit_index = 0
        self.last_applied = 0
        self.role = Role.FOLLOWER
        self.leader_id: int | None = None
        self._conf = Configuration()
        self._removed_at: int | None = None  # index of the entry that removed this server
        self._inactive: set[int] = set()  # members the driver marked unreachable
        # Durability bookkeeping: entries up to _stable_index are on disk;
        # entries from _unsent_from on have not yet been handed to the driver.
        self._stable_index = 0
        self._unsent_from = 1
        self._handed_index = 0
        self._applying_to = 0
        # Timers (milliseconds of periodic()).
        self._election_elapsed_ms = 0
        self._heartbeat_elapsed_ms = 0
        self._quorum_elapsed_ms = 0
        self._timeout_ms = self._draw_timeout()
        # Snapshots.
        self.snapshot: SnapshotMeta | None = None
        self._snapshotting: SnapshotMeta | None = None
        self._loading = False
        # Output collected for the next Ready.
        self._msgs: list[tuple[int, Message]] = []
        self._events: list[Event] = []
        self._truncate_from: int | None = None
        self._compact_upto: int | None = None
        self._persisted_hs = HardState(0, None)
        self._ready_out = False
        self._init_leader_state()
        self._init_election_state()
        self._init_read_state()
        self._init_transfer_state()

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

    def node_is_active(self, node_id: int) -> bool:
        """Whether a member is active (the seed's raft_node_is_active)."""
        return node_id in self._conf.nodes and node_id not in self._inactive

    def _set_node(self, node: NodeConfig) -> None:
        self._conf.set_node(node)
        if self.role is Role.LEADER and node.node_id != self.id:
            self._ensure_progress(node.node_id)
        if node.node_id == self._transfer_target:
            self._transfer_check_target()

    # -- accessors --------------------------------------------------------------

    @property
    def current_index(self) -> int:
        """Index of the last entry in the log (the seed's raft_get_current_idx)."""
        return self._log.last_index

    @property
    def last_log_term(self) -> int:
        return self._log.last_term

    @property
    def first_index(self) -> int:
        """Index of the first entry still held (after compaction)."""
        return self._log.first_index

    @property
    def log(self) -> RaftLog:
        """The in-memory log (read it; do not change it)."""
        return self._log

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def stable_index(self) -> int:
        """The last index the driver has reported durable."""
        return self._stable_index

    def membership(self) -> Membership:
        """The configuration in force (including uncommitted changes)."""
        return self._conf.membership()

    def voters(self) -> list[int]:
        """Sorted ids of the voting members."""
        return list(self._conf.voters())

    def node(self, node_id: int) -> NodeConfig | None:
        """A member's configuration, or None (the seed's raft_get_node)."""
        return self._conf.nodes.get(node_id)

    def is_member(self) -> bool:
        """Whether this server is in its own configuration."""
        return self.id in self._conf.nodes

    def voting_change_in_progress(self) -> bool:
        """Whether an uncommitted voting change is in the log."""
        return self._conf.voting_change_after(self.commit_index)

    def entry_status(self, resp: EntryResponse) -> EntryStatus:
        """What became of a proposal (the seed's raft_msg_entry_response_committed).

        COMMITTED when the entry at its index is committed and has its term;
        LOST when another entry is committed at its index, or when its index
        was compacted and its term can no longer be checked (a driver that
        needs the answer after compaction follows ``Ready.committed``
        instead; retrying with a session key is always safe); PENDING
        otherwise. An entry that was popped here, or replaced by an entry of
        a later term that is not committed, is PENDING: another server may
        still hold it, win an election and commit it (§5.4.2).
        """
        term = self._log.term_at(resp.index)
        if term is None:
            if resp.index > self._log.last_index:
                return EntryStatus.PENDING  # popped from our log, or never arrived
            return EntryStatus.LOST
        if resp.index > self.commit_index:
            return EntryStatus.PENDING
        return EntryStatus.COMMITTED if term == resp.term else EntryStatus.LOST

    # -- time -------------------------------------------------------------------

    def _draw_timeout(self) -> int:
        # §5.2: election timeouts are chosen randomly from a fixed interval [T, 2T).
        t = self.config.election_timeout_ms
        return t + self._rng.randrange(t)

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
        if self.role is Role.LEADER:
            self._leader_tick(elapsed_ms)
        else:
            self._election_tick()
        if self._transfer_target is not None:
            self._transfer_tick(elapsed_ms)
        if self._forwarded:
            self._expire_forwarded_reads()

    # -- roles ------------------------------------------------------------------

    def _set_leader(self, leader_id: int | None) -> None:
        if leader_id != self.leader_id:
            self.leader_id = leader_id
            self._events.append(LeaderChanged(leader_id, self.term))
            self._lose_forwarded_reads()
            if leader_id is not None:
                self._transfer_leader_seen(leader_id)

    def _set_role(self, role: Role) -> None:
        if role is not self.role:
            if self.role is Role.LEADER:
                self._leave_leadership()
            self.role = role
            self._events.append(RoleChanged(role, self.term))

    def _become_follower(
        self, term: int, leader_id: int | None, *, reset_timer: bool = True
    ) -> None:
        if term > self.term:
            self.term = term
            self.voted_for = None
        self._set_role(Role.FOLLOWER)
        self._set_leader(leader_id)
        self._votes.clear()
        self._pre_votes = None
        if reset_timer:
            self._election_elapsed_ms = 0
            self._timeout_ms = self._draw_timeout()

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
            if self.role is Role.LEADER:
                self._remind_removed(from_id)
            if term > self.term:
                return
        if isinstance(msg, PreVote):
            # Never adopt a pre-vote's term: nobody is in it (election rule 3).
            self._recv_pre_vote(from_id, msg)
            return
        if isinstance(msg, PreVoteResponse) and (msg.vote_granted or term <= self.term):
            self._recv_pre_vote_response(from_id, msg)
            return
        if term > self.term:
            if isinstance(msg, RequestVote) and not msg.leader_transfer and self._leader_is_fresh():
                # §4.2.3 (thesis): ignore disruptive candidates while a leader is alive.
                return
            leader = msg.leader_id if isinstance(msg, (AppendEntries, TimeoutNow)) else None
            if self.role is Role.LEADER and from_id == self._transfer_target:
                # The transfer target's election (or leadership) deposes us: the
                # transfer goes on until we hear from it as leader.
                self._transfer_handed_off = True
            # Figure 2: a follower's timer restarts on hearing from the leader
            # or granting a vote, not on a candidate's higher term alone (that
            # vote may be refused). Restarting it let candidates that cannot
            # win, and removed servers, keep the only server that can win
            # (the one with the longest log) from ever timing out.
            reset = not isinstance(msg, RequestVote) or self.role is Role.LEADER
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
        if isinstance(msg, AppendEntries):
            self._recv_append(from_id, msg)
        elif isinstance(msg, AppendEntriesResponse):
            if self.role is Role.LEADER:
                self._recv_append_response(from_id, msg)
        elif isinstance(msg, RequestVote):
            self._recv_vote(from_id, msg)
        elif isinstance(msg, RequestVoteResponse):
            self._recv_vote_response(from_id, msg)
        elif isinstance(msg, ReadIndex):
            self._recv_read_index(from_id, msg)
        elif isinstance(msg, ReadIndexResponse):
            self._recv_read_index_response(from_id, msg)
        elif isinstance(msg, TimeoutNow):
            self._recv_timeout_now()

    def _recv_timeout_now(self) -> None:
        # Thesis §3.10: the transfer target starts an election at once,
        # skipping the pre-vote; its RequestVote says why (election rule 6).
        if self.role is not Role.LEADER and self._can_campaign():
            self._campaign(transfer=True)

    def _ae_response(self, success: bool, index: int, seq: int) -> AppendEntriesResponse:
        return AppendEntriesResponse(
            term=self.term,
            success=success,
            current_index=index,
            commit_index=self.commit_index,
            seq=seq,
        )

    def _recv_append(self, from_id: int, msg: AppendEntries) -> None:
        # Same term: whoever sent it is the leader (§5.2 election safety).
        if self.role is not Role.FOLLOWER:
            self._become_follower(self.term, msg.leader_id)
        self._set_leader(msg.leader_id)
        self._election_elapsed_ms = 0
        self._pre_votes = None
        log = self._log
        prev = msg.prev_log_index
        entries = msg.entries
        vouched = prev + len(entries)
        if prev < log.base_index:
            # Entries up to base_index are compacted and committed, so they match
            # the leader's; skip them rather than appending them a second time.
            entries = entries[log.base_index - prev :]
            prev = log.base_index
            prev_term: int | None = log.base_term
        else:
            prev_term = log.term_at(prev)
            if prev_term != msg.prev_log_term:
                # Figure 2, receiver rule 2: reply false; hint where the logs may agree.
                self._msgs.append(
                    (from_id, self._ae_response(False, self._reject_hint(msg), msg.seq))
                )
                return
        if entries:
            self._append_from_leader(prev, entries)
        # Figure 2 receiver rule 5, bounded by what this request vouched for:
        # never the end of our own log, which may still hold stale entries.
        new_commit = min(msg.leader_commit, vouched)
        if new_commit > self.commit_index:
            self.commit_index = new_commit
        self._msgs.append((from_id, self._ae_response(True, max(vouched, log.base_index), msg.seq)))

    def _reject_hint(self, msg: AppendEntries) -> int:
        # The highest index at which our log may agree with the leader's: the
        # leader's entries before prev have terms <= prev_log_term, so ours with
        # a larger term cannot match. Committed entries always match.
        log = self._log
        floor = max(self.commit_index, log.base_index)
        i = min(msg.prev_log_index - 1, log.last_index)
        while i > floor:
            term = log.term_at(i)
            if term is not None and term <= msg.prev_log_term:
                break
            i -= 1
        return max(i, floor)

    def _append_from_leader(self, prev: int, entries: Sequence[Entry]) -> None:
        log = self._log
        last = log.last_index
        if entries[0].index != prev + 1:
            return  # malformed: indexes do not continue prev
        if prev == last:
            self._append(entries)
            return
        # Figure 2 receiver rules 3 and 4: skip what we already have, cut at the
        # first conflict, append the rest.
        for k, entry in enumerate(entries):
            if entry.index > last:
                self._append(entries[k:])
                return
            if log.term_at(entry.index) != entry.term:
                self._truncate(entry.index)
                self._append(entries[k:])
                return

    def _truncate(self, index: int) -> None:
        assert index > self.commit_index, f"committed entry {index} would be popped"
        self._log.truncate_from(index)
        for node_id, node in self._conf.undo_from(index):
            self._events.append(MembershipChanged(node_id, node))
        if self._removed_at is not None and self._removed_at >= index:
            self._removed_at = None
        if index <= self._handed_index:
            self._truncate_from = (
                index if self._truncate_from is None else min(index, self._truncate_from)
            )
            self._handed_index = index - 1
        self._unsent_from = min(self._unsent_from, index)
        self._stable_index = min(self._stable_index, index - 1)

    def _append(self, entries: Sequence[Entry]) -> None:
        self._log.append(entries)
        for entry in entries:
            if entry.type >= _MEMBERSHIP_MIN:
                self._apply_membership(entry, announce=True)

    def _apply_membership(self, entry: Entry, *, announce: bool) -> None:
        # The seed's semantics: a membership entry takes effect when appended.
        change = self._conf.apply_entry(entry)
        if change is None:
            return
        node_id, node = change
        if node is None and node_id == self.id:
            self._removed_at = entry.index
        if announce:
            self._events.append(MembershipChanged(node_id, node))
        if self.role is Role.LEADER:
            self._leader_membership_changed(node_id, node, entry.index)
        if node_id == self._transfer_target:
            self._transfer_check_target()

    # -- input: proposals -------------------------------------------------------

    def _check_proposable(self) -> None:
        if self.role is not Role.LEADER or self._removed_at is not None:
            raise NotLeader(self.leader_id if self.leader_id != self.id else None)
        if self._transfer_target is not None:
            # Thesis §3.10: the leader stops accepting client requests.
            raise TransferInProgress(self._transfer_target)

    def _removal_committed(self, node_id: int) -> bool:
        """Whether ``node_id`` (among the removed ids) was removed by a committed entry."""
        return all(n != node_id for n, _ in self._conf.pending_removals(self.commit_index))

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
        self._check_proposable()
        index = self._log.last_index + 1
        term = self.term
        if ids is None:
            bits = self._rng.getrandbits
            ids = [bits(63) for _ in datas]
        elif len(ids) != len(datas):
            raise ValueError("ids and datas differ in length")
        entries = [
            _new(Entry, (term, index + k, ids[k], _NORMAL, data)) for k, data in enumerate(datas)
        ]
        self._log.append(entries)
        return [EntryResponse(e.id, term, e.index) for e in entries]

    def recv_entries_batch(self, datas: Sequence[bytes]) -> tuple[int, int]:
        """Propose many entries; return their ``(term, first_index)``.

        The same as :meth:`recv_entries` without an :class:`EntryResponse`
        per entry: entry ``k`` of ``datas`` gets index ``first_index + k``.

        Raises:
            NotLeader: this server is not the leader.
            TransferInProgress: a leadership transfer is in progress (a
                NotLeader naming no leader: retry shortly).
        """
        self._check_proposable()
        first = self._log.last_index + 1
        term = self.term
        bits = self._rng.getrandbits
        self._log.append(
            [
                _new(Entry, (term, first + k, bits(63), _NORMAL, data))
                for k, data in enumerate(datas)
            ]
        )
        return term, first

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
        self._check_proposable()
        kind = EntryType(kind)
        if not kind.is_membership:
            raise MembershipError(f"{kind.name} is not a membership entry type")
        current = self._conf.nodes.get(node_id)
        if self._conf.change_pending(node_id, self.commit_index):
            # Removing and re-adding the same node must not race (seed regression).
            raise OneVotingChangeOnly()
        if kind is not EntryType.REMOVE_NODE and node_id in self._conf.removed:
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
                if self._conf.voters() == [node_id]:
                    raise MembershipError(f"node {node_id} is the last voting member")
            if self.voting_change_in_progress():
                raise OneVotingChangeOnly()
            if self._log.term_at(self.commit_index) != self.term:
                # Ongaro, raft-dev 2015 ("bug in single-server membership
                # changes"): until an entry of its term commits, a new leader
                # may not know of a change a previous leader appended; its own
                # change would then make two configurations whose quorums
                # need not overlap.
                raise LeaderNotReady()
        entry = Entry(
            self.term,
            self._log.last_index + 1,
            self._rng.getrandbits(63),
            kind,
            membership_data(node_id, context),
        )
        self._append([entry])
        return EntryResponse(entry.id, entry.term, entry.index)

    # -- output -----------------------------------------------------------------

    def _hard_state_changed(self) -> bool:
        # Compared field by field: has_ready() runs once per input, and a
        # HardState built only to compare showed up in the simulator's profile.
        persisted = self._persisted_hs
        return self.term != persisted.term or self.voted_for != persisted.voted_for

    def has_ready(self) -> bool:
        """Whether :meth:`ready` would return something to do."""
        return bool(
            self._msgs
            or self._events
            or self._unsent_from <= self._log.last_index
            or self._truncate_from is not None
            or self._compact_upto is not None
            or (self.commit_index > self._applying_to and self._snapshotting is None)
            or self._hard_state_changed()
            or (self.role is Role.LEADER and self._leader_has_sends())
        )

    def ready(self) -> Ready:
        """Collect everything the driver must do now (see :mod:`traft.core.ready`).

        Raises:
            RuntimeError: the previous Ready has not been passed to :meth:`advance`.
        """
        if self._ready_out:
            raise RuntimeError("ready() called again before advance()")
        if self.role is Role.LEADER:
            self._flush_appends()
        hard_state = HardState(self.term, self.voted_for) if self._hard_state_changed() else None
        log = self._log
        entries = (
            log.slice(self._unsent_from, log.last_index + 1)
            if self._unsent_from <= log.last_index
            else []
        )
        if entries:
            self._unsent_from = log.last_index + 1
            self._handed_index = log.last_index
        committed: list[Entry] = []
        if self.commit_index > self._applying_to and self._snapshotting is None:
            lo = max(self._applying_to + 1, log.first_index)
            committed = log.slice(lo, self.commit_index + 1)
            removed = self._removed_at
            if removed is not None and self._applying_to < removed <= self.commit_index:
                self._events.append(RemovedSelf(removed))
            self._applying_to = self.commit_index
        rd = Ready(
            hard_state=hard_state,
            truncate_from=self._truncate_from,
            entries=entries,
            messages=self._msgs,
            committed=committed,
            events=self._events,
            compact_upto=self._compact_upto,
        )
        self._msgs = []
        self._events = []
        self._truncate_from = None
        self._compact_upto = None
        self._ready_out = True
        return rd

    def advance(self, rd: Ready) -> None:
        """Tell the core the driver has done everything ``rd`` asked."""
        self._ready_out = False
        if rd.hard_state is not None:
            self._persisted_hs = rd.hard_state
        if rd.entries:
            last = rd.entries[-1]
            if self._log.term_at(last.index) == last.term and last.index > self._stable_index:
                self._stable_index = last.index
                if self.role is Role.LEADER:
                    self._maybe_commit()
        if rd.committed:
            self.last_applied = max(self.last_applied, rd.committed[-1].index)
            # Undo records are kept until applied, not only committed: a
            # snapshot at the applied index needs the configuration there.
            self._conf.prune_upto(self.last_applied)

    # -- diagnostics ------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Raft(id={self.id}, {self.role.value}, term={self.term}, "
            f"last={self._log.last_index}, commit={self.commit_index}, "
            f"applied={self.last_applied})"
        )

    def progress(self) -> dict[int, Progress]:
        """The leader's per-follower progress (empty on other roles)."""
        return dict(self._progress)

    def _leave_leadership(self) -> None:
        self._drop_reads()
        self._progress.clear()
        self._transfer_leadership_lost()
