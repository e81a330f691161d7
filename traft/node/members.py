"""Membership changes of a running node (§6, seed semantics).

Theory of operation: ``add_member`` proposes ADD_NONVOTING_NODE with the new
node's addresses as the entry's context; when the core reports
``NodeHasSufficientLogs`` the leader proposes ADD_NODE (retrying on every
tick while another voting change is in flight), and the caller is answered
once the promotion has committed. ``remove_member`` proposes REMOVE_NODE and
answers once it is applied.

A change is done only when its own entry, same index and same term, is
known committed; one whose entry a new leader replaced fails with
ProposalLost. When a snapshot from the leader covered the entry before this
node applied it (a deposed leader catching up), its term can no longer be
checked, and the snapshot's configuration answers instead: ids are never
reused, so a removal committed if and only if the id is among the removed
ids, an addition if and only if the id is a member or removed (the outcome
the caller asked for, by this entry or an equal one). When the
configuration cannot tell, the terms may (as for proposals,
:func:`~traft.node.waiters.covered_by_snapshot`); otherwise the change
fails as unknown (ProposalTimeout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from traft.core import EntryType, NotLeader, RaftError, Role
from traft.node.config import Address, format_address, parse_address
from traft.node.errors import (
    MemberChangeError,
    NodeError,
    NotLeaderError,
    ProposalLost,
    ProposalTimeout,
)
from traft.node.waiters import MemberChange, Waiter

if TYPE_CHECKING:
    import trio

    from traft.core import Raft


def member_context(peer: Address, http: Address) -> bytes:
    """The context a membership entry carries: the node's two addresses."""
    return f"{format_address(peer)}|{format_address(http)}".encode()


def parse_context(context: bytes) -> tuple[Address, Address] | None:
    try:
        peer, http = context.decode().split("|")
        return parse_address(peer, "peer"), parse_address(http, "http")
    except ValueError:
        return None


class MembershipMixin:
    """The membership part of :class:`~traft.node.node.Node`."""

    if TYPE_CHECKING:
        raft: Raft | None
        _applied: int
        _promote: set[int]
        _member_waiters: list[MemberChange]
        _inbox_send: trio.MemorySendChannel[tuple[Any, ...]]

        def _not_leader(self) -> NotLeaderError: ...
        def _check_running(self) -> None: ...
        async def _wait(self, waiter: Waiter, timeout: float, what: str) -> Any: ...

    def _start_member_change(self, change: MemberChange) -> None:
        raft = self.raft
        assert raft is not None
        try:
            resp = raft.propose_membership(change.kind, change.node_id, change.context)
        except NotLeader:
            change.fail(self._not_leader())
            return
        except RaftError as exc:
            change.fail(MemberChangeError(str(exc)))
            return
        change.index = resp.index
        change.term = resp.term
        self._member_waiters.append(change)

    def _try_promote(self, node_id: int) -> None:
        raft = self.raft
        assert raft is not None
        node = raft.node(node_id)
        if raft.role is not Role.LEADER or node is None or node.voting:
            self._promote.discard(node_id)
            return
        try:
            raft.propose_membership(EntryType.ADD_NODE, node_id, node.context)
            self._promote.discard(node_id)
        except RaftError:
            pass  # another change in flight: try again on the next tick

    def _check_member_waiters(self) -> None:
        raft = self.raft
        assert raft is not None
        pending = []
        for change in self._member_waiters:
            if change.done:
                continue
            if not change.committed:
                fate = self._entry_fate(change)
                if fate is None:
                    pending.append(change)
                    continue
                if isinstance(fate, NodeError):
                    change.fail(fate)
                    continue
                change.committed = True
            if change.promote:
                # Added as non-voting; done once the promotion (ADD_NODE,
                # proposed when the node caught up) has committed too.
                node = raft.node(change.node_id)
                if node is None:
                    change.fail(
                        MemberChangeError(f"node {change.node_id} left before it was promoted")
                    )
                    continue
                if not node.voting or raft.voting_change_in_progress():
                    if raft.role is not Role.LEADER:
                        change.fail(self._not_leader())
                    else:
                        pending.append(change)
                    continue
            change.resolve(None)
        self._member_waiters = pending

    def _entry_fate(self, change: MemberChange) -> NodeError | bool | None:
        """True when the change's own entry is known committed, None while
        that cannot be told yet, or the error to fail the change with."""
        raft = self.raft
        assert raft is not None
        term = raft.log.term_at(change.index)
        if term is not None:
            if self._applied < change.index:
                # Not committed yet; even an entry of a later term in its
                # place may still be replaced by ours (§5.4.2).
                return None
            if term == change.term:
                return True
            return ProposalLost("the membership change was replaced by a new leader's entry")
        if change.index > raft.current_index:
            return None  # popped here; another server may still commit it (§5.4.2)
        return self._fate_from_snapshot(change)

    def _fate_from_snapshot(self, change: MemberChange) -> NodeError | bool:
        """The fate of a change whose entry a snapshot covered before it was
        applied here: read from the snapshot's configuration (ids are never
        reused), else from its term."""
        raft = self.raft
        assert raft is not None
        snapshot = raft.snapshot
        if snapshot is None or snapshot.index < change.index:
            return ProposalTimeout("outcome unknown: the membership change's entry is gone")
        members = snapshot.membership
        node_id = change.node_id
        node = next((n for n in members.nodes if n.node_id == node_id), None)
        removed = node_id in members.removed
        if change.kind is EntryType.REMOVE_NODE:
            if removed:
                return True
            if node is not None:
                return ProposalLost(
                    f"the membership change was lost to a new leader: node {node_id} is "
                    "still a member"
                )
        elif change.kind is EntryType.ADD_NONVOTING_NODE:
            if node is not None or removed:
                return True
            return ProposalLost(
                f"the membership change was lost to a new leader: node {node_id} is not a member"
            )
        elif node is not None:
            if node.voting:
                return True
            return ProposalLost(
                f"the membership change was lost to a new leader: node {node_id} does not vote"
            )
        # The configuration cannot tell (a snapshot written before removed
        # ids were recorded): the terms may (see covered_by_snapshot).
        if snapshot.term == change.term:
            return True
        if snapshot.term < change.term:
            return ProposalLost("the membership change was lost to a new leader")
        return ProposalTimeout(
            "outcome unknown: a snapshot from a new leader covered the membership change "
            "before it was applied here; check the members (traft status)"
        )

    async def add_member(
        self, node_id: int, peer: Address, http: Address, *, timeout: float = 30.0
    ) -> None:
        """Add a node: non-voting first, promoted to voting once it has caught up.

        Raises:
            MemberChangeError: the change was refused (already a member, a change in flight, ...).
            NotLeaderError, NoLeaderError, ProposalLost, ProposalTimeout, NodeStopped.
        """
        self._check_running()
        change = MemberChange(
            EntryType.ADD_NONVOTING_NODE, node_id, member_context(peer, http), True
        )
        await self._inbox_send.send(("member", change))
        await self._wait(change, timeout, "membership change")

    async def remove_member(self, node_id: int, *, timeout: float = 30.0) -> None:
        """Remove a node (the leader included) through the log.

        Raises:
            MemberChangeError, NotLeaderError, NoLeaderError, ProposalLost, ProposalTimeout, NodeStopped.
        """
        self._check_running()
        change = MemberChange(EntryType.REMOVE_NODE, node_id, b"", False)
        await self._inbox_send.send(("member", change))
        await self._wait(change, timeout, "membership change")
