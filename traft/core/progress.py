"""What a leader knows about each follower's log, and the rules that move it (§5.3).

Theory of operation (etcd's ``tracker``, simplified). Every replication rule
about one follower lives here, so each can be tested alone
(tests/core/test_progress.py); the leader (:mod:`traft.core.leader`) builds
and sends the messages the rules ask for. A follower is in one of three
states.

* PROBE: the leader does not know where the logs agree. It sends one
  AppendEntries and waits for the answer (or the next heartbeat round)
  before sending another; a rejection moves ``next_index`` back to the
  follower's hint in one step (:meth:`Progress.on_reject`).
* REPLICATE: the logs agree up to ``match_index``; the leader pipelines
  entries optimistically, advancing ``next_index`` as it sends
  (:meth:`Progress.sent`), up to ``max_inflight_entries`` beyond
  ``match_index`` (flow control, :meth:`Progress.can_send`). Entries in
  flight with no progress for a whole heartbeat interval were lost: the
  next round resends from ``match_index`` as a probe (stall detection,
  :meth:`Progress.begin_round`).
* SNAPSHOT: the entries the follower needs are compacted; the driver was
  asked to send snapshot ``pending_snapshot``. Heartbeats probe that
  snapshot's index and term (not the leader's newest snapshot, which the
  follower may never get); the request is repeated every
  ``snapshot_resend_ms``. The follower leaves this state as soon as it can
  be caught up from the log: when it reports an index from which the leader
  still holds every later entry, whichever snapshot it installed (etcd does
  the same), so a leader that snapshots faster than a transfer takes does
  not send snapshot after snapshot.

The rules that take the leader's log as input take the range of indexes
whose terms it still holds, ``log_base..log_last`` (``RaftLog.base_index``
and ``RaftLog.last_index``).

Invariant: match_index < next_index.
Stale responses never move ``match_index`` backwards (it only grows).
"""

from __future__ import annotations

import enum


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


_PROBE = ProgressState.PROBE
_REPLICATE = ProgressState.REPLICATE
_SNAPSHOT = ProgressState.SNAPSHOT


