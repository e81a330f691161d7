"""Errors raised by the consensus core.

Only *local* misuse raises: a caller asking a follower to propose, a second
voting change while one is in flight, a snapshot while one is being taken.
Input from peers never raises; stale, duplicated and reordered messages are
ordinary input. A broken internal invariant raises ``AssertionError``, which
is a bug and is never caught.
"""

from __future__ import annotations


class RaftError(Exception):
    """Base class of every error the core raises on purpose."""


class NotLeader(RaftError):
    """This server is not the leader; ``leader_id`` is the one it knows, or None."""

    def __init__(self, leader_id: int | None) -> None:
        self.leader_id = leader_id
        where = f"node {leader_id}" if leader_id is not None else "unknown"
        super().__init__(f"not the leader; the leader is {where}")


class OneVotingChangeOnly(RaftError):
    """A voting membership change is already in the log and not yet committed."""

    def __init__(self) -> None:
        super().__init__("a voting membership change is already in progress; wait for it to commit")


class SnapshotInProgress(RaftError):
    """``begin_snapshot`` was called while a snapshot is being taken or loaded."""

    def __init__(self) -> None:
        super().__init__("a snapshot is already in progress")


class NothingToSnapshot(RaftError):
    """``begin_snapshot`` found no applied entry beyond the last snapshot."""

    def __init__(self) -> None:
        super().__init__("no applied entries beyond the last snapshot")


class NoSnapshotInProgress(RaftError):
    """``end_snapshot`` or ``end_load_snapshot`` without the matching begin."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no {what} in progress")


class MembershipError(RaftError):
    """A membership change that makes no sense for the current configuration."""


class NodeIdRemoved(MembershipError):
    """Adding a node whose id was removed from the cluster: ids are never reused.

    A removed server may still hold its old log, vote and term; under its
    old id the others could not tell it from the member it was (etcd refuses
    the same way, ``ErrIDRemoved``). Wipe its data directory and add it under
    a new id.
    """

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        super().__init__(
            f"node {node_id} was removed from the cluster and its id cannot be reused: "
            f"wipe that node's data directory and add it under a new id"
        )


class LeaderNotReady(RaftError):
    """A new leader cannot serve reads or change membership until an entry of its term commits."""

    def __init__(self) -> None:
        super().__init__("the leader has not yet committed an entry of its term")


class NodeUnknown(RaftError):
    """The node id is not part of this server's configuration."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        super().__init__(f"node {node_id} is not in the configuration")


class TransferInProgress(NotLeader):
    """A leadership transfer is in progress: proposals are refused until it ends.

    A :class:`NotLeader` with ``leader_id`` None, so drivers treat it as
    "no leader right now" and retry shortly (thesis §3.10: the leader stops
    accepting client requests while it hands leadership over).
    """

    def __init__(self, target: int) -> None:
        self.target = target
        RaftError.__init__(
            self,
            f"leadership is being transferred to node {target}; retry the request shortly",
        )
        self.leader_id = None


class TransferError(RaftError):
    """``transfer_leadership`` cannot start: bad target, or a transfer already running."""
