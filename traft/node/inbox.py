"""The main loop's input: peer messages, the clock, client work, kept apart.

Theory of operation. The node's main loop is the only task that touches the
core; everything else hands it work through one :class:`Inbox`, which keeps
three kinds of input apart so that none can crowd out another:

* peer messages, from the receive loop, in a bounded queue that never makes
  the receiver wait: when it is full the message is dropped and the caller
  counts it (``traft_inbox_overflow``), as a full socket buffer would;
* the clock: the ticker sets a flag, so ticks never queue up behind anything
  (the next tick carries all the elapsed time);
* client work (:data:`ClientWork`: membership changes, leadership
  transfers), in a bounded queue whose callers wait for room. (Proposals
  have their own bound, the backlog bound of
  :class:`~traft.node.proposals.Proposals`.)

The main loop takes the peers' messages first, then the tick, then client
work, so heartbeats, votes and their answers are never stuck behind client
requests, however many clients there are. Proposals and reads skip
the client queue: they go to their collaborator's list, and only the first of
a batch calls :meth:`Inbox.wake`.

One consumer (the main loop) parks in :meth:`Inbox.wait`; producers are trio
tasks of the same thread, so no locking is needed.
"""

from __future__ import annotations

import collections

import trio

from traft.node.errors import NodeStopped
from traft.node.waiters import LeaderTransfer, MemberChange
from traft.wire import WireMessage

# Work a client hands the main loop through the client queue.
ClientWork = MemberChange | LeaderTransfer


class Inbox:
    """Input for one node's main loop (see the module's docstring).

    Args:
        peer_capacity: peer messages held before new ones are dropped.
        client_capacity: client work held before callers of :meth:`put_client` wait.
    """

    def __init__(self, *, peer_capacity: int, client_capacity: int) -> None:
        self.peer_capacity = peer_capacity
        self.client_capacity = client_capacity
        self._peers: collections.deque[tuple[int, WireMessage]] = collections.deque()
        self._client: list[ClientWork] = []
        self._tick = False
        self._woken = False
        self._closed = False
        self._consumer = trio.lowlevel.ParkingLot()
        self._room = trio.lowlevel.ParkingLot()

    # -- producers ---------------------------------------------------------------------

    def put_peer(self, from_id: int, msg: WireMessage) -> bool:
        """Queue a peer's message; False (and nothing queued) when the queue is full."""
        peers = self._peers
        if len(peers) >= self.peer_capacity:
            return False
        peers.append((from_id, msg))
        if self._consumer:
            self._consumer.unpark()
        return True

    def tick(self) -> None:
        """Note that the clock ticked (ticks do not queue: one flag)."""
        self._tick = True
        if self._consumer:
            self._consumer.unpark()

    def wake(self) -> None:
        """Wake the main loop for work put elsewhere (a proposal or read list)."""
        self._woken = True
        if self._consumer:
            self._consumer.unpark()

    async def put_client(self, work: ClientWork) -> None:
        """Queue client work, waiting while the client queue is full.

        Raises:
            NodeStopped: the node stopped (before or while waiting).
        """
        while len(self._client) >= self.client_capacity and not self._closed:
            await self._room.park()
        if self._closed:
            raise NodeStopped("node stopped")
        self._client.append(work)
        if self._consumer:
            self._consumer.unpark()

    # -- the consumer (the main loop) ----------------------------------------------------

    def ready(self) -> bool:
        """Whether anything waits for the main loop."""
        return bool(self._peers or self._tick or self._woken or self._client)

    async def wait(self) -> None:
        """Park until :meth:`ready` (returns at once if it is already)."""
        if self.ready():
            await trio.lowlevel.checkpoint()
        else:
            await self._consumer.park()

    def take_peers(self) -> collections.deque[tuple[int, WireMessage]]:
        """Every queued peer message, oldest first; the queue is left empty."""
        peers, self._peers = self._peers, collections.deque()
        return peers

    def take_tick(self) -> bool:
        """Whether the clock ticked since the last call."""
        tick, self._tick = self._tick, False
        return tick

    def take_client(self) -> list[ClientWork]:
        """Every queued piece of client work, oldest first; waiting callers get room."""
        self._woken = False
        work, self._client = self._client, []
        if work and self._room:
            self._room.unpark_all()
        return work

    def close(self) -> list[ClientWork]:
        """Stop taking client work; callers waiting for room get NodeStopped.

        Returns the client work still queued, for the caller to fail.
        """
        self._closed = True
        self._room.unpark_all()
        work, self._client = self._client, []
        return work