class Progress:
    """Replication state of one follower, kept by the leader."""

    __slots__ = (
        "node_id",
        "match_index",
        "next_index",
        "state",
        "probe_sent",
        "acked_seq",
        "recent_active",
        "pending_snapshot",
        "pending_snapshot_term",
        "snapshot_elapsed_ms",
        "sufficient_logs_reported",
        "removal_index",
        "stall_mark",
    )

    def __init__(self, node_id: int, next_index: int) -> None:
        self.node_id = node_id
        self.match_index = 0
        self.next_index = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        # The newest heartbeat round (seq) the follower answered: confirms
        # leadership for reads (traft.core.reads).
        self.acked_seq = 0
        # Heard from since the last check-quorum (thesis §6.2).
        self.recent_active = True
        self.pending_snapshot = 0
        self.pending_snapshot_term = 0
        self.snapshot_elapsed_ms = 0
        self.sufficient_logs_reported = False
        # Set while the node is removed by an entry the leader holds: the leader
        # keeps replicating until the node has learnt its removal committed.
        self.removal_index: int | None = None
        # match_index at the previous heartbeat; unchanged with entries in
        # flight means something was lost.
        self.stall_mark = -1

    def __repr__(self) -> str:
        return (
            f"Progress(node={self.node_id}, {self.state.value}, "
            f"match={self.match_index}, next={self.next_index})"
        )

    # -- state changes ------------------------------------------------------------

    def become_probe(self) -> None:
        self.state = _PROBE
        self.probe_sent = False
        self.next_index = max(self.next_index, self.match_index + 1)

    def become_replicate(self) -> None:
        self.state = _REPLICATE
        self.probe_sent = False
        self.next_index = max(self.next_index, self.match_index + 1)

    def become_snapshot(self, index: int, term: int) -> None:
        """The driver is asked to send snapshot (``index``, ``term``) to this follower."""
        self.state = _SNAPSHOT
        self.pending_snapshot = index
        self.pending_snapshot_term = term
        self.snapshot_elapsed_ms = 0

    # -- sending (flow control) -----------------------------------------------------

    def can_send(self, last: int, max_inflight: int) -> bool:
        """Whether the leader, whose log ends at ``last``, should send an AppendEntries now.

        REPLICATE: while entries are missing and fewer than ``max_inflight``
        are in flight beyond ``match_index``. PROBE: once per probe (until an
        answer or the next heartbeat round), when the follower may lack
        anything. SNAPSHOT: never (heartbeats probe the snapshot).
        """
        state = self.state
        if state is _REPLICATE:
            return self.next_index <= last and self.next_index - 1 - self.match_index < max_inflight
        if state is _PROBE and not self.probe_sent:
            return self.next_index <= last or self.match_index < last
        return False

    def send_limit(self, last: int, max_entries: int, max_inflight: int) -> int:
        """One past the last index the next AppendEntries may carry (before byte limits)."""
        hi = min(last + 1, self.next_index + max_entries)
        if self.state is _REPLICATE:
            hi = min(hi, self.match_index + max_inflight + 1)
        return hi

    def sent(self, prev: int, count: int) -> None:
        """An AppendEntries after ``prev`` with ``count`` entries went out.

        REPLICATE advances ``next_index`` past them at once (optimistic,
        pipelined); PROBE waits for the answer before sending again.
        """
        if self.state is _REPLICATE:
            self.next_index = prev + count + 1
        else:
            self.probe_sent = True

    def begin_round(self, log_base: int, log_last: int) -> bool:
        """A heartbeat round starts: True if it must carry an AppendEntries probe.

        False means an empty heartbeat: at the pending snapshot in SNAPSHOT
        state, else at ``match_index``. A probe whose answer was lost may go
        again; a REPLICATE follower whose ``match_index`` has not moved for a
        whole round with entries in flight has lost some, and so has one
        whose ``match_index`` the leader no longer holds (compacted): both
        are probed again from ``match_index``.
        """
        state = self.state
        if state is _PROBE:
            self.probe_sent = False
            probe = True
        elif state is _SNAPSHOT:
            probe = False
        elif self.next_index - 1 > self.match_index and self.match_index == self.stall_mark:
            self.next_index = self.match_index + 1
            self.become_probe()
            probe = True
        elif not log_base <= self.match_index <= log_last:
            self.become_probe()
            probe = True
        else:
            probe = False
        self.stall_mark = self.match_index
        return probe

    def snapshot_tick(self, elapsed_ms: int, resend_ms: int) -> bool:
        """Time passed; True when the pending snapshot should be asked for again."""
        if self.state is not _SNAPSHOT:
            return False
        self.snapshot_elapsed_ms += elapsed_ms
        return self.snapshot_elapsed_ms >= resend_ms

    # -- answers ----------------------------------------------------------------------

    def update_match(self, index: int) -> bool:
        """Record that the follower's log agrees up to ``index``; False if stale."""
        if index <= self.match_index:
            return False
        self.match_index = index
        if self.next_index <= index:
            self.next_index = index + 1
        return True

    def on_success(self, index: int, log_base: int, log_last: int) -> bool:
        """The follower accepted entries up to ``index``; True if ``match_index`` grew.

        A PROBE follower starts REPLICATE; a SNAPSHOT follower too once the
        leader holds every entry after its ``match_index``.
        """
        advanced = self.update_match(index)
        state = self.state
        if state is _PROBE:
            self.become_replicate()
        elif state is _SNAPSHOT and log_base <= self.match_index <= log_last:
            # The follower installed a snapshot (perhaps an older one than
            # pending) and the leader holds every entry after its match:
            # replicate from there instead of waiting for another snapshot.
            self.next_index = self.match_index + 1
            self.become_replicate()
        return advanced

    def on_reject(self, hint: int, log_base: int, log_last: int) -> None:
        """The follower refused an AppendEntries; its log may agree up to ``hint``.

        A hint below ``match_index`` is stale and ignored. Otherwise the
        follower is probed from ``hint + 1`` (back-off in one step, §5.3); in
        SNAPSHOT state only if the leader holds the entries after ``hint``
        (else the follower still needs the snapshot being sent).
        """
        if hint < self.match_index:
            return
        if self.state is _SNAPSHOT:
            if not log_base <= hint <= log_last:
                return
            # The follower's log may agree with ours where we still hold
            # every later entry (it installed an older snapshot than the
            # pending one): probe there instead of chasing snapshots.
            self.next_index = hint + 1
        else:
            self.next_index = min(self.next_index, hint + 1)
        self.become_probe()
