"""Leadership transfer of a running node (thesis §3.10).

Theory of operation: ``transfer_leadership`` hands the main loop a
:class:`~traft.node.waiters.LeaderTransfer`. The main loop picks the target
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
from typing import TYPE_CHECKING, Any

from traft.core import (
    LeaderChanged,
    NotLeader,
    Role,
    TransferAborted,
    TransferError,
    TransferFinished,
    TransferStarted,
)
from traft.node.errors import NotLeaderError, ProposalTimeout, TransferFailed
from traft.node.waiters import LeaderTransfer, Waiter

if TYPE_CHECKING:
    import trio

    from traft.core import Raft

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


class LeadershipMixin:
    """The leadership-transfer part of :class:`~traft.node.node.Node`."""

    if TYPE_CHECKING:
        id: int
        raft: Raft | None
        _transfers: list[LeaderTransfer]
        _inbox_send: trio.MemorySendChannel[tuple[Any, ...]]

        def _not_leader(self) -> NotLeaderError: ...
        def _check_running(self) -> None: ...
        async def _wait(self, waiter: Waiter, timeout: float, what: str) -> Any: ...

    async def transfer_leadership(self, to: int | None = None, *, timeout: float = 5.0) -> int:
        """Hand leadership to node ``to`` (None: the most up-to-date voting
        follower) and return the new leader's id.

        Proposals are refused while the transfer runs (at most an election
        timeout: then the core gives up and they resume). The answer is the
        id of the first leader other than this node that it learns of:
        normally ``to``, though an election the transfer did not start may
        win first.

        Raises:
            NotLeaderError: this node is not the leader (NoLeaderError: none is known).
            TransferFailed: the core gave the transfer up (the target did not
                catch up or win in time), ``to`` is not a voting member, there
                is no follower to hand over to, or no new leader was seen
                within ``timeout`` seconds.
            NodeStopped: the node is not running.
        """
        self._check_running()
        raft = self.raft
        assert raft is not None
        if raft.role is not Role.LEADER:
            raise self._not_leader()
        if to == self.id:
            raise TransferFailed("this node is the leader already", to)
        waiter = LeaderTransfer(to)
        await self._inbox_send.send(("transfer", waiter))
        try:
            leader: int = await self._wait(waiter, timeout, "leadership transfer")
        except ProposalTimeout:
            raise TransferFailed(f"no new leader within {timeout:g} s", waiter.target) from None
        return leader

    # -- the main loop's side ------------------------------------------------------------

    def _start_transfer(self, waiter: LeaderTransfer) -> None:
        raft = self.raft
        assert raft is not None
        if raft.role is not Role.LEADER:
            leader = raft.leader_id
            if leader is not None and leader != self.id:
                waiter.resolve(leader)  # someone else leads already: nothing to hand over
            else:
                waiter.fail(self._not_leader())
            return
        current = raft.transfer_target
        if current is not None and waiter.target in (None, current):
            waiter.target = current  # join the transfer in progress
            self._transfers.append(waiter)
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
            self._transfers.append(waiter)

    def _on_transfer_event(self, event: object) -> None:
        """React to a transfer event or a leader change (main loop)."""
        if isinstance(event, TransferStarted):
            log.info("node %d: transferring leadership to node %d", self.id, event.to)
        elif isinstance(event, TransferFinished):
            log.info("node %d: leadership handed to node %d", self.id, event.to)
            self._answer_transfers(event.to)
        elif isinstance(event, TransferAborted):
            log.warning(
                "node %d: leadership transfer to node %d aborted: %s",
                self.id,
                event.to,
                event.reason,
            )
            transfers, self._transfers = self._transfers, []
            for waiter in transfers:
                waiter.fail(TransferFailed(str(event.reason), event.to))
        elif isinstance(event, LeaderChanged):
            if event.leader_id is not None and event.leader_id != self.id:
                self._answer_transfers(event.leader_id)

    def _answer_transfers(self, leader: int) -> None:
        transfers, self._transfers = self._transfers, []
        for waiter in transfers:
            waiter.resolve(leader)
