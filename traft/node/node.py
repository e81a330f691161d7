"""A Raft node: one trio nursery around one pure core.

Theory of operation. :class:`Node` supervises four tasks in one nursery:

* the endpoint's ``serve`` (UDP, or an in-memory network in tests);
* the receive loop, which decodes datagrams and puts them in the inbox
  without ever blocking (a full inbox drops and counts);
* the ticker, a drift-free ``deadline += interval`` loop that wakes the main
  loop every ``tick_ms``;
* the main loop, the only task that touches the core. It waits for input,
  takes everything else already queued, feeds it all to the core (client
  proposals as ONE ``recv_entries`` batch), then works off Ready values:
  persist with one fsync in a worker thread, send, apply, advance. While it
  waits for the disk, new input queues up and becomes the next batch: that
  is the group commit.

Callers (``submit``, ``read``, membership calls) hand the main loop a
waiter (:mod:`traft.node.waiters`) and park on it. Proposals and reads are
appended to plain lists (the first of a batch wakes the main loop), so all
that arrive between two wake-ups become one ``recv_entries`` batch and one
ReadIndex round (one heartbeat confirms them all, thesis §6.4); the main loop answers
when the entry is applied (same index *and* term: otherwise the proposal was
lost to a new leader) or when a ReadIndex round confirms a read, and its
tick fails waiters whose deadline passed. A proposal whose entry a snapshot
from the leader covered before it was applied here fails at once, as lost
or unknown (``waiters.covered_by_snapshot``), never as a success. Membership changes live in
:mod:`traft.node.members`, snapshots in :mod:`traft.node.snapshots`,
leadership transfer in :mod:`traft.node.leadership`. A read on a follower is
forwarded by the core to the leader for a read index and answered here once
applied reaches it; a read whose round was lost is asked again at the next
tick, until its deadline.
"""

from __future__ import annotations

import collections
import logging
import math
import random
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import trio

import net
from traft.core import (
    Config,
    Entry,
    EntryType,
    LeaderChanged,
    LeaderNotReady,
    Membership,
    MembershipChanged,
    NodeConfig,
    NodeHasSufficientLogs,
    NotLeader,
    Raft,
    ReadLost,
    ReadReady,
    RemovedSelf,
    Role,
    RoleChanged,
    SendSnapshot,
    TransferAborted,
    TransferFinished,
    TransferInProgress,
    TransferStarted,
)
from traft.node.config import Address, ClusterConfig, format_address
from traft.node.durable import Durable
from traft.node.errors import (
    LeadershipTransferring,
    NodeStopped,
    NoLeaderError,
    NotLeaderError,
    ProposalLost,
    ProposalTimeout,
)
from traft.node.leadership import LeadershipMixin
from traft.node.members import MembershipMixin, member_context, parse_context
from traft.node.metrics import NodeCounters, make_registry
from traft.node.snapshots import SnapshotMixin
from traft.node.statemachine import StateMachine
from traft.node.transfer import SnapshotReceiver, SnapshotSender
from traft.node.waiters import (
    LeaderTransfer,
    MemberChange,
    Proposal,
    Read,
    Waiter,
    covered_by_snapshot,
)
from traft.wire import MalformedMessage, SnapshotAck, SnapshotChunk, WireMessage, decode, encode

log = logging.getLogger(__name__)
T = TypeVar("T")

# Per-entry bytes of msgpack framing in an AppendEntries, counted against the datagram.
ENTRY_OVERHEAD = 48
INBOX_SIZE = 8192
# Proposals one Ready cycle takes at most. Smaller batches pipeline: the
# followers persist one while the leader persists the next. Measured with
# scripts/bench at 5,000 and 20,000 in flight: 2,000 gave 25-26k ops/s
# against 14-21k uncapped (and 500 was worse again).
MAX_BATCH = 2000
# Proposals queued for the main loop before callers block on the inbox instead.
MAX_PENDING_PROPOSALS = 65536


_TICK = ("tick",)
_PROPOSE = ("wake",)


