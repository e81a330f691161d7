"""What every server keeps, whatever its role: :class:`ServerState`.

Theory of operation. Figure 2's "persistent state on all servers" (term,
vote, log) and "volatile state on all servers" (commit and applied
indexes), the configuration (:mod:`traft.core.membership`), the durability
bookkeeping behind the Ready contract (:mod:`traft.core.ready`: what was
handed out, what the driver reported durable), and the output collected for
the next Ready live here, with the operations every role needs on them:
appending and popping entries (a membership entry takes effect when
appended and is undone when popped), and assembling a Ready.

:class:`~traft.core.raft.Raft` is a ``ServerState`` and adds the public API,
the role changes and the message dispatch. What only one role needs lives in
that role's object, which holds this state by reference:
:class:`~traft.core.leader.Leader`, :class:`~traft.core.follower.Follower`,
:class:`~traft.core.election.Candidate`. The attributes with a leading
underscore are shared inside traft.core only; they are not public API.

Persist before send: a leader's own copy of an entry counts toward
commitment only from ``_stable_index`` (what ``advance()`` reported
durable), never from ``_log.last_index``; :mod:`traft.core.leader` applies
the commit rule.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from traft.core.config import Config
from traft.core.entry import Entry, EntryResponse, EntryStatus, EntryType
from traft.core.log import RaftLog
from traft.core.membership import Configuration, Membership, NodeConfig
from traft.core.messages import AppendEntriesResponse, Message
from traft.core.ready import (
    Event,
    HardState,
    MembershipChanged,
    Ready,
    RemovedSelf,
    Role,
    SnapshotMeta,
)
from traft.core.transfer import Transfer

_MEMBERSHIP_MIN = int(EntryType.ADD_NONVOTING_NODE)


class ServerState:
    """The state every Raft server keeps, and the log and output operations on it."""

    def __init__(self, node_id: int, config: Config, rng: random.Random) -> None:
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
        # Time: the core's own clock (the sum of every periodic(), never a
        # real clock) and the election timer (§5.2).
        self._now_ms = 0
        self._election_elapsed_ms = 0
        self._timeout_ms = self._draw_timeout()
        # Election rule 7 (traft.core.election): with lease reads, a server
        # starts as if it had just heard from a leader, for one election timeout.
        self._boot_guard_ms = config.election_timeout_ms if config.lease_reads else 0
        # The last heartbeat round (seq) this server sent as leader: a new
        # leadership numbers its rounds on from there, so no number is reused.
        self._last_seq = 0
        # A leadership transfer started here (traft.core.transfer); it
        # outlives the leadership it hands over, until the target is heard from.
        self._transfer: Transfer | None = None
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

    # -- queries ----------------------------------------------------------------

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

    @property
    def transfer_target(self) -> int | None:
        """The node a transfer started here is handing leadership to, or None.

        It stays set after this server stepped down for the target's election
        until the transfer finishes (the target is heard from as leader) or
        is aborted.
        """
        return None if self._transfer is None else self._transfer.target

    @property
    def snapshot_in_progress(self) -> bool:
        return self._snapshotting is not None or self._loading

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

    def node_is_active(self, node_id: int) -> bool:
        """Whether a member is active (the seed's raft_node_is_active)."""
        return node_id in self._conf.nodes and node_id not in self._inactive

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

    # -- rules every role uses ------------------------------------------------------

    def _draw_timeout(self) -> int:
        # §5.2: election timeouts are chosen randomly from a fixed interval [T, 2T).
        t = self.config.election_timeout_ms
        return t + self._rng.randrange(t)

    def _is_majority(self, granted: set[int]) -> bool:
        voters = self._conf.voters()
        return sum(1 for v in voters if v in granted) > len(voters) // 2

    def _log_up_to_date(self, last_index: int, last_term: int) -> bool:
        # §5.4.1: compare the terms of the last entries, then the lengths.
        our_term = self._log.last_term
        return last_term > our_term or (
            last_term == our_term and last_index >= self._log.last_index
        )

    def _ae_response(self, success: bool, index: int, seq: int) -> AppendEntriesResponse:
        return AppendEntriesResponse(
            term=self.term,
            success=success,
            current_index=index,
            commit_index=self.commit_index,
            seq=seq,
        )

    def _removal_committed(self, node_id: int) -> bool:
        """Whether ``node_id`` (among the removed ids) was removed by a committed entry."""
        return all(n != node_id for n, _ in self._conf.pending_removals(self.commit_index))

    # -- the log -------------------------------------------------------------------

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
        self._membership_changed(node_id, node, entry.index)

    def _membership_changed(self, node_id: int, node: NodeConfig | None, index: int) -> None:
        """A membership entry at ``index`` changed ``node_id`` (``node`` None: removed).

        Here: a transfer's target must stay a voting member. Raft extends
        this to tell the leader's replication.
        """
        transfer = self._transfer
        if transfer is not None and node_id == transfer.target:
            reason = transfer.target_changed(self._conf.nodes.get(node_id))
            if reason is not None:
                self._abort_transfer(reason)

    def _abort_transfer(self, reason: str) -> None:
        transfer = self._transfer
        if transfer is not None:
            self._transfer = None
            self._events.append(transfer.aborted(reason))

    # -- output --------------------------------------------------------------------

    def _hard_state_changed(self) -> bool:
        # Compared field by field: has_ready() runs once per input, and a
        # HardState built only to compare showed up in the simulator's profile.
        persisted = self._persisted_hs
        return self.term != persisted.term or self.voted_for != persisted.voted_for

    def _has_output(self) -> bool:
        """Whether a Ready would hold something, leaving aside sends a leader has yet to make."""
        return bool(
            self._msgs
            or self._events
            or self._unsent_from <= self._log.last_index
            or self._truncate_from is not None
            or self._compact_upto is not None
            or (self.commit_index > self._applying_to and self._snapshotting is None)
            or self._hard_state_changed()
        )

    def _collect_ready(self) -> Ready:
        """Hand out everything collected (Raft.ready checked the last one was advanced)."""
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

    def _advance(self, rd: Ready) -> bool:
        """Take the driver's word that ``rd`` is done; True if more entries became durable."""
        self._ready_out = False
        if rd.hard_state is not None:
            self._persisted_hs = rd.hard_state
        stable = False
        if rd.entries:
            last = rd.entries[-1]
            if self._log.term_at(last.index) == last.term and last.index > self._stable_index:
                self._stable_index = last.index
                stable = True
        if rd.committed:
            self.last_applied = max(self.last_applied, rd.committed[-1].index)
            # Undo records are kept until applied, not only committed: a
            # snapshot at the applied index needs the configuration there.
            self._conf.prune_upto(self.last_applied)
        return stable
