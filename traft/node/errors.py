"""Errors a node raises to its callers (the embedding API and the HTTP layer)."""

from __future__ import annotations


class NodeError(Exception):
    """Base class of the node's errors."""


class NotLeaderError(NodeError):
    """This node is not the leader. ``leader_id`` / ``leader_url`` name the one it knows."""

    def __init__(self, leader_id: int | None, leader_url: str | None = None) -> None:
        self.leader_id = leader_id
        self.leader_url = leader_url
        where = f"node {leader_id}" if leader_id is not None else "unknown"
        super().__init__(f"not the leader; the leader is {where}")


class NoLeaderError(NotLeaderError):
    """No leader is known right now; retry shortly."""

    def __init__(self) -> None:
        super().__init__(None)


class ProposalLost(NodeError):
    """The proposal was overwritten by a new leader's log; safe to retry with the same key."""


class ProposalTimeout(NodeError):
    """The proposal did not commit before the deadline; its outcome is unknown."""


class Overloaded(ProposalTimeout):
    """The leader holds as many unapplied entries as it may (its backlog
    bound, ``Node``'s ``max_unapplied`` and ``max_unapplied_bytes``) and this
    proposal was never proposed: retry after a pause.

    A ProposalTimeout (it did not commit before its deadline, and retrying
    is safe), whose outcome is known: it was not applied."""


class NodeStopped(NodeError):
    """The node is shutting down or was removed from the cluster."""


class MemberChangeError(NodeError):
    """A membership change was refused (with the reason)."""


class LeadershipTransferring(NodeError):
    """The leader is handing leadership to another node and accepts no writes
    meanwhile (at most an election timeout); retry shortly, with the same key."""

    @classmethod
    def to(cls, target: int | None) -> LeadershipTransferring:
        """The error for a transfer to ``target`` (None: not known)."""
        to = f" to node {target}" if target is not None else ""
        return cls(f"leadership is being transferred{to}; retry shortly (same Idempotency-Key)")


class TransferFailed(NodeError):
    """A leadership transfer did not complete: the core gave it up, it timed
    out, or there was no follower to hand over to. ``reason`` says which.
    The leader (if still leader) accepts proposals again."""

    def __init__(self, reason: str, target: int | None = None) -> None:
        self.reason = reason
        self.target = target
        to = f" to node {target}" if target is not None else ""
        super().__init__(f"leadership transfer{to} failed: {reason}")