class Node(MembershipMixin, SnapshotMixin, LeadershipMixin):
    """One member of a traft cluster, running a user's state machine.

    Args:
        node_id: this node's id (must be in ``cluster`` unless ``endpoint`` is given).
        cluster: the cluster configuration.
        data_dir: where this node keeps its meta file, log and snapshots.
        state_machine: the application (see :class:`~traft.node.statemachine.StateMachine`).
        endpoint: a datagram endpoint to use instead of UDP (tests use
            ``net.MemoryNetwork``).
        rng: randomness for the core (default: seeded from the OS).
        persist_in_thread: write and fsync in a worker thread (the default) so
            the event loop keeps receiving; False blocks the loop for the
            fsync instead, which saves the thread hop (tests under trio's
            autojump clock use it: the mock clock does not see threads).
        faults: a fault injector for the UDP endpoint the node makes (fault
            testing: ``traft serve --enable-faults``); ignored with ``endpoint``.
        lease_reads: the leader answers reads from its lease, without a
            heartbeat round (``Config.lease_reads``, thesis §6.4.1): safe only
            while the servers' clocks drift apart by less than the core's
            ``lease_drift_ms`` per election timeout.
    """

    def __init__(
        self,
        node_id: int,
        cluster: ClusterConfig,
        data_dir: Path | str,
        state_machine: StateMachine,
        *,
        endpoint: net.DatagramEndpoint | None = None,
        rng: random.Random | None = None,
        segment_bytes: int = 64 * 2**20,
        persist_in_thread: bool = True,
        faults: net.FaultInjector | None = None,
        lease_reads: bool = False,
    ) -> None:
        self.id = node_id
        self.lease_reads = lease_reads
        self.cluster = cluster
        self.data_dir = Path(data_dir)
        self.state_machine = state_machine
        self._rng = rng or random.Random()
        self._segment_bytes = segment_bytes
        self._persist_in_thread = persist_in_thread
        self.faults = faults
        self.endpoint: net.DatagramEndpoint | None = endpoint
        self._own_endpoint = endpoint is None
        self.raft: Raft | None = None
        self._durable: Durable | None = None
        self.counters = NodeCounters()
        self.registry, self._observe_fsync = make_registry(self)
        self.removed = trio.Event()
        self.started = trio.Event()
        self._stopped = trio.Event()
        self._stopping = False
        self._inbox_send, self._inbox = trio.open_memory_channel[tuple[Any, ...]](INBOX_SIZE)
        self._proposals: dict[int, Waiter] = {}
        self._to_propose: list[Proposal] = []
        self._to_read: list[Read] = []
        # Waiters by timeout; each deque is in deadline order (see _expire).
        self._deadlines: dict[float, collections.deque[Waiter]] = {}
        self._reads_deferred: list[Read] = []
        self._reads_waiting: list[Read] = []
        self._promote: set[int] = set()
        self._member_waiters: list[MemberChange] = []
        self._transfers: list[LeaderTransfer] = []
        self._senders: dict[int, SnapshotSender] = {}
        self._receiver: SnapshotReceiver | None = None
        self._nursery: trio.Nursery | None = None
        self._cm: Any = None
        self._last_tick = 0.0
        self._tick_carry = 0.0
        self._applied = 0
        self._snapshot_index = 0
        self._covered_checked = 0  # proposals at or below it are not covered by a snapshot
        self._max_command = 0

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        self._cm = trio.open_nursery()
        nursery = await self._cm.__aenter__()
        try:
            await nursery.start(self.run)
        except BaseException as exc:
            await self._cm.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            # When a node task failed, this runs in the nursery's cancelled scope
            # and stop() raises Cancelled: the nursery must be exited anyway, or
            # trio's nursery stack breaks and the task's own error is lost.
            await self.stop()
        finally:
            result: bool | None = await self._cm.__aexit__(exc_type, exc, tb)
        return result

    async def stop(self) -> None:
        """Stop every task and close storage; pending callers get NodeStopped."""
        self._stopping = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        if self.started.is_set():
            await self._stopped.wait()

    def _core_config(self, max_payload: int) -> Config:
        t = self.cluster.timing
        return Config(
            election_timeout_ms=t.election_timeout_ms,
            request_timeout_ms=t.heartbeat_ms,
            max_entries_per_message=4096,
            max_bytes_per_message=max(max_payload - 1024, 1024),
            entry_overhead_bytes=ENTRY_OVERHEAD,
            snapshot_resend_ms=max(4 * t.election_timeout_ms, 2000),
            lease_reads=self.lease_reads,
        )

    def _founding(self) -> Membership:
        nodes = [
            NodeConfig(m.id, True, member_context(m.peer, m.http))
            for m in sorted(self.cluster.members.values(), key=lambda m: m.id)
            if not m.join
        ]
        return Membership(tuple(nodes))

    def _open(self, config: Config) -> Raft:
        """Open storage and rebuild the core and the state machine (worker thread)."""
        durable = Durable(self.data_dir, segment_bytes=self._segment_bytes)
        try:
            snap = durable.latest_snapshot()
            meta = None
            if snap is not None:
                meta, info = snap
                with durable.snapshots.reader(info) as reader:
                    self.state_machine.restore(reader.chunks())
                durable.finish_snapshot_install(meta.index, meta.term)
            entries = durable.entries_after(meta.index if meta else 0)
            raft = Raft.restore(
                self.id,
                config,
                self._rng,
                term=durable.meta.term,
                voted_for=durable.meta.voted_for,
                entries=entries,
                snapshot=meta,
                membership=self._founding(),
            )
        except BaseException:
            durable.close()
            raise
        self._durable = durable
        self._applied = self._snapshot_index = raft.last_applied
        log.info(
            "node %d: restored term %d, snapshot %s, log %d..%d",
            self.id,
            raft.term,
            meta.index if meta else "none",
            raft.first_index,
            raft.current_index,
        )
        return raft

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the node until :meth:`stop` (or cancellation).

        Raises:
            storage.CorruptLogError: the data directory is damaged.
            OSError: the peer address cannot be bound.
        """
        if self.endpoint is None:
            me = self.cluster.member(self.id)
            self.endpoint = net.UdpEndpoint(
                self.id,
                cluster_id=net.cluster_id_from(self.cluster.cluster_id),
                bind=me.peer,
                key=self.cluster.key,
                max_datagram=self.cluster.max_datagram,
                max_message=max(net.DEFAULT_MAX_MESSAGE, self.cluster.max_command + 2048),
                faults=self.faults,
            )
        endpoint = self.endpoint
        config = self._core_config(endpoint.max_payload)
        # A command travels in one AppendEntries (2048 bytes of room for its
        # framing), fragmented when longer than a datagram; an endpoint made
        # by the caller may carry less than the cluster allows.
        self._max_command = min(self.cluster.max_command, endpoint.max_message - 2048)
        if self._persist_in_thread:
            raft = await trio.to_thread.run_sync(self._open, config)
        else:
            raft = self._open(config)
        self.raft = raft
        assert self._durable is not None
        self._receiver = SnapshotReceiver(self._durable.snapshots)
        for node in raft.membership().nodes:
            self._route(node.node_id, node)
        if self._own_endpoint:
            # Every node of cluster.toml is reachable at its configured address
            # until the log says otherwise: a joining node knows only the founding
            # members from its log, and must be able to answer a leader that
            # joined later (a snapshot or a membership entry will tell it more).
            known = {node.node_id for node in raft.membership().nodes}
            for member in sorted(self.cluster.members.values(), key=lambda m: m.id):
                if member.id != self.id and member.id not in known:
                    endpoint.set_peer(member.id, member.peer)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._stopping:
                    nursery.cancel_scope.cancel()
                await nursery.start(endpoint.serve)
                nursery.start_soon(self._receive_loop)
                nursery.start_soon(self._ticker)
                nursery.start_soon(self._main_loop)
                self.started.set()
                task_status.started()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        error = NodeStopped("node stopped")
        for waiter in [
            *self._proposals.values(),
            *self._to_propose,
            *self._to_read,
            *self._reads_deferred,
            *self._reads_waiting,
            *(w for queue in self._deadlines.values() for w in queue),
        ]:
            waiter.fail(error)
        self._deadlines.clear()
        for change in self._member_waiters:
            change.fail(error)
        for transfer in self._transfers:
            transfer.fail(error)
        self._transfers.clear()
        self._proposals.clear()
        if self._receiver is not None:
            self._receiver.abort()
        if self._durable is not None:
            self._durable.close()
            self._durable = None
        self._stopped.set()

    # -- routing --------------------------------------------------------------------------

    def _route(self, node_id: int, node: NodeConfig | None) -> None:
        if node is None or node_id == self.id or self.endpoint is None:
            return
        addresses = parse_context(node.context)
        if addresses is None:
            member = self.cluster.members.get(node_id)
            if member is None:
                log.warning("node %d: no address known for node %d", self.id, node_id)
                return
            addresses = (member.peer, member.http)
        if self._own_endpoint:
            self.endpoint.set_peer(node_id, addresses[0])

    def http_address(self, node_id: int) -> Address | None:
        """The client API address of a member, from the log's membership or the config."""
        raft = self.raft
        node = raft.node(node_id) if raft is not None else None
        if node is not None:
            addresses = parse_context(node.context)
            if addresses is not None:
                return addresses[1]
        member = self.cluster.members.get(node_id)
        return member.http if member is not None else None

    @property
    def leader_url(self) -> str | None:
        """``http://host:port`` of the leader's client API, if a leader is known."""
        raft = self.raft
        if raft is None or raft.leader_id is None:
            return None
        address = self.http_address(raft.leader_id)
        return f"http://{format_address(address)}" if address else None

    def _not_leader(self) -> NotLeaderError:
        raft = self.raft
        leader = raft.leader_id if raft is not None else None
        if leader is None or leader == self.id:
            return NoLeaderError()
        return NotLeaderError(leader, self.leader_url)

    # -- tasks ------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        assert self.endpoint is not None
        channel = self.endpoint.receive_channel
        inbox = self._inbox_send
        counters = self.counters
        async for datagram in channel:
            try:
                msg = decode(datagram.payload)
            except MalformedMessage:
                counters.malformed += 1
                continue
            try:
                inbox.send_nowait(("msg", datagram.sender_id, msg))
            except trio.WouldBlock:
                counters.inbox_overflow += 1

    async def _ticker(self) -> None:
        interval = self.cluster.timing.tick_ms / 1000
        deadline = trio.current_time()
        self._last_tick = deadline
        while True:
            deadline += interval
            await trio.sleep_until(deadline)
            try:
                self._inbox_send.send_nowait(_TICK)
            except trio.WouldBlock:
                pass  # the main loop is behind; the next tick carries the elapsed time

    async def _main_loop(self) -> None:
        inbox = self._inbox
        lease_reads = self.lease_reads
        while True:
            item: tuple[Any, ...] | None = None
            if self._to_propose:
                # Proposals left over from a capped batch: go round again at once.
                await trio.lowlevel.checkpoint()
            else:
                item = await inbox.receive()
            if lease_reads:
                # The core judges its lease by the time periodic() told it.
                # After this process was stopped (SIGSTOP) the reads and
                # ReadIndex requests queued meanwhile may be handled before
                # the next tick: bring the core's clock up to date first, or
                # an expired lease would answer them (a stale read).
                self._advance_clock(trio.current_time())
            if item is not None:
                self._handle(item)
            while True:
                try:
                    item = inbox.receive_nowait()
                except trio.WouldBlock:
                    break
                self._handle(item)
            if self._to_read:
                self._flush_reads()
            self._flush_proposals()
            await self._process()

    # -- input ----------------------------------------------------------------------------------

    def _handle(self, item: tuple[Any, ...]) -> None:
        raft = self.raft
        assert raft is not None
        kind = item[0]
        if kind == "msg":
            msg: WireMessage = item[2]
            if isinstance(msg, SnapshotChunk):
                self._on_chunk(item[1], msg)
            elif isinstance(msg, SnapshotAck):
                sender = self._senders.get(item[1])
                if sender is not None:
                    sender.on_ack(msg)
            else:
                raft.recv(item[1], msg)
        elif kind == "tick":
            now = trio.current_time()
            self._advance_clock(now)
            self._retry_deferred()
            if self._deadlines:
                self._expire(now)
        elif kind == "wake":
            pass  # proposals and reads already in self._to_propose and self._to_read
        elif kind == "propose":
            self._to_propose.append(item[1])
        elif kind == "member":
            self._start_member_change(item[1])
        elif kind == "transfer":
            self._start_transfer(item[1])

    def _advance_clock(self, now: float) -> None:
        """Tell the core how much time passed since it last heard (whole milliseconds)."""
        raft = self.raft
        assert raft is not None
        elapsed = (now - self._last_tick) * 1000 + self._tick_carry
        self._last_tick = now
        whole = math.floor(elapsed)
        self._tick_carry = elapsed - whole
        if whole > 0:
            raft.periodic(whole)

    def _expire(self, now: float) -> None:
        """Fail every waiter whose deadline has passed: its outcome is unknown.

        Each deque holds the waiters of one timeout in deadline order; done
        waiters are dropped from the front as they are met, which keeps a
        deque about as long as the calls in flight.
        """
        for timeout, queue in self._deadlines.items():
            while queue:
                waiter = queue[0]
                if not waiter.done:
                    if waiter.deadline > now:
                        break
                    if self._proposals.get(waiter.index) is waiter:
                        del self._proposals[waiter.index]
                    waiter.fail(
                        ProposalTimeout(
                            f"{waiter.what} did not complete within {timeout:g} s; "
                            "its outcome is unknown"
                        )
                    )
                queue.popleft()

    def _flush_proposals(self) -> None:
        batch = self._to_propose
        if not batch:
            return
        if len(batch) > MAX_BATCH:
            # A capped batch lets the followers work on this one while the
            # leader persists the next (pipelining instead of lockstep).
            batch, self._to_propose = batch[:MAX_BATCH], batch[MAX_BATCH:]
        else:
            self._to_propose = []
        raft = self.raft
        assert raft is not None
        try:
            term, index = raft.recv_entries_batch([p.command for p in batch])
        except NotLeader as exc:
            error: Exception = (
                _transferring(raft.transfer_target)
                if isinstance(exc, TransferInProgress)
                else self._not_leader()
            )
            for p in batch:
                p.fail(error)
            return
        self.counters.proposals += len(batch)
        proposals = self._proposals
        for p in batch:
            p.term = term
            p.index = index
            stale = proposals.get(index)
            if stale is not None:
                # An older proposal whose index we now reuse was popped from
                # our log. Another server may still hold it and commit it
                # (§5.4.2), so its outcome is unknown, not lost.
                stale.fail(ProposalTimeout("outcome unknown: the entry left this node's log"))
            proposals[index] = p
            index += 1

    def _flush_reads(self) -> None:
        # Every read that arrived since the last wake-up joins the same
        # ReadIndex round: the core confirms them all with one heartbeat
        # (thesis §6.4; etcd batches the same way).
        reads, self._to_read = self._to_read, []
        for read in reads:
            if not read.done:
                self._start_read(read)

    def _start_read(self, read: Read) -> None:
        # On a follower the core forwards the read to the leader (thesis §6.4);
        # it refuses only when no leader is known.
        raft = self.raft
        assert raft is not None
        try:
            raft.read_index(read)
        except NotLeader:
            read.fail(self._not_leader())
        except LeaderNotReady:
            self._reads_deferred.append(read)

    def _retry_deferred(self) -> None:
        if self._reads_deferred:
            reads, self._reads_deferred = self._reads_deferred, []
            for read in reads:
                if not read.done:
                    self._start_read(read)
        if self._promote:
            for node_id in sorted(self._promote):
                self._try_promote(node_id)

    # -- snapshots in flight ------------------------------------------------------------------

    def _send_wire(self, to: int, msg: WireMessage) -> None:
        endpoint = self.endpoint
        assert endpoint is not None
        try:
            endpoint.send(to, encode(msg))
        except net.PayloadTooLarge:
            log.error("node %d: message to %d too large for one datagram; dropped", self.id, to)

    # -- the Ready cycle ---------------------------------------------------------------------------

    async def _process(self) -> None:
        raft = self.raft
        durable = self._durable
        assert raft is not None and durable is not None
        while raft.has_ready():
            rd = raft.ready()
            # Thesis §10.2.1: a leader may send its AppendEntries before its own
            # fsync ends (the core counts the leader's copy only once advance()
            # says it is durable), so the followers' fsyncs overlap the
            # leader's instead of following it: one fsync off each write's
            # path. Only without a new term or vote, and with no truncation.
            early = rd.hard_state is None and rd.truncate_from is None and raft.role is Role.LEADER
            if early:
                for to, msg in rd.messages:
                    self._send_wire(to, msg)
            if (
                rd.hard_state is not None
                or rd.entries
                or rd.truncate_from is not None
                or rd.compact_upto is not None
            ):
                start = trio.current_time()
                if self._persist_in_thread:
                    await trio.to_thread.run_sync(durable.persist, rd)
                else:
                    durable.persist(rd)
                self._observe_fsync(trio.current_time() - start)
                self.counters.fsyncs += 1
            if not early:
                for to, msg in rd.messages:
                    self._send_wire(to, msg)
            if rd.committed:
                self._apply(rd.committed)
            for event in rd.events:
                self._on_event(event)
            raft.advance(rd)
            snapshot = raft.snapshot
            if snapshot is not None and snapshot.index > self._covered_checked:
                self._fail_covered(snapshot.index, snapshot.term)
            if self._reads_waiting:
                self._serve_reads()
            if self._member_waiters:
                self._check_member_waiters()
            await self._maybe_snapshot()

    def _apply(self, entries: list[Entry]) -> None:
        sm = self.state_machine
        proposals = self._proposals
        normal = EntryType.NORMAL
        for entry in entries:
            index = entry.index
            if index <= self._applied:
                continue
            result: Any = None
            if entry.type == normal:
                try:
                    result = sm.apply(index, entry.data)
                except Exception as exc:  # the application's error is the proposer's answer
                    log.exception("node %d: state machine failed on entry %d", self.id, index)
                    result = exc
            self._applied = index
            waiter = proposals.pop(index, None) if proposals else None
            if waiter is not None:
                if waiter.term == entry.term:
                    if isinstance(result, Exception):
                        waiter.fail(result)
                    else:
                        waiter.resolve(result)
                else:
                    self.counters.proposals_lost += 1
                    waiter.fail(ProposalLost("the proposal was replaced by a new leader's entry"))
        self.counters.applied_entries += len(entries)

    def _fail_covered(self, index: int, term: int) -> None:
        """Answer the proposals a snapshot covered before they were applied here.

        Their entries were compacted by a snapshot installed from the leader
        and will never reach ``_apply``: rather than hang until their
        deadline, they fail now, as lost or unknown, never as a success.
        """
        self._covered_checked = index
        proposals = self._proposals
        covered = [i for i in proposals if i <= index]
        for i in covered:
            waiter = proposals.pop(i)
            error = covered_by_snapshot(waiter.term, term)
            if isinstance(error, ProposalLost):
                self.counters.proposals_lost += 1
            waiter.fail(error)

    def _on_event(self, event: object) -> None:
        raft = self.raft
        assert raft is not None
        if isinstance(event, ReadReady):
            read = event.ctx
            assert isinstance(read, Read)
            read.index = event.index
            self._reads_waiting.append(read)
        elif isinstance(event, ReadLost):
            # The leader was deposed, or (on a follower) the leader it asked did
            # not answer: ask again at the next tick, whoever leads then, until
            # the read's deadline.
            read = event.ctx
            assert isinstance(read, Read)
            self._reads_deferred.append(read)
        elif isinstance(event, MembershipChanged):
            self._route(event.node_id, event.node)
        elif isinstance(event, NodeHasSufficientLogs):
            self._promote.add(event.node_id)
            self._try_promote(event.node_id)
        elif isinstance(event, SendSnapshot):
            self._start_sender(event.node_id)
        elif isinstance(event, LeaderChanged):
            self.counters.leader_changes += 1
            log.info("node %d: leader is %s in term %d", self.id, event.leader_id, event.term)
            if self._transfers:
                self._on_transfer_event(event)
        elif isinstance(event, TransferStarted | TransferFinished | TransferAborted):
            self._on_transfer_event(event)
        elif isinstance(event, RoleChanged):
            if event.role is Role.CANDIDATE:
                self.counters.elections += 1
            log.info("node %d: %s in term %d", self.id, event.role.value, event.term)
            if event.role is not Role.LEADER:
                self._senders.clear()
        elif isinstance(event, RemovedSelf):
            log.warning(
                "node %d: removed from the cluster (entry %d); stopping", self.id, event.index
            )
            self.removed.set()

    def _serve_reads(self) -> None:
        applied = self._applied
        waiting = []
        for read in self._reads_waiting:
            if read.done:
                continue
            if read.index <= applied:
                try:
                    read.resolve(read.query(self.state_machine))
                except Exception as exc:
                    read.fail(exc)
            else:
                waiting.append(read)
        self._reads_waiting = waiting

    # -- the public API ----------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._stopping or not self.started.is_set() or self._stopped.is_set():
            raise NodeStopped("node is not running")

    def _add_deadline(self, waiter: Waiter, timeout: float, what: str) -> None:
        # The main loop fails the waiter at its deadline (``_expire``).
        waiter.deadline = trio.current_time() + timeout
        waiter.what = what
        queue = self._deadlines.get(timeout)
        if queue is None:
            queue = self._deadlines[timeout] = collections.deque()
        queue.append(waiter)

    async def _wait(self, waiter: Waiter, timeout: float, what: str) -> Any:
        if not waiter.done:
            self._add_deadline(waiter, timeout, what)
            await waiter.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def submit(self, command: bytes, *, timeout: float = 5.0) -> Any:
        """Replicate ``command`` and return what the state machine's ``apply`` returned.

        Raises:
            NotLeaderError: this node is not the leader (``leader_url`` names it).
            NoLeaderError: no leader is known right now.
            LeadershipTransferring: the leader is handing over leadership (at
                most an election timeout); retry shortly.
            ProposalLost: a new leader replaced the entry; retrying is safe with sessions.
            ProposalTimeout: no answer within ``timeout``; the outcome is unknown.
            NodeStopped: the node is not running.
            ValueError: the command is longer than the cluster's ``max_command``.
        """
        self._check_running()
        if len(command) > self._max_command:
            raise ValueError(
                f"command of {len(command)} bytes exceeds the limit of {self._max_command}"
            )
        raft = self.raft
        assert raft is not None
        if raft.role is not Role.LEADER:
            raise self._not_leader()
        if raft.transfer_target is not None:
            raise _transferring(raft.transfer_target)
        proposal = Proposal(command)
        if len(self._to_propose) < MAX_PENDING_PROPOSALS:
            self._queue_proposal(proposal)
        else:
            await self._inbox_send.send(("propose", proposal))
        return await self._wait(proposal, timeout, "proposal")

    def submit_nowait(
        self,
        command: bytes,
        callback: Callable[[Any, BaseException | None], None],
        *,
        timeout: float = 5.0,
    ) -> None:
        """Start replicating ``command``; ``callback(result, error)`` gets the outcome.

        The callback-style twin of :meth:`submit` for callers with many
        proposals in flight (no task per proposal). It must be called from
        the node's trio thread; the callback runs there too, inside the
        node's main loop, exactly once: with ``(result, None)`` when the
        entry is applied, or ``(None, error)`` with one of the errors
        :meth:`submit` raises. It must not block; it may call
        ``submit_nowait`` again.

        Raises:
            NotLeaderError, NoLeaderError, LeadershipTransferring, NodeStopped,
            ValueError: as for :meth:`submit`.
            trio.WouldBlock: too many proposals are waiting for the main loop already.
        """
        self._check_running()
        if len(command) > self._max_command:
            raise ValueError(
                f"command of {len(command)} bytes exceeds the limit of {self._max_command}"
            )
        raft = self.raft
        assert raft is not None
        if raft.role is not Role.LEADER:
            raise self._not_leader()
        if raft.transfer_target is not None:
            raise _transferring(raft.transfer_target)
        if len(self._to_propose) >= MAX_PENDING_PROPOSALS:
            raise trio.WouldBlock
        proposal = Proposal(command)
        proposal.callback = callback
        self._add_deadline(proposal, timeout, "proposal")
        self._queue_proposal(proposal)

    def _queue_proposal(self, proposal: Proposal) -> None:
        # The main loop takes the whole list at once; only the first
        # proposal of a batch needs to wake it.
        pending = self._to_propose
        if not pending:
            try:
                self._inbox_send.send_nowait(_PROPOSE)
            except trio.WouldBlock:
                pass  # the inbox is full: the main loop is awake already
        pending.append(proposal)

    async def read(
        self, query: Callable[[Any], T], *, timeout: float = 5.0, forward: bool = True
    ) -> T:
        """Run ``query(state_machine)`` linearizably and return its result.

        On the leader: once a heartbeat round confirms its leadership
        (ReadIndex, thesis §6.4), or at once while it holds a lease
        (``lease_reads``, §6.4.1). On a follower, with ``forward`` (the
        default): the follower asks the leader for a read index (one round
        trip to the leader on top of the leader's own round), waits until it
        has applied that index, and answers from its own state machine.

        Raises:
            NotLeaderError: this node is not the leader and ``forward`` is False.
            NoLeaderError: no leader is known right now.
            ProposalTimeout: not answered within ``timeout`` seconds.
            NodeStopped: the node is not running.
        """
        self._check_running()
        raft = self.raft
        assert raft is not None
        if raft.role is not Role.LEADER and (not forward or raft.leader_id is None):
            raise self._not_leader()
        read = Read(query)
        if not self._to_read:
            try:
                self._inbox_send.send_nowait(_PROPOSE)
            except trio.WouldBlock:
                pass  # the inbox is full: the main loop is awake already
        self._to_read.append(read)
        result: T = await self._wait(read, timeout, "read")
        return result

    async def wait_for_leader(self, *, timeout: float = 10.0) -> int:
        """Wait until this node knows a leader (itself or another); that leader's id.

        A node starts without one: call this after start before :meth:`submit`
        or :meth:`read`, which raise :class:`NoLeaderError` rather than wait.
        It looks once per tick (``cluster.timing.tick_ms``).

        Raises:
            NoLeaderError: none was known within ``timeout`` seconds.
            NodeStopped: the node is not running (or stopped while waiting).
        """
        self._check_running()
        with trio.move_on_after(timeout):
            while True:
                raft = self.raft
                assert raft is not None
                leader = raft.leader_id
                if leader is not None and (leader != self.id or raft.role is Role.LEADER):
                    return leader
                await trio.sleep(self.cluster.timing.tick_ms / 1000)
                self._check_running()
        raise NoLeaderError()

    def status(self) -> dict[str, Any]:
        """A JSON-ready summary of this node's view of the cluster."""
        raft = self.raft
        if raft is None:
            return {"id": self.id, "role": "starting"}
        members = []
        for node in raft.membership().nodes:
            addresses = parse_context(node.context)
            member = self.cluster.members.get(node.node_id)
            peer = addresses[0] if addresses else (member.peer if member else None)
            http = addresses[1] if addresses else (member.http if member else None)
            members.append(
                {
                    "id": node.node_id,
                    "voting": node.voting,
                    "peer": format_address(peer) if peer else None,
                    "http": format_address(http) if http else None,
                }
            )
        snapshot = raft.snapshot
        return {
            "id": self.id,
            "role": raft.role.value,
            "term": raft.term,
            "leader_id": raft.leader_id,
            "leader_url": self.leader_url,
            "commit": raft.commit_index,
            "applied": self._applied,
            "members": members,
            "log": {"first": raft.first_index, "last": raft.current_index},
            "snapshot": {"index": snapshot.index, "term": snapshot.term} if snapshot else None,
        }


def _transferring(target: int | None) -> LeadershipTransferring:
    to = f" to node {target}" if target is not None else ""
    return LeadershipTransferring(
        f"leadership is being transferred{to}; retry shortly (same Idempotency-Key)"
    )
