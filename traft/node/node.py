"""A Raft node: one trio nursery around one pure core.

Theory of operation. :class:`Node` supervises four tasks in one nursery:

* the endpoint's ``serve`` (UDP, or an in-memory network in tests);
* the receive loop, which decodes datagrams and puts them in the inbox's
  peer queue without ever blocking (a full queue drops and counts);
* the ticker, a drift-free ``deadline += interval`` loop that wakes the main
  loop every ``tick_ms``;
* the main loop, the only task that touches the core. It waits for input
  (:mod:`traft.node.inbox`), takes the peers' messages first, then the tick,
  then client work, feeds it all to the core (client proposals as ONE
  ``recv_entries`` batch), then works off Ready values: persist with one
  fsync (a leader's batch of several entries in a worker thread, everything
  else inline), send, apply, advance. While it waits for the disk, new input
  queues up and becomes the next batch: that is the group commit.

Callers (``submit``, ``read``, membership calls) hand the main loop a
waiter (:mod:`traft.node.waiters`) and park on it; :class:`Deadlines` fails
it at its deadline. The rest lives in collaborators the node owns, one
module each: proposals (batching, answers) in :mod:`traft.node.proposals`,
reads in :mod:`traft.node.reads`, membership changes in
:mod:`traft.node.members`, leadership transfer in
:mod:`traft.node.leadership`, snapshots (taking, sending, installing) in
:mod:`traft.node.snapshots`; message sizes come from the node's
:class:`~traft.wire.Budget`. Node keeps the lifecycle, the routing and the
main loop, and answers :meth:`Node.status` and :meth:`Node.metrics_status`.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import trio

import net
from traft.core import (
    Config,
    EntryType,
    LeaderChanged,
    MembershipChanged,
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
from traft.node.durable import Durable, recover
from traft.node.errors import (
    LeadershipTransferring,
    NodeError,
    NodeStopped,
    NoLeaderError,
    NotLeaderError,
    Overloaded,
    ProposalTimeout,
    TransferFailed,
)
from traft.node.inbox import Inbox
from traft.node.leadership import Transfers
from traft.node.members import MemberChanges, member_context
from traft.node.metrics import NodeCollector, NodeCounters, make_registry
from traft.node.proposals import MAX_UNAPPLIED, MAX_UNAPPLIED_BYTES, Proposals
from traft.node.reads import Reads
from traft.node.routes import Routes
from traft.node.snapshots import Snapshots
from traft.node.statemachine import StateMachine
from traft.node.status import NodeStatus, describe, take_status
from traft.node.waiters import Deadlines, LeaderTransfer, MemberChange, Proposal, Read, Waiter
from traft.wire import (
    Budget,
    MalformedMessage,
    SnapshotAck,
    SnapshotChunk,
    WireMessage,
    decode,
    encode,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Peer messages queued for the main loop before the receive loop drops them.
PEER_QUEUE_SIZE = 8192
# Client work (overflowing proposals, membership changes, transfers) queued
# for the main loop before callers wait for room.
CLIENT_QUEUE_SIZE = 8192


class Node:
    """One member of a traft cluster, running a user's state machine.

    Args:
        node_id: this node's id (must be in ``cluster`` unless ``endpoint`` is given).
        cluster: the cluster configuration.
        data_dir: where this node keeps its meta file, log and snapshots.
        state_machine: the application (see :class:`~traft.node.statemachine.StateMachine`).
        endpoint: a datagram endpoint to use instead of UDP (tests use
            ``net.MemoryNetwork``).
        rng: randomness for the core (default: seeded from the OS).
        persist_in_thread: the leader writes and fsyncs a batch of entries
            in a worker thread (the default) so its event loop keeps serving
            clients meanwhile; a follower, and a leader with a single new
            entry, persist inline (see ``_process``). False
            blocks the loop for every fsync instead, which saves the thread
            hop (tests under trio's autojump clock use it: the mock clock
            does not see threads).
        faults: a fault injector for the UDP endpoint the node makes (fault
            testing: ``traft serve --enable-faults``); ignored with ``endpoint``.
        lease_reads: the leader answers reads from its lease, without a
            heartbeat round (``Config.lease_reads``, thesis §6.4.1): safe only
            while the servers' clocks drift apart by less than the core's
            ``lease_drift_ms`` per election timeout.
        max_unapplied: the backlog bound: proposals accepted (listed for
            the core, or entries in the log) and not yet applied, at most.
            Beyond it ``submit`` waits for room (its timeout still running,
            then :class:`~traft.node.errors.Overloaded`) and
            ``submit_nowait`` raises ``Overloaded`` at once. It keeps the
            leader's memory bounded under any offered load, and a
            proposal's latency near ``max_unapplied`` / throughput
            (docs/operations.md, "Overload").
        max_unapplied_bytes: the same bound in command bytes (a command
            larger than it is still proposed alone).
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
        max_unapplied: int = MAX_UNAPPLIED,
        max_unapplied_bytes: int = MAX_UNAPPLIED_BYTES,
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
        self._routes = Routes(node_id, cluster)
        # The message sizes: from the endpoint given, or (until run() makes
        # it, and asks it again) from the one run() will make.
        self.budget = (
            Budget.for_endpoint(endpoint, max_command=cluster.max_command)
            if endpoint is not None
            else Budget.for_datagram(
                cluster.max_datagram,
                authenticated=cluster.key is not None,
                max_message=Budget.message_size_for(cluster.max_command),
                max_command=cluster.max_command,
            )
        )
        self.raft: Raft | None = None
        self._durable: Durable | None = None
        self.counters = NodeCounters()
        self.registry, self._observe_fsync = make_registry(
            NodeCollector(node_id, self.metrics_status, self.counters, self._endpoint_stats)
        )
        self.removed = trio.Event()
        self.started = trio.Event()
        self._stopped = trio.Event()
        self._stopping = False
        self._inbox = Inbox(peer_capacity=PEER_QUEUE_SIZE, client_capacity=CLIENT_QUEUE_SIZE)
        self._deadlines = Deadlines()
        self._proposals = Proposals(
            node_id,
            self.counters,
            max_unapplied=max_unapplied,
            max_unapplied_bytes=max_unapplied_bytes,
        )
        self._reads = Reads(self._not_leader)
        self._members = MemberChanges(self._not_leader)
        self._transfers = Transfers(node_id, self._not_leader)
        self._snapshots: Snapshots | None = None  # once storage is open (run)
        self._nursery: trio.Nursery | None = None
        self._cm: Any = None
        self._last_tick = 0.0
        self._tick_carry = 0.0
        self._applied = 0
        self._covered_checked = 0  # proposals at or below it are not covered by a snapshot

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

    def _core_config(self) -> Config:
        t = self.cluster.timing
        budget = self.budget
        return Config(
            election_timeout_ms=t.election_timeout_ms,
            request_timeout_ms=t.heartbeat_ms,
            max_entries_per_message=4096,
            max_bytes_per_message=budget.append_bytes,
            entry_overhead_bytes=budget.entry_overhead,
            snapshot_resend_ms=max(4 * t.election_timeout_ms, 2000),
            lease_reads=self.lease_reads,
        )

    def _open(self, config: Config) -> Raft:
        """Open storage and rebuild the core and the state machine (worker thread)."""
        self._durable, raft = recover(
            self.id,
            self.data_dir,
            config=config,
            rng=self._rng,
            founding=self._routes.founding(),
            state_machine=self.state_machine,
            segment_bytes=self._segment_bytes,
        )
        self._applied = raft.last_applied
        return raft

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the node until :meth:`stop` (or cancellation).

        Raises:
            storage.CorruptLogError: the data directory is damaged.
            OSError: the peer address cannot be bound.
        """
        if self.endpoint is None:
            self.endpoint = self._routes.udp_endpoint(self.faults)
        endpoint = self.endpoint
        # The cluster's max_command, at most what one message carries (an
        # endpoint made by the caller may carry less than the cluster allows).
        self.budget = Budget.for_endpoint(endpoint, max_command=self.cluster.max_command)
        config = self._core_config()
        if self._persist_in_thread:
            raft = await trio.to_thread.run_sync(self._open, config)
        else:
            raft = self._open(config)
        self.raft = raft
        self._proposals.note_applied(raft.last_applied)
        durable = self._durable
        assert durable is not None
        if self._own_endpoint:
            self._routes.endpoint = endpoint
        self._routes.start(raft.membership())
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._snapshots = Snapshots(
                    node_id=self.id,
                    durable=durable,
                    state_machine=self.state_machine,
                    counters=self.counters,
                    send=self._send_wire,
                    budget=self.budget,
                    policy=self.cluster.snapshot,
                    nursery=nursery,
                    snapshot_index=raft.last_applied,
                    in_thread=self._persist_in_thread,
                )
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
        for work in self._inbox.close():
            work.fail(error)
        self._proposals.fail_all(error)
        self._reads.fail_all(error)
        self._members.fail_all(error)
        self._transfers.fail_all(error)
        self._deadlines.fail_all(error)
        if self._snapshots is not None:
            self._snapshots.abort()
        if self._durable is not None:
            self._durable.close()
            self._durable = None
        self._stopped.set()

    # -- addresses ------------------------------------------------------------------------

    def http_address(self, node_id: int) -> Address | None:
        """The client API address of a member, from the log's membership or the config."""
        raft = self.raft
        return self._routes.http_address(raft.node(node_id) if raft else None, node_id)

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
        put_peer = self._inbox.put_peer
        counters = self.counters
        async for datagram in channel:
            try:
                msg = decode(datagram.payload)
            except MalformedMessage:
                counters.malformed += 1
                continue
            if not put_peer(datagram.sender_id, msg):
                counters.inbox_overflow += 1

    async def _ticker(self) -> None:
        interval = self.cluster.timing.tick_ms / 1000
        deadline = trio.current_time()
        self._last_tick = deadline
        while True:
            deadline += interval
            await trio.sleep_until(deadline)
            # A tick is a flag: if the main loop is behind, the next one
            # carries all the elapsed time.
            self._inbox.tick()

    async def _main_loop(self) -> None:
        inbox = self._inbox
        proposals = self._proposals
        lease_reads = self.lease_reads
        raft = self.raft
        assert raft is not None
        while True:
            if proposals.leftover:
                # Proposals left over from a capped batch: go round again at once.
                await trio.lowlevel.checkpoint()
            else:
                await inbox.wait()
            if lease_reads:
                # The core judges its lease by the time periodic() told it.
                # After this process was stopped (SIGSTOP) the reads and
                # ReadIndex requests queued meanwhile may be handled before
                # the next tick: bring the core's clock up to date first, or
                # an expired lease would answer them (a stale read).
                self._advance_clock(trio.current_time())
            # Peers first: heartbeats, votes and their answers never wait
            # behind client work.
            for from_id, msg in inbox.take_peers():
                self._on_peer(raft, from_id, msg)
            if inbox.take_tick():
                self._on_tick(raft)
            for work in inbox.take_client():
                self._on_client(raft, work)
            self._reads.flush(raft)
            proposals.flush(raft, self._refusal)
            await self._process()

    # -- input ----------------------------------------------------------------------------------

    def _on_peer(self, raft: Raft, from_id: int, msg: WireMessage) -> None:
        if isinstance(msg, SnapshotChunk):
            assert self._snapshots is not None
            membership = self._snapshots.on_chunk(raft, from_id, msg)
            if membership is not None:
                self._applied = self._snapshots.snapshot_index
                self._proposals.note_applied(self._applied)
                for node in membership.nodes:
                    self._routes.route(node.node_id, node)
        elif isinstance(msg, SnapshotAck):
            assert self._snapshots is not None
            self._snapshots.on_ack(from_id, msg)
        else:
            raft.recv(from_id, msg)

    def _on_tick(self, raft: Raft) -> None:
        now = trio.current_time()
        self._advance_clock(now)
        self._reads.retry(raft)
        self._members.retry_promotions(raft)
        if self._deadlines:
            for waiter in self._deadlines.expire(now):
                self._proposals.forget(waiter)

    def _on_client(self, raft: Raft, work: MemberChange | LeaderTransfer) -> None:
        if isinstance(work, MemberChange):
            self._members.start(raft, work)
        else:
            self._transfers.start(raft, work)

    def _refusal(self, exc: NotLeader) -> NodeError:
        """The error for proposals the core refused with ``exc``."""
        if isinstance(exc, TransferInProgress):
            raft = self.raft
            return LeadershipTransferring.to(raft.transfer_target if raft is not None else None)
        return self._not_leader()

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

    # -- output ---------------------------------------------------------------------------------

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
                # Only the leader hands its fsync to a worker thread, so that
                # client work goes on meanwhile. A follower's fsync is on the
                # path of every write (the leader waits for its answer) and its
                # loop has little else to do (the next AppendEntries waits in
                # the socket's buffer): the thread hop, two wake-ups, only
                # delays the answer. A batch of one entry means the clients
                # are few and waiting, so the leader keeps that fsync inline
                # too (docs/benchmarks.md, "Where a single PUT's time goes").
                if self._persist_in_thread and raft.role is Role.LEADER and len(rd.entries) > 1:
                    await trio.to_thread.run_sync(durable.persist, rd)
                else:
                    durable.persist(rd)
                self._observe_fsync(trio.current_time() - start)
                self.counters.fsyncs += 1
            if not early:
                for to, msg in rd.messages:
                    self._send_wire(to, msg)
            if rd.committed:
                self._applied = self._proposals.apply(
                    rd.committed, self.state_machine, self._applied
                )
            for event in rd.events:
                self._on_event(event)
            raft.advance(rd)
            snapshot = raft.snapshot
            if snapshot is not None and snapshot.index > self._covered_checked:
                self._covered_checked = snapshot.index
                self._proposals.fail_covered(snapshot.index, snapshot.term)
            if self._reads.has_ready:
                self._reads.serve(self._applied, self.state_machine)
            if self._members:
                self._members.check(raft, self._applied)
            assert self._snapshots is not None
            await self._snapshots.maybe_take(raft)

    def _on_event(self, event: object) -> None:
        raft = self.raft
        assert raft is not None
        if isinstance(event, ReadReady):
            self._reads.confirmed(event.ctx, event.index)
        elif isinstance(event, ReadLost):
            # The leader was deposed, or (on a follower) the leader it asked did
            # not answer: ask again at the next tick, whoever leads then, until
            # the read's deadline.
            self._reads.lost(event.ctx)
        elif isinstance(event, MembershipChanged):
            self._routes.route(event.node_id, event.node)
        elif isinstance(event, NodeHasSufficientLogs):
            self._members.caught_up(raft, event.node_id)
        elif isinstance(event, SendSnapshot):
            assert self._snapshots is not None
            self._snapshots.start_sender(raft, event.node_id)
        elif isinstance(event, LeaderChanged):
            self.counters.leader_changes += 1
            log.info("node %d: leader is %s in term %d", self.id, event.leader_id, event.term)
            if self._transfers:
                self._transfers.on_event(event)
        elif isinstance(event, TransferStarted | TransferFinished | TransferAborted):
            self._transfers.on_event(event)
        elif isinstance(event, RoleChanged):
            if event.role is Role.CANDIDATE:
                self.counters.elections += 1
            log.info("node %d: %s in term %d", self.id, event.role.value, event.term)
            if event.role is not Role.LEADER and self._snapshots is not None:
                self._snapshots.forget_senders()
        elif isinstance(event, RemovedSelf):
            log.warning(
                "node %d: removed from the cluster (entry %d); stopping", self.id, event.index
            )
            self.removed.set()

    # -- the public API ----------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._stopping or not self.started.is_set() or self._stopped.is_set():
            raise NodeStopped("node is not running")

    async def _wait(self, waiter: Waiter, timeout: float, what: str) -> Any:
        if not waiter.done:
            self._deadlines.add(waiter, trio.current_time(), timeout, what)
            await waiter.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def _proposable(self, command: bytes) -> Proposal:
        """The prechecks of :meth:`submit` and :meth:`submit_nowait`, in one place."""
        self._check_running()
        self.budget.check_command(command)
        raft = self.raft
        assert raft is not None
        if raft.role is not Role.LEADER:
            raise self._not_leader()
        if raft.transfer_target is not None:
            raise LeadershipTransferring.to(raft.transfer_target)
        return Proposal(command)

    def _list_proposal(self, proposal: Proposal) -> None:
        # The main loop takes the whole list at once; only the first
        # proposal of a batch needs to wake it.
        if self._proposals.add(proposal):
            self._inbox.wake()

    async def submit(self, command: bytes, *, timeout: float = 5.0) -> Any:
        """Replicate ``command`` and return what the state machine's ``apply`` returned.

        Raises:
            NotLeaderError: this node is not the leader (``leader_url`` names it).
            NoLeaderError: no leader is known right now.
            LeadershipTransferring: the leader is handing over leadership (at
                most an election timeout); retry shortly.
            ProposalLost: a new leader replaced the entry; retrying is safe with sessions.
            ProposalTimeout: no answer within ``timeout``; the outcome is unknown.
            Overloaded: (a ProposalTimeout) the backlog bound had no room
                within ``timeout``; the command was not proposed.
            NodeStopped: the node is not running.
            ValueError: the command is longer than ``budget.max_command`` (the
                cluster's ``max_command``, at most what one message carries).
        """
        proposal = self._proposable(command)
        if not self._proposals.has_room():
            # Backpressure: wait for room in the backlog bound, the deadline running.
            deadline = trio.current_time() + timeout
            with trio.move_on_at(deadline):
                while not self._proposals.has_room():
                    await self._proposals.wait_for_room()
                    self._check_running()
            if not self._proposals.has_room():
                self.counters.proposals_overloaded += 1
                raise Overloaded(f"no room in the backlog bound within {timeout:g} s")
            proposal = self._proposable(command)  # still the leader?
            timeout = deadline - trio.current_time()
        self._list_proposal(proposal)
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
            Overloaded: the backlog bound is full (see ``max_unapplied``);
                nothing was proposed.
        """
        proposal = self._proposable(command)
        if not self._proposals.has_room():
            self.counters.proposals_overloaded += 1
            raise Overloaded("the leader's backlog of unapplied proposals is full")
        proposal.callback = callback
        self._deadlines.add(proposal, trio.current_time(), timeout, "proposal")
        self._list_proposal(proposal)

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
        if self._reads.add(read):
            self._inbox.wake()
        result: T = await self._wait(read, timeout, "read")
        return result

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
        await self._inbox.put_client(change)
        await self._wait(change, timeout, "membership change")

    async def remove_member(self, node_id: int, *, timeout: float = 30.0) -> None:
        """Remove a node (the leader included) through the log.

        Raises:
            MemberChangeError, NotLeaderError, NoLeaderError, ProposalLost, ProposalTimeout, NodeStopped.
        """
        self._check_running()
        change = MemberChange(EntryType.REMOVE_NODE, node_id, b"", False)
        await self._inbox.put_client(change)
        await self._wait(change, timeout, "membership change")

    async def transfer_leadership(self, to: int | None = None, *, timeout: float = 5.0) -> int:
        """Hand leadership to node ``to`` (None: the most up-to-date voting
        follower) and return the new leader's id (see :mod:`traft.node.leadership`).

        Proposals are refused while the transfer runs (at most an election
        timeout: then the core gives up and they resume). The answer is the
        id of the first leader other than this node that it learns of:
        normally ``to``, though an election the transfer did not start may
        win first.

        Raises:
            NotLeaderError: this node is not the leader (NoLeaderError: none is known).
            TransferFailed: the core gave the transfer up (the target did not
                catch up or win in time), ``to`` is not a voting member, there
                is no follower to hand over to, or no new leader was seen
                within ``timeout`` seconds.
            NodeStopped: the node is not running.
        """
        self._check_running()
        raft = self.raft
        assert raft is not None
        if raft.role is not Role.LEADER:
            raise self._not_leader()
        if to == self.id:
            raise TransferFailed("this node is the leader already", to)
        waiter = LeaderTransfer(to)
        await self._inbox.put_client(waiter)
        try:
            leader: int = await self._wait(waiter, timeout, "leadership transfer")
        except ProposalTimeout:
            raise TransferFailed(f"no new leader within {timeout:g} s", waiter.target) from None
        return leader

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

    def metrics_status(self) -> NodeStatus:
        """This node's role, term and indexes now, as one record (what metrics read)."""
        proposals = self._proposals
        return take_status(self.id, self.raft, proposals.unapplied, proposals.unapplied_bytes)

    def _endpoint_stats(self) -> Mapping[str, int] | None:
        return self.endpoint.stats if self.endpoint else None

    def status(self) -> dict[str, Any]:
        """A JSON-ready summary of this node's view of the cluster."""
        raft = self.raft
        if raft is None:
            return {"id": self.id, "role": "starting"}
        members = self._routes.describe(raft.membership())
        return describe(self.id, raft, self._applied, self.leader_url, members)
