"""Linearizable reads of a running node (ReadIndex, thesis §6.4).

Theory of operation. ``Node.read`` hands a :class:`~traft.node.waiters.Read`
to :class:`Reads`; every read listed between two turns of the main loop
joins the same ReadIndex round, so one heartbeat confirms them all (etcd
batches the same way). On a follower the core forwards the round to the
leader. When the core reports ``ReadReady`` the read waits until this node
has applied the read index, then runs its query on the state machine. A
read whose round was lost (``ReadLost``: the leader was deposed, or did not
answer a follower) or that found the leader not ready yet is asked again at
the next tick, whoever leads then, until its deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from traft.core import LeaderNotReady, NotLeader
from traft.node.errors import NodeError
from traft.node.statemachine import StateMachine
from traft.node.waiters import Read


class ReadIndexer(Protocol):
    """What :class:`Reads` needs of the core (``traft.core.Raft`` has it)."""

    def read_index(self, ctx: object) -> None: ...


class Reads:
    """The reads between ``Node.read`` and their answer.

    Args:
        not_leader: the error for a read no leader can confirm.
    """

    def __init__(self, not_leader: Callable[[], NodeError]) -> None:
        self._not_leader = not_leader
        self._listed: list[Read] = []
        self._deferred: list[Read] = []
        self._ready: list[Read] = []

    def add(self, read: Read) -> bool:
        """List ``read`` for the next round; True when it is the first
        (the caller then wakes the main loop)."""
        self._listed.append(read)
        return len(self._listed) == 1

    @property
    def has_ready(self) -> bool:
        """Whether confirmed reads wait for the applied index."""
        return bool(self._ready)

    def flush(self, raft: ReadIndexer) -> None:
        """Start one ReadIndex round for every listed read."""
        if self._listed:
            reads, self._listed = self._listed, []
            for read in reads:
                if not read.done:
                    self._start(raft, read)

    def retry(self, raft: ReadIndexer) -> None:
        """Ask again for the reads whose round was lost (the main loop's tick)."""
        if self._deferred:
            reads, self._deferred = self._deferred, []
            for read in reads:
                if not read.done:
                    self._start(raft, read)

    def _start(self, raft: ReadIndexer, read: Read) -> None:
        # On a follower the core forwards the read to the leader (thesis §6.4);
        # it refuses only when no leader is known.
        try:
            raft.read_index(read)
        except NotLeader:
            read.fail(self._not_leader())
        except LeaderNotReady:
            self._deferred.append(read)

    def confirmed(self, read: object, index: int) -> None:
        """The core confirmed ``read`` (``ReadReady``) at ``index``."""
        assert isinstance(read, Read)
        read.index = index
        self._ready.append(read)

    def lost(self, read: object) -> None:
        """The core lost ``read``'s round (``ReadLost``): ask again at the next tick."""
        assert isinstance(read, Read)
        self._deferred.append(read)

    def serve(self, applied: int, state_machine: StateMachine) -> None:
        """Answer the confirmed reads whose index is applied."""
        waiting = []
        for read in self._ready:
            if read.done:
                continue
            if read.index <= applied:
                try:
                    read.resolve(read.query(state_machine))
                except Exception as exc:
                    read.fail(exc)
            else:
                waiting.append(read)
        self._ready = waiting

    def fail_all(self, error: BaseException) -> None:
        """Fail every read (the node stops)."""
        for read in [*self._listed, *self._deferred, *self._ready]:
            read.fail(error)
        self._listed, self._deferred, self._ready = [], [], []
