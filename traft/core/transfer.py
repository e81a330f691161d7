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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traft.core.errors import NotLeader, TransferError
from traft.core.messages import TimeoutNow
from traft.core.ready import Role, TransferAborted, TransferFinished, TransferStarted

if TYPE_CHECKING:
    from traft.core.config import Config
    from traft.core.log import RaftLog
    from traft.core.membership import Configuration
    from traft.core.messages import Message
    from traft.core.progress import Progress
    from traft.core.ready import Event


class TransferMixin:
    """Leadership transfer behaviour of :class:`~traft.core.raft.Raft`."""

    if TYPE_CHECKING:
        id: int
        term: int
        config: Config
        role: Role
        leader_id: int | None
        _log: RaftLog
        _conf: Configuration
        _removed_at: int | None
        _progress: dict[int, Progress]
        _msgs: list[tuple[int, Message]]
        _events: list[Event]
        _lease_void: bool
        _want_broadcast: bool

    def _init_transfer_state(self) -> None:
        self._transfer_target: int | None = None
        self._transfer_elapsed_ms = 0
        # Set when this leader stepped down because its target campaigned.
        self._transfer_handed_off = False

    @property
    def transfer_target(self) -> int | None:
        """The node a transfer started here is handing leadership to, or None.

        It stays set after this server stepped down for the target's election
        until the transfer finishes (the target is heard from as leader) or
        is aborted.
        """
        return self._transfer_target

    def transfer_leadership(self, to: int) -> None:
        """Hand leadership to voting member ``to`` (thesis §3.10).

        Emits ``TransferStarted(to)`` now, then ``TransferFinished(to)`` or
        ``TransferAborted(to, reason)``. Until then this leader refuses
        proposals with :class:`~traft.core.errors.TransferInProgress`. A
        transfer that has not finished within an election timeout is aborted.

        Raises:
            NotLeader: this server is not the leader.
            TransferError: ``to`` is this server, is not a member, is not a
                voting member, or a transfer is already in progress.
        """
        if self.role is not Role.LEADER or self._removed_at is not None:
            raise NotLeader(self.leader_id if self.leader_id != self.id else None)
        if self._transfer_target is not None:
            raise TransferError(
                f"a leadership transfer to node {self._transfer_target} is already in progress"
            )
        if to == self.id:
            raise TransferError(f"node {to} is already the leader")
        node = self._conf.nodes.get(to)
        if node is None:
            raise TransferError(f"node {to} is not a member of the cluster")
        if not node.voting:
            raise TransferError(f"node {to} is a non-voting member; only a voter can lead")
        self._transfer_target = to
        self._transfer_elapsed_ms = 0
        self._transfer_handed_off = False
        self._lease_void = True
        self._events.append(TransferStarted(to))
        pr = self._progress.get(to)
        if pr is not None:
            self._transfer_progress(pr)

    def _transfer_progress(self, pr: Progress) -> None:
        """The leader heard from ``pr``'s node: send TimeoutNow if it is the caught-up target."""
        if pr.node_id == self._transfer_target and pr.match_index == self._log.last_index:
            self._msgs.append((pr.node_id, TimeoutNow(term=self.term, leader_id=self.id)))

    def _transfer_tick(self, elapsed_ms: int) -> None:
        self._transfer_elapsed_ms += elapsed_ms
        timeout = self.config.election_timeout_ms
        if self._transfer_elapsed_ms >= timeout:
            self._abort_transfer(f"not finished within the election timeout ({timeout} ms)")

    def _abort_transfer(self, reason: str) -> None:
        to = self._transfer_target
        if to is None:
            return
        self._transfer_target = None
        self._transfer_handed_off = False
        self._events.append(TransferAborted(to, reason))

    def _transfer_leader_seen(self, leader_id: int) -> None:
        """This server learnt of leader ``leader_id`` (called only when it changes)."""
        to = self._transfer_target
        if to is None or leader_id == self.id:
            return
        if leader_id == to:
            self._transfer_target = None
            self._transfer_handed_off = False
            self._events.append(TransferFinished(to))
        else:
            self._abort_transfer(f"node {leader_id} became leader instead")

    def _transfer_leadership_lost(self) -> None:
        """This server stops leading: the transfer goes on only if the target took over."""
        if self._transfer_target is not None and not self._transfer_handed_off:
            self._abort_transfer("leadership was lost")

    def _transfer_check_target(self) -> None:
        """The configuration changed: the target must still be a voting member."""
        to = self._transfer_target
        if to is None:
            return
        node = self._conf.nodes.get(to)
        if node is None:
            self._abort_transfer(f"node {to} was removed from the cluster")
        elif not node.voting:
            self._abort_transfer(f"node {to} is no longer a voting member")
