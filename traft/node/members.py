"""Membership changes of a running node (§6, seed semantics).

Theory of operation: ``add_member`` proposes ADD_NONVOTING_NODE with the new
node's addresses as the entry's context; when the core reports
``NodeHasSufficientLogs`` the leader proposes ADD_NODE (retrying on every
tick while another voting change is in flight), and the caller is answered
once the promotion has committed. ``remove_member`` proposes REMOVE_NODE and
answers once it is applied. A change whose entry a new leader replaced
fails with ProposalLost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from traft.core import EntryType, NotLeader, RaftError, Role
from traft.node.config import Address, format_address, parse_address
from traft.node.errors import MemberChangeError, NotLeaderError, ProposalLost
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
            term = raft.log.term_at(change.index)
            if (term is not None and term != change.term) or (
                term is None and change.index > raft.current_index
            ):
                change.fail(
                    ProposalLost("the membership change was replaced by a new leader's entry")
                )
                continue
            if self._applied < change.index:
                pending.append(change)
                continue
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
