"""What a node reports about itself: one read-only record, taken on demand.

Theory of operation: :meth:`Node.metrics_status` copies the few figures a
reader outside the main loop may look at (the metrics collector at scrape
time) into a frozen :class:`NodeStatus`, so that readers depend on this
record, not on the node's internals or its core.
"""

from __future__ import annotations

import attrs


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
