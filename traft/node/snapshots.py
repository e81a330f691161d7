"""Snapshots of a running node: taking them, sending them, installing them.

Theory of operation: after each Ready cycle the node asks :class:`Snapshots`
to take a snapshot when the applied entries since the last one, or the log
bytes written, pass the policy (``[snapshot]`` in cluster.toml); the state
machine streams into a temporary file that is fsynced and renamed, then the
core compacts the log. A leader whose follower needs compacted entries gets
``SendSnapshot`` and starts a :class:`~traft.node.transfer.SnapshotSender`
(chunks sized by the node's :class:`~traft.wire.Budget`); a follower
assembles the chunks with a :class:`~traft.node.transfer.SnapshotReceiver`,
checks them and installs the snapshot through the core's
``begin_load_snapshot``/``end_load_snapshot``. Senders stop when this node
stops leading.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio

from traft.core import Membership, Raft, Role
from traft.node.config import SnapshotPolicy
from traft.node.durable import Durable
from traft.node.statemachine import StateMachine
from traft.node.transfer import SnapshotReceiver, SnapshotSender
from traft.wire import Budget, SnapshotAck, SnapshotChunk, WireMessage

log = logging.getLogger(__name__)


class SnapshotCounters(Protocol):
    """The counters :class:`Snapshots` bumps (``NodeCounters`` has them)."""

    snapshots_taken: int
    snapshots_installed: int
    snapshots_sent: int


class Snapshots:
    """Snapshots of one running node (see the module's docstring).

    Args:
        node_id: this node's id.
        durable: the node's open storage.
        state_machine: the application, which snapshots and restores itself.
        counters: where snapshots taken, installed and sent are counted.
        send: sends a message to a peer.
        budget: the node's message sizes (the chunk size).
        policy: when to take a snapshot.
        nursery: where senders run.
        snapshot_index: the index of the newest snapshot (0: none).
        in_thread: write snapshots in a worker thread (see ``Node``'s
            ``persist_in_thread``).
    """

    def __init__(
        self,
        *,
        node_id: int,
        durable: Durable,
        state_machine: StateMachine,
        counters: SnapshotCounters,
        send: Callable[[int, WireMessage], None],
        budget: Budget,
        policy: SnapshotPolicy,
        nursery: trio.Nursery,
        snapshot_index: int,
        in_thread: bool,
    ) -> None:
        self.node_id = node_id
        self.snapshot_index = snapshot_index
        self._durable = durable
        self._state_machine = state_machine
        self._counters = counters
        self._send = send
        self._budget = budget
        self._policy = policy
        self._nursery = nursery
        self._in_thread = in_thread
        self._receiver = SnapshotReceiver(durable.snapshots)
        self._senders: dict[int, SnapshotSender] = {}

    # -- installing (follower) -----------------------------------------------------------

    def on_chunk(self, raft: Raft, from_id: int, chunk: SnapshotChunk) -> Membership | None:
        """Take a chunk from the leader; the snapshot's membership once it is installed.

        The caller then sets its applied index to ``self.snapshot_index``.
        """
        if chunk.term < raft.term:
            return None
        if chunk.index <= raft.commit_index or raft.role is Role.LEADER:
            # Nothing to install: tell the sender to stop.
            ack = SnapshotAck(term=raft.term, index=chunk.index, received=chunk.total, done=True)
            self._send(from_id, ack)
            return None
        ack, info = self._receiver.on_chunk(chunk)
        self._send(from_id, ack)
        if info is None:
            return None
        membership = Membership.from_bytes(info.membership)
        if not raft.begin_load_snapshot(
            info.term, info.index, membership, leader_term=chunk.term, leader_id=from_id
        ):
            return None
        with self._durable.snapshots.reader(info) as reader:
            self._state_machine.restore(reader.chunks())
        raft.end_load_snapshot()
        self.snapshot_index = info.index
        self._counters.snapshots_installed += 1
        log.info("node %d: installed snapshot %d (term %d)", self.node_id, info.index, info.term)
        return membership

    def abort(self) -> None:
        """Drop a half-received snapshot (the node stops)."""
        self._receiver.abort()

    # -- sending (leader) --------------------------------------------------------------------

    def on_ack(self, from_id: int, ack: SnapshotAck) -> None:
        """Hand a follower's acknowledgement to the sender serving it."""
        sender = self._senders.get(from_id)
        if sender is not None:
            sender.on_ack(ack)

    def start_sender(self, raft: Raft, node_id: int) -> None:
        """Send the newest snapshot to ``node_id`` (``SendSnapshot``), unless a sender runs."""
        running = self._senders.get(node_id)
        if running is not None and not running.done:
            return
        store = self._durable.snapshots
        info = store.latest_info()
        if info is None:
            return
        sender = SnapshotSender(
            peer_id=node_id,
            leader_id=self.node_id,
            term=raft.term,
            info=info,
            store=store,
            send=self._send,
            chunk_size=self._budget.snapshot_chunk(info.membership),
        )
        self._senders[node_id] = sender
        self._counters.snapshots_sent += 1

        async def run() -> None:
            try:
                await sender.run()
            finally:
                sender.done = True

        self._nursery.start_soon(run)

    def forget_senders(self) -> None:
        """This node stopped leading: its senders' term is over."""
        self._senders.clear()

    # -- taking --------------------------------------------------------------------------------

    async def maybe_take(self, raft: Raft) -> None:
        """Take a snapshot if the policy says one is due."""
        durable = self._durable
        policy = self._policy
        due = raft.last_applied - self.snapshot_index
        if due <= 0 or raft.snapshot_in_progress:
            return
        if due < policy.entries and durable.bytes_written < policy.bytes:
            return
        meta = raft.begin_snapshot()
        start = trio.current_time()
        if self._in_thread:
            await trio.to_thread.run_sync(
                durable.save_snapshot, meta, self._state_machine.snapshot()
            )
        else:
            durable.save_snapshot(meta, self._state_machine.snapshot())
        raft.end_snapshot(keep_entries=policy.keep_entries)
        durable.bytes_written = 0
        self.snapshot_index = meta.index
        self._counters.snapshots_taken += 1
        log.info(
            "node %d: snapshot at %d (term %d) in %.0f ms",
            self.node_id,
            meta.index,
            meta.term,
            (trio.current_time() - start) * 1000,
        )
