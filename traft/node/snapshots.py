"""Snapshots of a running node: taking them, sending them, installing them.

Theory of operation: after each Ready cycle the node takes a snapshot when
the applied entries since the last one, or the log bytes written, pass the
policy (``[snapshot]`` in cluster.toml); the state machine streams into a
temporary file that is fsynced and renamed, then the core compacts the log.
A leader whose follower needs compacted entries gets ``SendSnapshot`` and
starts a :class:`~traft.node.transfer.SnapshotSender`; a follower assembles
the chunks with a :class:`~traft.node.transfer.SnapshotReceiver`, checks
them and installs the snapshot through the core's
``begin_load_snapshot``/``end_load_snapshot``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from traft.core import Membership, NodeConfig, Role
from traft.node.transfer import SnapshotReceiver, SnapshotSender
from traft.wire import SnapshotAck, SnapshotChunk, WireMessage

if TYPE_CHECKING:
    from pathlib import Path

    import net
    from traft.core import Raft
    from traft.node.config import ClusterConfig
    from traft.node.durable import Durable
    from traft.node.metrics import NodeCounters
    from traft.node.statemachine import StateMachine
    from traft.wire import Budget

log = logging.getLogger(__name__)


class SnapshotMixin:
    """The snapshot part of :class:`~traft.node.node.Node`."""

    if TYPE_CHECKING:
        id: int
        raft: Raft | None
        cluster: ClusterConfig
        data_dir: Path
        state_machine: StateMachine
        endpoint: net.DatagramEndpoint | None
        budget: Budget
        counters: NodeCounters
        _durable: Durable | None
        _receiver: SnapshotReceiver | None
        _senders: dict[int, SnapshotSender]
        _nursery: trio.Nursery | None
        _applied: int
        _snapshot_index: int
        _persist_in_thread: bool

        def _send_wire(self, to: int, msg: WireMessage) -> None: ...
        def _route(self, node_id: int, node: NodeConfig | None) -> None: ...

    def _on_chunk(self, from_id: int, chunk: SnapshotChunk) -> None:
        raft = self.raft
        receiver = self._receiver
        assert raft is not None and receiver is not None
        if chunk.term < raft.term:
            return
        if chunk.index <= raft.commit_index or raft.role is Role.LEADER:
            # Nothing to install: tell the sender to stop.
            ack = SnapshotAck(term=raft.term, index=chunk.index, received=chunk.total, done=True)
            self._send_wire(from_id, ack)
            return
        ack, info = receiver.on_chunk(chunk)
        self._send_wire(from_id, ack)
        if info is None:
            return
        meta_membership = Membership.from_bytes(info.membership)
        if not raft.begin_load_snapshot(
            info.term, info.index, meta_membership, leader_term=chunk.term, leader_id=from_id
        ):
            return
        assert self._durable is not None
        with self._durable.snapshots.reader(info) as reader:
            self.state_machine.restore(reader.chunks())
        raft.end_load_snapshot()
        self._applied = self._snapshot_index = info.index
        self.counters.snapshots_installed += 1
        for node in meta_membership.nodes:
            self._route(node.node_id, node)
        log.info("node %d: installed snapshot %d (term %d)", self.id, info.index, info.term)

    def _start_sender(self, node_id: int) -> None:
        raft = self.raft
        durable = self._durable
        assert raft is not None and durable is not None and self._nursery is not None
        running = self._senders.get(node_id)
        if running is not None and not running.done:
            return
        info = durable.snapshots.latest_info()
        if info is None:
            return
        assert self.endpoint is not None
        sender = SnapshotSender(
            peer_id=node_id,
            leader_id=self.id,
            term=raft.term,
            info=info,
            store=durable.snapshots,
            send=self._send_wire,
            chunk_size=self.budget.snapshot_chunk(info.membership),
        )
        self._senders[node_id] = sender
        self.counters.snapshots_sent += 1

        async def run() -> None:
            try:
                await sender.run()
            finally:
                sender.done = True

        self._nursery.start_soon(run)

    async def _maybe_snapshot(self) -> None:
        raft = self.raft
        durable = self._durable
        assert raft is not None and durable is not None
        policy = self.cluster.snapshot
        due = raft.last_applied - self._snapshot_index
        if due <= 0 or raft.snapshot_in_progress:
            return
        if due < policy.entries and durable.bytes_written < policy.bytes:
            return
        meta = raft.begin_snapshot()
        start = trio.current_time()
        if self._persist_in_thread:
            await trio.to_thread.run_sync(
                durable.save_snapshot, meta, self.state_machine.snapshot()
            )
        else:
            durable.save_snapshot(meta, self.state_machine.snapshot())
        raft.end_snapshot(keep_entries=policy.keep_entries)
        durable.bytes_written = 0
        self._snapshot_index = meta.index
        self.counters.snapshots_taken += 1
        log.info(
            "node %d: snapshot at %d (term %d) in %.0f ms",
            self.id,
            meta.index,
            meta.term,
            (trio.current_time() - start) * 1000,
        )
