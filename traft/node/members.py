"""Membership changes of a running node (§6, seed semantics).

Theory of operation: ``Node.add_member`` queues a change that
:class:`MemberChanges` proposes as ADD_NONVOTING_NODE with the new node's
addresses as the entry's context; when the core reports
``NodeHasSufficientLogs`` the leader proposes ADD_NODE (retrying on every
tick while another voting change is in flight), and the caller is answered
once the promotion has committed. ``Node.remove_member`` proposes
REMOVE_NODE and answers once it is applied.

Once the non-voting entry has committed the addition has taken effect,
whoever leads: if this node loses its leadership before the promotion, the
next leader promotes the node when it has caught up, and the call keeps
waiting for that (as a follower) until its deadline; a timeout then means
"added, promotion outcome unknown" (ProposalTimeout), never "not done".

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

from collections.abc import Callable

from traft.core import EntryType, NotLeader, Raft, RaftError, Role
from traft.node.config import Address, format_address, parse_address
from traft.node.errors import (
    MemberChangeError,
    NodeError,
    ProposalLost,
    ProposalTimeout,
)
from traft.node.waiters import MemberChange


def member_context(peer: Address, http: Address) -> bytes:
    """The context a membership entry carries: the node's two addresses."""
    return f"{format_address(peer)}|{format_address(http)}".encode()


def parse_context(context: bytes) -> tuple[Address, Address] | None:
    """The two addresses of a membership entry's context; None if it has none."""
    try:
        peer, http = context.decode().split("|")
        return parse_address(peer, "peer"), parse_address(http, "http")
    except ValueError:
        return None


class MemberChanges:
    """The membership changes in flight on this node, and the promotions due.

    The main loop calls :meth:`start` for each change a caller queued,
    :meth:`caught_up` on ``NodeHasSufficientLogs``, :meth:`retry_promotions`
    on every tick and :meth:`check` after every Ready cycle.

    Args:
        not_leader: the error for a change this node cannot make (not the leader).
    """

    def __init__(self, not_leader: Callable[[], NodeError]) -> None:
        self._not_leader = not_leader
        self._promote: set[int] = set()
        self._waiters: list[MemberChange] = []

    def __bool__(self) -> bool:
        """Whether any change waits for its entry to commit."""
        return bool(self._waiters)

    def start(self, raft: Raft, change: MemberChange) -> None:
        """Propose ``change`` (fails it at once if the core refuses)."""
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
        self._waiters.append(change)

    def caught_up(self, raft: Raft, node_id: int) -> None:
        """``node_id`` has caught up (NodeHasSufficientLogs): promote it."""
        self._promote.add(node_id)
        self._try_promote(raft, node_id)

    def retry_promotions(self, raft: Raft) -> None:
        """Propose again the promotions another change held back (each tick)."""
        for node_id in sorted(self._promote):
            self._try_promote(raft, node_id)

    def _try_promote(self, raft: Raft, node_id: int) -> None:
        node = raft.node(node_id)
        if raft.role is not Role.LEADER or node is None or node.voting:
            self._promote.discard(node_id)
            return
        try:
            raft.propose_membership(EntryType.ADD_NODE, node_id, node.context)
            self._promote.discard(node_id)
        except RaftError:
            pass  # another change in flight: try again on the next tick

    def check(self, raft: Raft, applied: int) -> None:
        """Answer the changes whose fate is known, with ``applied`` the applied index."""
        pending = []
        for change in self._waiters:
            if change.done:
                continue
            if not change.committed:
                fate = self._entry_fate(raft, applied, change)
                if fate is None:
                    pending.append(change)
                    continue
                if isinstance(fate, NodeError):
                    change.fail(fate)
                    continue
                change.committed = True
            if change.promote:
                # Added as non-voting; done once the promotion (ADD_NODE,
                # proposed when the node caught up) has committed too. Whoever
                # leads then proposes it, so losing leadership here changes
                # nothing: the call waits, as a follower, for the promotion
                # to commit, and its deadline answers "outcome unknown"
                # (ProposalTimeout). Never NotLeaderError: the node was added.
                node = raft.node(change.node_id)
                if node is None:
                    change.fail(
                        MemberChangeError(f"node {change.node_id} left before it was promoted")
                    )
                    continue
                if not node.voting or raft.voting_change_in_progress():
                    pending.append(change)
                    continue
            change.resolve(None)
        self._waiters = pending

    def fail_all(self, error: BaseException) -> None:
        """Fail every change in flight (the node stops)."""
        for change in self._waiters:
            change.fail(error)
        self._waiters = []

    def _entry_fate(
        self, raft: Raft, applied: int, change: MemberChange
    ) -> NodeError | bool | None:
        """True when the change's own entry is known committed, None while
        that cannot be told yet, or the error to fail the change with."""
        term = raft.log.term_at(change.index)
        if term is not None:
            if applied < change.index:
                # Not committed yet; even an entry of a later term in its
                # place may still be replaced by ours (§5.4.2).
                return None
            if term == change.term:
                return True
            return ProposalLost("the membership change was replaced by a new leader's entry")
        if change.index > raft.current_index:
            return None  # popped here; another server may still commit it (§5.4.2)
        return _fate_from_snapshot(raft, change)


def _fate_from_snapshot(raft: Raft, change: MemberChange) -> NodeError | bool:
    """The fate of a change whose entry a snapshot covered before it was
    applied here: read from the snapshot's configuration (ids are never
    reused), else from its term."""
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
                f"the membership change was lost to a new leader: node {node_id} is still a member"
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
