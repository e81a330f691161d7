"""An in-memory cluster of real :class:`~traft.core.Raft` servers.

Theory of operation: each :class:`SimServer` is a Raft core plus a tiny
driver that follows the Ready contract exactly, against
:class:`MemoryDisk`, an in-memory model of durable storage: whatever the
driver "fsyncs" there survives :meth:`Cluster.crash`, everything else is
lost. Messages go into :class:`~traft.sim.network.Network`, which holds them
in flight until the test or the simulator delivers, drops, duplicates or
reorders them. Nothing here reads a clock or the global random module, so a
run is a pure function of its inputs and seed.

The state machine is a hash chain over applied entry ids: two servers that
applied the same entries in the same order have the same ``state``; a
snapshot carries the chain value at its index. Beside it each server keeps a
:class:`~traft.sim.kv.KVStore` that applies the simulator's client commands.

A received snapshot is installed as the node installs one, in the steps of
:data:`INSTALL_STEPS`, each durable (or done) on its own; with
``install_ms`` set, virtual time passes before each step and the server
takes no other input meanwhile, so a crash can fall between any two. A
restart rebuilds the core from the disk the way ``Node._open`` does
(:meth:`MemoryDisk.recover`).

A server with ``early_send`` set sends a leader's Ready that has neither
hard state nor truncation before persisting it, as the node does (thesis
§10.2.1): the Ready waits in :class:`Syncing` for ``early_fsync_ms`` of
virtual time (:meth:`Cluster.run_syncs` completes it: persist, apply,
``advance()``) while the server keeps taking input but runs no other
Ready; a crash meanwhile loses its entries from the disk.

Hooks let an observer (the invariant checker, the client workload) see every
step without the cluster knowing about them: ``on_persist`` sees each Ready
(or, during an install, each part of one) once it is durable and before
anything is sent, ``observers`` see it after it was sent and applied (before
``advance``), ``on_apply`` sees each applied entry with the key-value
result, ``on_snapshot_saved`` a received snapshot's file once durable,
``on_install`` each install as it starts, and ``on_snapshot``/``on_crash``/
``on_restart`` see the rest. With ``eager`` set, a server is processed until
it has nothing left to do, so the core and the driver agree at every step.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable

import attrs

from traft.core import (
    Config,
    Entry,
    EntryType,
    Membership,
    MembershipChanged,
    NodeConfig,
    NodeHasSufficientLogs,
    Raft,
    RaftError,
    Ready,
    RemovedSelf,
    Role,
    SendSnapshot,
    SnapshotMeta,
)
from traft.core.messages import Message, RequestVote
from traft.sim.disk import MemoryDisk as MemoryDisk
from traft.sim.kv import KVStore
from traft.sim.network import Network

_MASK = (1 << 64) - 1
_NORMAL = EntryType.NORMAL


def chain(state: int, entry_id: int) -> int:
    """Fold one applied entry id into a state-machine hash."""
    return ((state * 1_000_003) ^ entry_id) & _MASK


@attrs.frozen
class SnapshotTransfer:
    """A whole snapshot in flight (the simulator ships it as one message)."""

    term: int
    meta: SnapshotMeta
    state: int
    kv: KVStore = attrs.Factory(KVStore)


SimMessage = Message | SnapshotTransfer

# The steps of a snapshot install on the receiver, each persisted (or done)
# on its own, with virtual time between them:
# save: the snapshot file is durable (the node's SnapshotReceiver commits it);
# restore: begin_load_snapshot, the state machine restored, end_load_snapshot;
# truncate: the install Ready's truncate_from is durable;
# compact: its compact_upto (and the rest of its storage part) is durable,
# then the Ready goes on as usual (send, apply, advance).
INSTALL_STEPS = ("save", "restore", "truncate", "compact")


@attrs.define
class Install:
    """A snapshot install in progress on a receiver (see :data:`INSTALL_STEPS`).

    ``crash_before`` (set by an ``on_install`` hook) crashes the server just
    before that step runs: 1 is after the save, 4 after the truncation and
    compaction are durable but before anything is sent or applied.
    """

    transfer: SnapshotTransfer
    sender: int
    started_ms: int
    step: int = 0
    due_ms: int = 0
    crash_before: int | None = None
    rd: Ready | None = None


@attrs.define
class Syncing:
    """A leader's Ready whose messages left before its fsync (thesis §10.2.1).

    The persist completes, and ``advance()`` is called, at ``due_ms``; until
    then the server takes input but runs no other Ready. A crash before then
    loses the Ready's entries from the server's disk.
    """

    rd: Ready
    due_ms: int


class SimServer:
    """One Raft core, its in-memory disk, and its applied state."""

    def __init__(self, node_id: int, config: Config, rng: random.Random) -> None:
        self.id = node_id
        self.config = config
        self.rng = rng
        self.disk = MemoryDisk()
        self.raft = Raft(node_id, config, rng)
        self.state = 0
        self.kv = KVStore()
        self.applied: list[Entry] = []
        self.keep_applied = True
        self.applied_index = 0
        self.alive = True
        self.removed = False
        self.crash_in_ready = False
        self.led_last_cycle = False
        self.promote: list[int] = []
        self.keep_events = True
        self.events: list[object] = []
        # A snapshot install in progress: the server takes no other input
        # (held in ``inbox``) and its clock waits (``missed_ms``) until it ends.
        self.install: Install | None = None
        self.inbox: list[tuple[int, SimMessage]] = []
        self.missed_ms = 0
        # RemovedSelf indexes the driver has seen, across restarts.
        self.removed_seen: list[int] = []
        # Take a snapshot right after the next advance() (a node's snapshot
        # policy runs after each Ready cycle): the keep_entries to use.
        self.snapshot_after_advance: int | None = None
        # The last RequestVote delivered (what a granted vote was granted for).
        self.vote_request: RequestVote | None = None
        # Send a leader's Ready before persisting it when the contract allows
        # (no hard state, no truncation), as traft.node does; the persist and
        # advance() complete after Cluster.early_fsync_ms (see Syncing).
        self.early_send = False
        self.syncing: Syncing | None = None

    def restart(self) -> None:
        """Rebuild the core from the disk only, as after a crash, the way the node does.

        Raises:
            ValueError: ``Raft.restore`` refuses what the disk holds.
        """
        disk = self.disk
        entries = disk.recover()
        self.raft = Raft.restore(
            self.id,
            self.config,
            self.rng,
            term=disk.term,
            voted_for=disk.voted_for,
            entries=entries,
            snapshot=disk.snapshot,
            membership=self.bootstrap,
        )
        self.state = disk.snapshot_state
        self.kv = disk.snapshot_kv.copy()
        self.applied_index = disk.snapshot.index if disk.snapshot else 0
        self.applied = [e for e in self.applied if e.index <= self.applied_index]
        self.alive = True

    bootstrap: Membership = Membership()


class Cluster:
    """A set of simulated servers and the network between them.

    Args:
        ids: the initial voting members.
        seed: one seed for everything (each server gets its own derived rng).
        config: Raft settings shared by every server.
        auto_promote: propose ADD_NODE when a non-voting node has caught up.
    """

    def __init__(
        self,
        ids: Iterable[int] = (1, 2, 3),
        *,
        seed: int = 0,
        config: Config | None = None,
        auto_promote: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.config = config or Config(election_timeout_ms=1000, request_timeout_ms=100)
        self.network = Network(self.rng)
        self.servers: dict[int, SimServer] = {}
        self.auto_promote = auto_promote
        self.now_ms = 0
        ids = sorted(ids)
        self.bootstrap = bootstrap = Membership(tuple(NodeConfig(i, True) for i in ids))
        for node_id in ids:
            self._new_server(node_id, bootstrap)
        self.observers: list[Callable[[SimServer, Ready], None]] = []
        self.on_persist: list[Callable[[SimServer, Ready], None]] = []
        self.on_apply: list[Callable[[SimServer, Entry, bool | None], None]] = []
        self.on_snapshot: list[Callable[[SimServer, SnapshotMeta, bool], None]] = []
        self.on_crash: list[Callable[[SimServer], None]] = []
        self.on_restart: list[Callable[[SimServer], None]] = []
        self.on_event: list[Callable[[SimServer, object], None]] = []
        # A received snapshot's file is durable (before it is loaded).
        self.on_snapshot_saved: list[Callable[[SimServer, SnapshotMeta], None]] = []
        # A snapshot install starts (the hook may set Install.crash_before).
        self.on_install: list[Callable[[SimServer, Install], None]] = []
        self.eager = False
        # Time to make a Ready durable, drawn per Ready that writes; None: instant.
        self.fsync_ms: tuple[int, int] | None = None
        # Virtual time each step of a snapshot install takes, drawn per step;
        # None: a received snapshot is installed at once, every step in a row.
        self.install_ms: tuple[int, int] | None = None
        self.install_crashes = 0
        # Virtual time the fsync of an early-sent leader Ready takes (servers
        # with early_send set), drawn per Ready.
        self.early_fsync_ms: tuple[int, int] = (1, 20)
        self.early_sends = 0
        self.early_crashes = 0
        # The driver refuses a snapshot not newer than its commit index before
        # saving it, as the node does; without it, the core must refuse it.
        self.install_guard = True

    def _new_server(self, node_id: int, bootstrap: Membership) -> SimServer:
        server = SimServer(node_id, self.config, random.Random(self.rng.getrandbits(64)))
        server.bootstrap = bootstrap
        for node in bootstrap.nodes:
            if node.voting:
                server.raft.add_node(node.node_id, is_self=node.node_id == node_id)
            else:
                server.raft.add_non_voting_node(node.node_id)
        self.servers[node_id] = server
        return server

    def add_server(self, node_id: int) -> SimServer:
        """Create an empty server that joins through a membership change.

        It starts from the bootstrap configuration, as every server did: the
        bootstrap members were added outside the log, so the log alone does
        not name them, and a server that knew only the log would count
        itself as the only voter once promoted.
        """
        return self._new_server(node_id, self.bootstrap)

    # -- queries ------------------------------------------------------------------

    def __getitem__(self, node_id: int) -> Raft:
        return self.servers[node_id].raft

    def alive(self) -> list[SimServer]:
        return [s for _, s in sorted(self.servers.items()) if s.alive]

    def leaders(self) -> list[int]:
        return [s.id for s in self.alive() if s.raft.role is Role.LEADER]

    def leader(self) -> int | None:
        """The leader with the highest term among live servers, if any."""
        best: tuple[int, int] | None = None
        for s in self.alive():
            if s.raft.role is Role.LEADER and (best is None or s.raft.term > best[0]):
                best = (s.raft.term, s.id)
        return None if best is None else best[1]

    def leader_server(self) -> SimServer | None:
        """The server :meth:`leader` names, if any."""
        leader = self.leader()
        return None if leader is None else self.servers[leader]

    # -- driving ------------------------------------------------------------------

    def process(self, node_id: int) -> bool:
        """Run one Ready cycle of a server; returns whether it had work.

        With ``eager`` set, cycles run until the server has nothing left to do.
        """
        server = self.servers[node_id]
        if not server.alive or server.install is not None:
            return False
        worked = self._cycle(server)
        if worked and self.eager:
            # Only a leader finds more to do after advance(): its own fsync
            # may have committed entries. A follower's work comes with input.
            while server.alive and server.led_last_cycle and self._cycle(server):
                pass
        return worked

    def _cycle(self, server: SimServer) -> bool:
        raft = server.raft
        if server.syncing is not None or not raft.has_ready():
            return False
        rd = raft.ready()
        if (
            server.early_send
            and rd.entries
            and rd.hard_state is None
            and rd.truncate_from is None
            and raft.role is Role.LEADER
        ):
            # The leader's early send: messages first, the fsync in parallel.
            send = self.network.send
            for to_id, msg in rd.messages:
                send(server.id, to_id, msg)
            due = self.now_ms + self.network.rng.randint(*self.early_fsync_ms)
            server.syncing = Syncing(rd, due)
            self.early_sends += 1
            return True
        server.disk.persist(rd)
        for hook in self.on_persist:
            hook(server, rd)
        return self._after_persist(server, rd)

    def syncing(self) -> list[SimServer]:
        """Live servers with an early-sent Ready whose fsync has not completed."""
        return [s for _, s in sorted(self.servers.items()) if s.syncing is not None and s.alive]

    def run_syncs(self, now_ms: int, after_step: Callable[[SimServer], None] | None = None) -> None:
        """Complete every early-sent Ready whose fsync is due by ``now_ms``: persist,
        apply, ``advance()``, then process what came in meanwhile."""
        for server in self.syncing():
            sync = server.syncing
            assert sync is not None
            if sync.due_ms > now_ms:
                continue
            server.syncing = None
            if server.crash_in_ready:
                # Crash after the send, before the fsync completed: the
                # Ready's entries never reach this server's disk.
                server.crash_in_ready = False
                self.early_crashes += 1
                self.crash(server.id)
                continue
            rd = sync.rd
            server.disk.persist(rd)
            for hook in self.on_persist:
                hook(server, rd)
            self._after_persist(server, rd, sent=True)
            self.process(server.id)
            if after_step is not None:
                after_step(server)

    def _after_persist(self, server: SimServer, rd: Ready, *, sent: bool = False) -> bool:
        """The rest of a Ready cycle once its storage part is durable
        (``sent``: its messages already left, before the fsync)."""
        raft = server.raft
        node_id = server.id
        if server.crash_in_ready and not sent:
            # Crash after the fsync, before anything was sent or applied.
            server.crash_in_ready = False
            self.crash(node_id)
            return True
        send = self.network.send
        extra = 0
        fsync = self.fsync_ms
        if sent:
            pass
        elif (
            fsync is not None
            and rd.messages
            and (
                rd.hard_state is not None
                or rd.entries
                or rd.truncate_from is not None
                or rd.compact_upto is not None
            )
        ):
            # One fsync for the whole Ready; its messages leave after it.
            extra = self.network.rng.randint(*fsync)
        if not sent:
            for to_id, msg in rd.messages:
                send(node_id, to_id, msg, extra)
        if rd.committed:
            kv = server.kv
            on_apply = self.on_apply
            for entry in rd.committed:
                if entry.index <= server.applied_index:
                    continue
                assert entry.index == server.applied_index + 1, "apply gap"
                server.state = chain(server.state, entry.id)
                server.applied_index = entry.index
                if server.keep_applied:
                    server.applied.append(entry)
                result = kv.apply(entry.data) if entry.type == _NORMAL else None
                for apply_hook in on_apply:
                    apply_hook(server, entry, result)
        for event in rd.events:
            self._on_event(server, event)
        for observer in self.observers:
            observer(server, rd)
        server.led_last_cycle = raft.role is Role.LEADER
        raft.advance(rd)
        if server.snapshot_after_advance is not None:
            keep, server.snapshot_after_advance = server.snapshot_after_advance, None
            if self._snapshot(server, keep) is not None:
                self._cycle(server)  # the compaction
        if server.promote:
            self._promote(server)
        return True

    def _promote(self, server: SimServer) -> None:
        raft = server.raft
        for node_id in server.promote:
            if raft.role is Role.LEADER:
                # A refused promotion (a voting change in flight) is retried
                # when the next leader reports the node caught up.
                with contextlib.suppress(RaftError):
                    raft.propose_membership(EntryType.ADD_NODE, node_id)
        server.promote.clear()
        self._cycle(server)

    def _on_event(self, server: SimServer, event: object) -> None:
        if server.keep_events:
            server.events.append(event)
        raft = server.raft
        if isinstance(event, SendSnapshot):
            snap = server.disk.snapshot
            if snap is not None:
                disk = server.disk
                transfer = SnapshotTransfer(raft.term, snap, disk.snapshot_state, disk.snapshot_kv)
                self.network.send(server.id, event.node_id, transfer)
        elif isinstance(event, NodeHasSufficientLogs):
            if self.auto_promote:
                # Proposed after advance(): between ready() and advance() the
                # core takes no input (the Ready contract).
                server.promote.append(event.node_id)
        elif isinstance(event, RemovedSelf):
            server.removed = True
            server.removed_seen.append(event.index)
        elif isinstance(event, MembershipChanged):
            pass
        for hook in self.on_event:
            hook(server, event)

    def settle(self, limit: int = 100_000) -> int:
        """Process and deliver until nothing is left in flight; returns steps taken."""
        steps = 0
        while steps < limit:
            worked = False
            for node_id in sorted(self.servers):
                while self.process(node_id):
                    worked = True
            if self.network.in_flight:
                self.deliver(0)
                worked = True
            if not worked:
                return steps
            steps += 1
        raise RuntimeError("cluster did not settle")

    def deliver(self, i: int) -> None:
        """Deliver the i-th message in flight."""
        src, dst, msg = self.network.take(i)
        self.receive(src, dst, msg)

    def receive(self, src: int, dst: int, msg: SimMessage) -> None:
        server = self.servers.get(dst)
        if server is None or not server.alive:
            return
        if server.install is not None:
            # Busy installing: the message waits, as in a node's receive channel.
            if not isinstance(msg, SnapshotTransfer):
                server.inbox.append((src, msg))
            return
        if isinstance(msg, SnapshotTransfer):
            if server.syncing is None:
                # (Lost while a Ready is out: installing needs ready().)
                self._start_install(server, src, msg)
            return
        if type(msg) is RequestVote:
            server.vote_request = msg
        server.raft.recv(src, msg)
        self.process(dst)

    # -- snapshot installs ---------------------------------------------------------

    def _start_install(self, server: SimServer, src: int, transfer: SnapshotTransfer) -> None:
        raft = server.raft
        meta = transfer.meta
        # The node answers "done" without saving anything in these cases.
        if raft.snapshot_in_progress or raft.role is Role.LEADER:
            return
        if self.install_guard and meta.index <= raft.commit_index:
            return
        if transfer.term < raft.term:
            return
        install = Install(transfer, src, self.now_ms)
        server.install = install
        for hook in self.on_install:
            hook(server, install)
        if self.install_ms is None:
            while server.install is install and server.alive:
                self._install_step(server, install)
            if server.alive:
                self._finish_install(server, None)
        else:
            install.due_ms = self.now_ms + self.network.rng.randint(*self.install_ms)

    def installing(self) -> list[SimServer]:
        """Live servers with a snapshot install in progress."""
        return [s for _, s in sorted(self.servers.items()) if s.install is not None and s.alive]

    def run_installs(
        self, now_ms: int, after_step: Callable[[SimServer], None] | None = None
    ) -> None:
        """Run every install step due by ``now_ms``; a finished install's waiting
        messages are delivered, with ``after_step`` called after each step and message."""
        for server in self.installing():
            install = server.install
            while install is not None and server.alive and install.due_ms <= now_ms:
                self._install_step(server, install)
                if server.install is install:
                    assert self.install_ms is not None
                    install.due_ms += self.network.rng.randint(*self.install_ms)
                elif after_step is not None:
                    after_step(server)
                install = server.install
            if server.install is None and server.alive:
                self._finish_install(server, after_step)

    def _finish_install(
        self, server: SimServer, after_step: Callable[[SimServer], None] | None
    ) -> None:
        if server.missed_ms:
            missed, server.missed_ms = server.missed_ms, 0
            server.raft.periodic(missed)
        self.process(server.id)
        if after_step is not None:
            after_step(server)
        while server.inbox and server.alive and server.install is None:
            src, msg = server.inbox.pop(0)
            self.receive(src, server.id, msg)
            if after_step is not None:
                after_step(server)

    def _install_step(self, server: SimServer, install: Install) -> None:
        step = install.step
        if install.crash_before == step:
            self.install_crashes += 1
            self.crash(server.id)
            return
        install.step += 1
        raft = server.raft
        transfer = install.transfer
        meta = transfer.meta
        disk = server.disk
        if step == 0:
            # The snapshot file is durable (an older one than the newest
            # already there is kept beside it, never loaded at a restart).
            if disk.snapshot is not None and disk.snapshot.index >= meta.index:
                return
            disk.snapshot = meta
            disk.snapshot_state = transfer.state
            disk.snapshot_kv = transfer.kv
            for saved in self.on_snapshot_saved:
                saved(server, meta)
        elif step == 1:
            if not raft.begin_load_snapshot(
                meta.term,
                meta.index,
                meta.membership,
                leader_term=transfer.term,
                leader_id=install.sender,
            ):
                server.install = None
                return
            server.state = transfer.state
            server.kv = transfer.kv.copy()
            server.applied_index = meta.index
            raft.end_load_snapshot()
            for loaded in self.on_snapshot:
                loaded(server, meta, True)
        elif step == 2:
            # The install's Ready: as the node's Durable.persist, term and vote
            # first, then the truncation, durable on their own.
            rd = install.rd = raft.ready()
            if rd.truncate_from is not None or rd.hard_state is not None:
                part = Ready(hard_state=rd.hard_state, truncate_from=rd.truncate_from)
                disk.persist(part)
                for hook in self.on_persist:
                    hook(server, part)
        else:
            assert install.rd is not None
            rd = install.rd
            part = Ready(entries=rd.entries, compact_upto=rd.compact_upto)
            disk.persist(part)
            for hook in self.on_persist:
                hook(server, part)
            if install.crash_before == len(INSTALL_STEPS):
                # After everything is durable, before anything is sent or applied.
                self.install_crashes += 1
                self.crash(server.id)
                return
            server.install = None
            self._after_persist(server, rd)

    def take_snapshot(self, node_id: int, keep_entries: int = 0) -> SnapshotMeta | None:
        """Snapshot a server at its applied index and compact its log."""
        server = self.servers[node_id]
        if server.install is not None or server.syncing is not None:
            return None
        meta = self._snapshot(server, keep_entries)
        if meta is not None:
            self.process(node_id)
        return meta

    def _snapshot(self, server: SimServer, keep_entries: int) -> SnapshotMeta | None:
        raft = server.raft
        if raft.snapshot_in_progress or raft.last_applied <= raft.log.base_index:
            return None
        if server.applied_index != raft.last_applied:
            return None
        if raft.snapshot is not None and raft.last_applied <= raft.snapshot.index:
            return None
        meta = raft.begin_snapshot()
        server.disk.snapshot = meta
        server.disk.snapshot_state = server.state
        server.disk.snapshot_kv = server.kv.copy()
        raft.end_snapshot(keep_entries=keep_entries)
        for hook in self.on_snapshot:
            hook(server, meta, False)
        return meta

    def tick(self, ms: int) -> None:
        """Advance every live server's clock by ``ms`` and process its output."""
        self.now_ms += ms
        self.network.now_ms = self.now_ms
        for server in self.alive():
            if server.install is not None:
                server.missed_ms += ms
                continue
            server.raft.periodic(ms)
            self.process(server.id)
        if self.early_sends:
            self.run_syncs(self.now_ms)

    def crash(self, node_id: int) -> None:
        """Stop a server; everything not on its disk is lost."""
        server = self.servers[node_id]
        server.alive = False
        server.crash_in_ready = False
        server.install = None
        server.syncing = None
        server.inbox.clear()
        server.missed_ms = 0
        server.snapshot_after_advance = None
        self.network.forget(node_id)
        for hook in self.on_crash:
            hook(server)

    def crash_in_ready(self, node_id: int) -> None:
        """Crash a server during its next Ready: after the fsync, before sending."""
        self.servers[node_id].crash_in_ready = True

    def restart(self, node_id: int) -> None:
        """Start a crashed server again from its disk."""
        server = self.servers[node_id]
        server.restart()
        for hook in self.on_restart:
            hook(server)

    def run(self, ms: int, step_ms: int = 10) -> None:
        """Let ``ms`` of virtual time pass, delivering every message promptly."""
        for _ in range(ms // step_ms):
            self.tick(step_ms)
            self.settle()

    def elect(self, limit_ms: int = 20_000) -> int:
        """Run until a single leader exists; returns its id.

        Raises:
            RuntimeError: no leader within ``limit_ms`` of virtual time.
        """
        waited = 0
        while waited < limit_ms:
            self.tick(10)
            self.settle()
            waited += 10
            leader = self.leader()
            if leader is not None and len(self.leaders()) == 1:
                # The leader's no-op must commit before it serves everything.
                return leader
        raise RuntimeError(f"no leader within {limit_ms} ms")

    def propose(self, data: bytes) -> tuple[int, int]:
        """Propose through the current leader; returns (leader id, index)."""
        leader = self.leader()
        if leader is None:
            raise RuntimeError("no leader")
        resp = self.servers[leader].raft.recv_entry(data)
        self.process(leader)
        return leader, resp.index
