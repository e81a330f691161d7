"""What a leader knows about each follower's log (etcd's tracker, simplified).

Theory of operation: a follower is in one of three states.

* PROBE: the leader does not know where the logs agree. It sends one
  AppendEntries and waits for the answer (or the next heartbeat) before
  sending another; a rejection moves ``next_index`` back to the follower's
  hint in one step.
* REPLICATE: the logs agree up to ``match_index``; the leader pipelines
  entries optimistically, advancing ``next_index`` as it sends, up to
  ``max_inflight_entries`` beyond ``match_index``.
* SNAPSHOT: the entries the follower needs are compacted; the driver was
  asked to send snapshot ``pending_snapshot``. Heartbeats probe that
  snapshot's index and term (not the leader's newest snapshot, which the
  follower may never get). The follower leaves this state as soon as it can
  be caught up from the log: when it reports an index from which the leader
  still holds every later entry, whichever snapshot it installed (etcd does
  the same), so a leader that snapshots faster than a transfer takes does
  not send snapshot after snapshot.

Invariant: match_index < next_index.
Stale responses never move ``match_index`` backwards (it only grows).
"""

from __future__ import annotations

import enum


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


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
        self.acked_seq = 0
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

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.next_index = max(self.next_index, self.match_index + 1)

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.probe_sent = False
        self.next_index = max(self.next_index, self.match_index + 1)

    def become_snapshot(self, index: int, term: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.pending_snapshot_term = term
        self.snapshot_elapsed_ms = 0

    def update_match(self, index: int) -> bool:
        """Record that the follower's log agrees up to ``index``; False if stale."""
        if index <= self.match_index:
            return False
        self.match_index = index
        if self.next_index <= index:
            self.next_index = index + 1
        return True
