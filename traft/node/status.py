"""What a node reports about itself: one read-only record, taken on demand.

Theory of operation: :meth:`Node.metrics_status` copies the few figures a
reader outside the main loop may look at (the metrics collector at scrape
time) into a frozen :class:`NodeStatus`, so that readers depend on this
record, not on the node's internals or its core.
"""

from __future__ import annotations

from typing import Any

import attrs

from traft.core import Raft


@attrs.frozen(kw_only=True)
class NodeStatus:
    """One node's view of itself at one moment.

    ``role`` is ``"starting"`` before the core runs; the indexes and the
    term are 0 then, and ``leader_id`` is None while no leader is known.
    """

    node_id: int
    role: str
    term: int = 0
    leader_id: int | None = None
    commit_index: int = 0
    applied_index: int = 0
    first_index: int = 0
    last_index: int = 0
    unapplied: int = 0
    unapplied_bytes: int = 0

    @property
    def running(self) -> bool:
        """Whether the core runs (the node has started)."""
        return self.role != "starting"


def take_status(
    node_id: int, raft: Raft | None, unapplied: int, unapplied_bytes: int
) -> NodeStatus:
    """The record of a node whose core is ``raft`` (None: not started yet)."""
    if raft is None:
        return NodeStatus(node_id=node_id, role="starting")
    return NodeStatus(
        node_id=node_id,
        role=raft.role.value,
        term=raft.term,
        leader_id=raft.leader_id,
        commit_index=raft.commit_index,
        applied_index=raft.last_applied,
        first_index=raft.first_index,
        last_index=raft.current_index,
        unapplied=unapplied,
        unapplied_bytes=unapplied_bytes,
    )


def describe(
    node_id: int, raft: Raft, applied: int, leader_url: str | None, members: Any
) -> dict[str, Any]:
    """The JSON-ready summary :meth:`Node.status` answers (``GET /status``)."""
    snapshot = raft.snapshot
    return {
        "id": node_id,
        "role": raft.role.value,
        "term": raft.term,
        "leader_id": raft.leader_id,
        "leader_url": leader_url,
        "commit": raft.commit_index,
        "applied": applied,
        "members": members,
        "log": {"first": raft.first_index, "last": raft.current_index},
        "snapshot": {"index": snapshot.index, "term": snapshot.term} if snapshot else None,
    }
