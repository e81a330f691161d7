"""Leadership transfer (Ongaro's thesis §3.10).

Theory of operation. ``transfer_leadership(to)`` on the leader:

1. "The prior leader stops accepting new client requests": proposals and
   membership changes raise :class:`~traft.core.errors.TransferInProgress`
   (a ``NotLeader`` with no leader named, so drivers retry) until the
   transfer ends. Reads are still served (by heartbeat rounds; the lease is
   given up for the rest of the term, see :mod:`traft.core.reads`).
2. "The prior leader fully updates the target server's log to match its
   own": replication to the target goes on as usual; as soon as the
   target's ``match_index`` equals the leader's last index, and again on
   every later answer from the target while the transfer lasts (a lost
   message must not cost the transfer), the leader sends ``TimeoutNow``.
3. "The target server starts an election immediately": on ``TimeoutNow``
   of its term the target campaigns at once, without a pre-vote, and its
   ``RequestVote`` carries ``leader_transfer`` so voters grant it although
   they heard from a leader recently (:mod:`traft.core.election`, rule 6).
   Its log is complete, so the voters' log check passes.
4. The prior leader steps down when the target's higher term reaches it
   and keeps waiting, now as a follower, until it hears from the target as
   leader: ``TransferFinished(to)``.

The transfer is aborted (``TransferAborted(to, reason)``; proposals resume
on a leader) when it has not finished within an election timeout ("if the
transfer does not complete within an election timeout, the prior leader
aborts the transfer and resumes accepting client requests"), when the
target stops being a voting member, when the leader loses leadership for
any other reason than the target's election, or when another server is
heard from as leader.

Where each part lives: :class:`Transfer` holds one transfer's state and
rules; the server keeps it (``ServerState._transfer``) because it outlives
the leadership it hands over (step 4); the leader
(:meth:`traft.core.leader.Leader.transfer_progress`) sends ``TimeoutNow``
(step 2); :class:`~traft.core.raft.Raft` starts it
(``transfer_leadership``), ticks it and tells it about leaders seen and
leadership lost.
"""

from __future__ import annotations

from traft.core.errors import TransferError
from traft.core.membership import NodeConfig
from traft.core.ready import TransferAborted, TransferFinished


def check_target(nodes: dict[int, NodeConfig], self_id: int, to: int) -> None:
    """Whether ``to`` may be handed leadership by ``self_id``.

    Raises:
        TransferError: ``to`` is this server, is not a member, or is not a
            voting member.
    """
    if to == self_id:
        raise TransferError(f"node {to} is already the leader")
    node = nodes.get(to)
    if node is None:
        raise TransferError(f"node {to} is not a member of the cluster")
    if not node.voting:
        raise TransferError(f"node {to} is a non-voting member; only a voter can lead")


class Transfer:
    """One leadership transfer to ``target``, from its start until it finishes or aborts."""

    __slots__ = ("target", "elapsed_ms", "handed_off")

    def __init__(self, target: int) -> None:
        self.target = target
        self.elapsed_ms = 0
        # Set when the leader stepped down because the target campaigned (step 4).
        self.handed_off = False

    def __repr__(self) -> str:
        return f"Transfer(to={self.target}, elapsed={self.elapsed_ms}ms)"

    def tick(self, elapsed_ms: int, timeout_ms: int) -> str | None:
        """Time passed; the reason to abort once the election timeout has run out."""
        self.elapsed_ms += elapsed_ms
        if self.elapsed_ms >= timeout_ms:
            return f"not finished within the election timeout ({timeout_ms} ms)"
        return None

    def target_changed(self, node: NodeConfig | None) -> str | None:
        """The target's configuration changed; the reason to abort, if it no longer votes."""
        if node is None:
            return f"node {self.target} was removed from the cluster"
        if not node.voting:
            return f"node {self.target} is no longer a voting member"
        return None

    def leader_seen(self, leader_id: int) -> TransferFinished | str:
        """Another server is heard from as leader: finished if it is the target, else why not."""
        if leader_id == self.target:
            return TransferFinished(self.target)
        return f"node {leader_id} became leader instead"

    def aborted(self, reason: str) -> TransferAborted:
        return TransferAborted(self.target, reason)
