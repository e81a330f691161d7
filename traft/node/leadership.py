"""Leadership transfer of a running node (thesis §3.10).

Theory of operation: ``Node.transfer_leadership`` hands the main loop a
:class:`~traft.node.waiters.LeaderTransfer`, which :class:`Transfers` starts
and answers. It picks the target
when none was named — the voting follower the leader last heard from whose
log matches furthest (``Raft.progress``), so that it needs the fewest
entries before it can take over — and asks the core to transfer
(``Raft.transfer_leadership``). The core stops taking proposals (they fail
with :class:`~traft.node.errors.LeadershipTransferring`, which the HTTP API
answers with 503 and Retry-After), brings the target's log up to date,
sends it TimeoutNow, and reports ``TransferFinished`` or, after an election
timeout without success, ``TransferAborted`` (proposals resume). The caller
is answered with the new leader's id as soon as this node learns of a
leader other than itself, or fails with
:class:`~traft.node.errors.TransferFailed` on an abort or at its deadline.

Throughout, the node keeps running its main loop: it answers its peers, and
the target's election needs this node's vote like anyone's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from traft.core import (
    LeaderChanged,
    NotLeader,
    Raft,
    Role,
    TransferAborted,
    TransferError,
    TransferFinished,
    TransferStarted,
)
from traft.node.errors import NodeError, TransferFailed
from traft.node.waiters import LeaderTransfer

log = logging.getLogger(__name__)


def transfer_candidate(raft: Raft) -> int | None:
    """The voting follower best placed to take over, or None if there is none.

    Recently heard from first (a follower that does not answer cannot win the
    election TimeoutNow starts), then the furthest ``match_index``, then the
    lowest id (the choice is deterministic).
    """
    progress = raft.progress()
    best: tuple[bool, int, int] | None = None
    chosen = None
    for node_id in sorted(raft.voters()):
        p = progress.get(node_id)
        if node_id == raft.id or p is None:
            continue
        key = (p.recent_active, p.match_index, -node_id)
        if best is None or key > best:
            best, chosen = key, node_id
    return chosen


class Transfers:
    """The callers of ``Node.transfer_leadership`` waiting for a new leader.

    Args:
        node_id: this node's id.
        not_leader: the error for a transfer asked of a node that does not lead.
    """

    def __init__(self, node_id: int, not_leader: Callable[[], NodeError]) -> None:
        self.node_id = node_id
        self._not_leader = not_leader
        self._waiting: list[LeaderTransfer] = []

    def __bool__(self) -> bool:
        """Whether any caller waits for a transfer."""
        return bool(self._waiting)

    def start(self, raft: Raft, waiter: LeaderTransfer) -> None:
        """Start the transfer ``waiter`` asks for, or join the one in progress."""
        if raft.role is not Role.LEADER:
            leader = raft.leader_id
            if leader is not None and leader != self.node_id:
                waiter.resolve(leader)  # someone else leads already: nothing to hand over
            else:
                waiter.fail(self._not_leader())
            return
        current = raft.transfer_target
        if current is not None and waiter.target in (None, current):
            waiter.target = current  # join the transfer in progress
            self._waiting.append(waiter)
            return
        target = waiter.target if waiter.target is not None else transfer_candidate(raft)
        if target is None:
            waiter.fail(TransferFailed("there is no voting follower to hand leadership to"))
            return
        waiter.target = target
        try:
            raft.transfer_leadership(target)
        except NotLeader:
            waiter.fail(self._not_leader())
        except TransferError as exc:
            waiter.fail(TransferFailed(str(exc), target))
        else:
            self._waiting.append(waiter)

    def on_event(self, event: object) -> None:
        """React to a transfer event or a leader change (main loop)."""
        if isinstance(event, TransferStarted):
            log.info("node %d: transferring leadership to node %d", self.node_id, event.to)
        elif isinstance(event, TransferFinished):
            log.info("node %d: leadership handed to node %d", self.node_id, event.to)
            self._answer(event.to)
        elif isinstance(event, TransferAborted):
            log.warning(
                "node %d: leadership transfer to node %d aborted: %s",
                self.node_id,
                event.to,
                event.reason,
            )
            waiting, self._waiting = self._waiting, []
            for waiter in waiting:
                waiter.fail(TransferFailed(str(event.reason), event.to))
        elif isinstance(event, LeaderChanged):
            if event.leader_id is not None and event.leader_id != self.node_id:
                self._answer(event.leader_id)

    def _answer(self, leader: int) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.resolve(leader)

    def fail_all(self, error: BaseException) -> None:
        """Fail every waiting caller (the node stops)."""
        for waiter in self._waiting:
            waiter.fail(error)
        self._waiting = []
