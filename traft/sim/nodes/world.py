"""The simulated world: real nodes, a lying network, crashing disks, a nemesis.

Theory of operation. :class:`World` runs inside one ``trio.run`` under a
``MockClock`` with autojump (virtual time; see :mod:`traft.sim.nodes.runner`
for the seeding of trio's scheduler). Each server is a real
:class:`traft.node.node.Node` with a :class:`~traft.kv.state.KVStore`, the
state machine of ``traft serve``, on a ``net.MemoryNetwork`` whose
``FaultInjector`` drops, duplicates, reorders, delays and partitions, and
on a :class:`~traft.sim.nodes.disk.SimDisk` directory.

A *supervisor* task per server plays the process manager: it builds a
``Node`` from what is on disk (the recovery code ``traft serve`` runs),
runs it until it crashes, is killed or is removed, then (unless removed)
restarts it after a pause. The *nemesis* task draws a fault every
``step_ms``: crash a server now (power loss or process crash), arm a crash
at its N-th next disk call, partition (one- or two-way), turn disk faults
on, change membership through the leader's API (add, remove: the leader
too). Client tasks (:mod:`traft.sim.nodes.clients`) run all along. After
``duration_ms`` the faults stop and the checks of
:mod:`traft.sim.nodes.checks` run on the calm cluster.
"""

from __future__ import annotations

import errno
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio

import net
import storage
from traft.core.messages import RequestVoteResponse
from traft.kv.state import KVStore
from traft.node.config import ClusterConfig, Member, SnapshotPolicy, Timing
from traft.node.errors import NodeError
from traft.node.node import Node
from traft.sim.nodes.disk import DiskCrash, DiskFaults, SimDisk
from traft.sim.nodes.options import NodeSimOptions
from traft.wire import MalformedMessage, SnapshotChunk, decode

log = logging.getLogger(__name__)
# The wire tag of RequestVoteResponse: a cheap test before decoding a datagram.
_VOTE_TAG = b"rvr"
_CHUNK_TAG = b"\xa2sc"  # SnapshotChunk's tag as msgpack writes it


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside ``exc``, exception groups flattened."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def expected_failure(exc: BaseException) -> bool:
    """Whether a node may die of ``exc`` in a correct program: a crash point,
    cancellation, or a disk error (a real ``traft serve`` exits with status 1)."""
    return isinstance(exc, DiskCrash | trio.Cancelled | OSError | storage.StorageError)


class VoteWitness(net.FaultInjector):
    """The run's fault injector, which also reads every granted vote as it is sent.

    Raft's election safety rests on one vote per server per term, kept across
    crashes (§5.2, §5.4): a server that grants its vote in a term to two
    candidates lost a vote it had sent. Votes are recorded *as sent* (before
    the faults decide their fate), so a vote lost from disk shows even when no
    second leader is elected.
    """

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.codec: net.EnvelopeCodec | None = None
        self.votes: dict[tuple[int, int], int] = {}  # (voter, term) -> candidate
        self.double_votes: list[str] = []
        # Called with the receiver's id when the last chunk of a snapshot is sent.
        self.on_last_chunk: Callable[[int], None] | None = None

    def route(self, src: int, dst: int, datagram: bytes) -> list[tuple[float, bytes]]:
        if self.codec is not None and (_VOTE_TAG in datagram or _CHUNK_TAG in datagram):
            try:
                msg = decode(self.codec.decode(datagram).payload)
            except (net.MalformedDatagram, MalformedMessage):
                msg = None
            if (
                isinstance(msg, SnapshotChunk)
                and msg.offset + len(msg.data) >= msg.total
                and self.on_last_chunk is not None
            ):
                self.on_last_chunk(dst)
            if isinstance(msg, RequestVoteResponse) and msg.vote_granted:
                seen = self.votes.setdefault((src, msg.term), dst)
                if seen != dst and len(self.double_votes) < 5:
                    self.double_votes.append(
                        f"node {src} granted its vote in term {msg.term} to {seen} and to {dst}"
                    )
        return super().route(src, dst, datagram)


def member(node_id: int, *, join: bool = False) -> Member:
    return Member(node_id, ("127.0.0.1", 7000 + node_id), ("127.0.0.1", 8000 + node_id), join)


class World:
    """One run's servers, network, disk and event log (see the module docstring)."""

    def __init__(self, options: NodeSimOptions, seed: int, root: Path, disk: SimDisk) -> None:
        self.options = options
        self.seed = seed
        self.root = root
        self.disk = disk
        self.rng = self.rng_for("world")
        self.faults = VoteWitness(self.rng_for("network"))
        self.network = net.MemoryNetwork(cluster_id=net.cluster_id_from("sim"), faults=self.faults)
        self.faults.codec = self.network.codec
        self.faults.on_last_chunk = self._snapshot_arriving
        self._install_rng = self.rng_for("install-crash")
        founding = {i: member(i) for i in range(1, options.servers + 1)}
        self.cluster = ClusterConfig(
            cluster_id="sim",
            members=founding,
            timing=Timing(
                tick_ms=options.tick_ms,
                election_timeout_ms=options.election_timeout_ms,
                heartbeat_ms=options.heartbeat_ms,
            ),
            snapshot=SnapshotPolicy(entries=options.snapshot_entries, keep_entries=5),
        )
        self.rates = self._draw_rates()
        self.nodes: dict[int, Node] = {}
        self.stores: dict[int, KVStore] = {}
        self.scopes: dict[int, trio.CancelScope] = {}
        self.incarnation: dict[int, int] = {}
        self.removed: set[int] = set()
        self.ids: list[int] = list(founding)
        self.next_id = options.servers + 1
        self.chaos = True
        self.stopping = False
        self.unexpected: list[str] = []
        self.events: list[str] = []
        self.counts: dict[str, int] = {
            "crashes": 0,
            "power_losses": 0,
            "disk_crash_points": 0,
            "disk_errors": 0,
            "restarts": 0,
            "partitions": 0,
            "members_added": 0,
            "members_removed": 0,
        }
        self.up: dict[int, trio.Event] = {}
        self.digests: dict[int, str] = {}
        self.virtual_s = 0.0
        self.last_ticket = 0
        self.kill_mode: dict[int, str] = {}
        self.damaged: dict[int, str] = {}
        self.term_leaders: dict[int, int] = {}
        self.split_brain: list[str] = []
        self.applied_behind: list[str] = []
        self.member_ops: list[tuple[str, int, str]] = []  # (kind, id, "ok"/"failed"/"unknown")

    # -- randomness ------------------------------------------------------------------

    def rng_for(self, name: str) -> random.Random:
        """A generator for one purpose, seeded from the run's seed and ``name``."""
        return self.static_rng(self.seed, name)

    @staticmethod
    def static_rng(seed: int, name: str) -> random.Random:
        """The generator :meth:`rng_for` gives, before there is a world."""
        return random.Random(f"traft-sim-nodes/{seed}/{name}")

    def _draw_rates(self) -> dict[str, float]:
        o = self.options
        rates = {
            name: getattr(o, name) / 100
            for name in ("drop", "dupe", "reorder", "crash", "partition", "member")
            + ("enospc", "eio", "slow_fsync")
        }
        rates["delay_ms"] = float(o.delay_ms[1])
        if o.swarm:
            for name in sorted(rates):
                rates[name] *= self.rng.choice((0.0, 0.5, 1.0))
        return rates

    def note(self, text: str) -> None:
        """Record an event of the run (the first lines of a failure report)."""
        text = text.replace(str(self.root), "DATA")  # the scratch directory's name varies
        self.events.append(f"{trio.current_time():10.3f} {text}")

    # -- servers ---------------------------------------------------------------------

    def data_dir(self, node_id: int) -> Path:
        return self.root / f"n{node_id}"

    def config_for(self, node_id: int) -> ClusterConfig:
        if node_id <= self.options.servers:
            return self.cluster
        members = dict(self.cluster.members)
        members[node_id] = member(node_id, join=True)
        return ClusterConfig(
            cluster_id=self.cluster.cluster_id,
            members=members,
            timing=self.cluster.timing,
            snapshot=self.cluster.snapshot,
        )

    def start_server(self, nursery: trio.Nursery, node_id: int) -> None:
        self.disk.add_root(str(self.data_dir(node_id)), node_id)
        self.up[node_id] = trio.Event()
        nursery.start_soon(self._supervise, node_id)

    async def _supervise(self, node_id: int) -> None:
        """Run server ``node_id``, restarting it after each crash, until removed or the end."""
        rng = self.rng_for(f"supervisor/{node_id}")
        while not self.stopping and node_id not in self.removed:
            incarnation = self.incarnation.get(node_id, 0) + 1
            self.incarnation[node_id] = incarnation
            store = KVStore()
            node = Node(
                node_id,
                self.config_for(node_id),
                self.data_dir(node_id),
                store,
                endpoint=self.network.endpoint(node_id),
                rng=self.rng_for(f"node/{node_id}/{incarnation}"),
                segment_bytes=self.options.segment_bytes,
                persist_in_thread=False,
            )
            scope = trio.CancelScope()
            self.scopes[node_id] = scope
            crashed = await self._run_node(node_id, node, store, scope)
            self.nodes.pop(node_id, None)
            self.stores.pop(node_id, None)
            self.scopes.pop(node_id, None)
            self.up[node_id] = trio.Event()
            if node.removed.is_set():
                self.removed.add(node_id)
                self.note(f"node {node_id} stopped: removed")
                return
            if self.stopping:
                return
            if crashed == "power":
                self.disk.power_loss(node_id)
                self.counts["power_losses"] += 1
            else:
                self.disk.process_crash(node_id)
            # Down for a while: the others elect, compact, move on. (Always a
            # little: a node that cannot start must not spin in zero virtual time.)
            await trio.sleep(rng.uniform(0.05, 2.0) if self.chaos else 0.1)
            self.counts["restarts"] += 1

    async def _run_node(
        self, node_id: int, node: Node, store: KVStore, scope: trio.CancelScope
    ) -> str:
        """Run one incarnation; how it ended: "power" (power loss) or "process"."""
        how = "process"
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(node.run)
                    self.nodes[node_id] = node
                    self.stores[node_id] = store
                    self.up[node_id].set()

                    async def watch_removed() -> None:
                        await node.removed.wait()
                        await node.stop()

                    nursery.start_soon(watch_removed)
            how = self.kill_mode.pop(node_id, how)
        except BaseException as exc:  # noqa: BLE001 - classified below, re-raised if ours
            found = list(leaves(exc))
            if any(isinstance(e, DiskCrash) for e in found):
                self.counts["disk_crash_points"] += 1
                how = "power" if self.rng.random() < 0.7 else "process"
                self.note(f"node {node_id} died at a disk crash point ({how})")
            damaged = [e for e in found if isinstance(e, storage.CorruptLogError)]
            if damaged and node_id not in self.damaged:
                # The simulated disk only loses what a real one may lose: recovery
                # must cope with whatever survived.
                self.damaged[node_id] = f"{type(damaged[0]).__name__}: {damaged[0]}"
                self.note(f"node {node_id}: its data directory is damaged: {damaged[0]}")
            if any(getattr(e, "errno", None) == errno.EIO for e in found):
                # A failed fsync: the pages it dropped are clean in the page cache,
                # and a process restarted on that cache trusts data no disk holds
                # (fsyncgate) unless storage cut them off, as it does. By default
                # (options.fsyncgate) only the process is restarted, on that
                # cache; without it, the machine is rebooted (the cache is gone).
                how = "process" if self.options.fsyncgate else "power"
            bad = [e for e in found if not expected_failure(e)]
            if bad:
                text = "; ".join(f"{type(e).__name__}: {e}" for e in bad)
                self.unexpected.append(f"node {node_id}: {text}")
                self.note(f"node {node_id} died of an unexpected exception: {text}")
            elif not any(isinstance(e, DiskCrash | trio.Cancelled) for e in found):
                self.counts["disk_errors"] += 1
                self.note(
                    f"node {node_id} stopped by a disk error: "
                    + "; ".join(f"{type(e).__name__}: {e}" for e in found)
                )
        return how

    def _snapshot_arriving(self, node_id: int) -> None:
        """A snapshot's last chunk is on its way to ``node_id``: perhaps crash it
        within its next disk calls, in the middle of installing the snapshot
        (save, rename, directory fsync, then truncate and compact the log)."""
        if not self.chaos or node_id not in self.nodes:
            return
        if self._install_rng.random() < min(1.0, 10 * self.rates["crash"]):
            self.disk.crash_after(node_id, self._install_rng.randint(1, 15))
            self.note(f"node {node_id} will crash within 15 disk calls (snapshot install)")

    def kill(self, node_id: int, *, power_loss: bool) -> None:
        """Kill server ``node_id``'s process now (its disk calls fail from here on)."""
        scope = self.scopes.get(node_id)
        if scope is None:
            return
        self.counts["crashes"] += 1
        self.disk.freeze(node_id)
        self.kill_mode[node_id] = "power" if power_loss else "process"
        scope.cancel()
        self.note(f"node {node_id} killed ({'power loss' if power_loss else 'process crash'})")

    def observe(self) -> None:
        """The continuous checks: at most one leader per term (election safety,
        §5.2); a node's applied index (``status()``) never behind its state
        machine's (a snapshot install must move both)."""
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            raft = node.raft
            store = self.stores.get(node_id)
            if raft is not None and store is not None and len(self.applied_behind) < 5:
                applied = node.status().get("applied", 0)
                if applied < store.applied_index:
                    self.applied_behind.append(
                        f"node {node_id} reports applied {applied}, its state machine "
                        f"is at {store.applied_index}"
                    )
                    self.note(self.applied_behind[-1])
            if raft is None or not raft.is_leader:
                continue
            seen = self.term_leaders.setdefault(raft.term, node_id)
            if seen != node_id and len(self.split_brain) < 5:
                self.split_brain.append(f"nodes {seen} and {node_id} both led term {raft.term}")
                self.note(f"two leaders in term {raft.term}: {seen} and {node_id}")

    async def observer(self) -> None:
        """Run :meth:`observe` every tick until the run stops."""
        while not self.stopping:
            self.observe()
            await trio.sleep(self.options.tick_ms / 1000)

    def live(self) -> list[int]:
        """Servers running now, in id order."""
        return sorted(self.nodes)

    def leader(self) -> Node | None:
        """The running node that is leader of the highest term, if any."""
        best: Node | None = None
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            raft = node.raft
            if raft is not None and raft.is_leader:
                if best is None or (best.raft is not None and raft.term > best.raft.term):
                    best = node
        return best

    def members(self) -> list[int]:
        """Ids that are not known to be removed (the ones the run keeps alive)."""
        return [i for i in self.ids if i not in self.removed]

    # -- the nemesis -----------------------------------------------------------------

    async def nemesis(self, nursery: trio.Nursery) -> None:
        """Draw and apply faults every ``step_ms`` until the chaos phase ends."""
        o = self.options
        rng = self.rng_for("nemesis")
        r = self.rates
        delay = (min(o.delay_ms[0], r["delay_ms"]), r["delay_ms"])
        self.faults.set(drop=r["drop"], dupe=r["dupe"], reorder=r["reorder"], delay_ms=delay)
        disk_faults = DiskFaults(enospc=r["enospc"], eio_fsync=r["eio"], slow_fsync=r["slow_fsync"])
        heal_at = None
        member_busy = [False]
        while self.chaos:
            await trio.sleep(o.step_ms / 1000)
            if not self.chaos:
                break
            now = trio.current_time()
            if heal_at is not None and now >= heal_at:
                self.faults.heal()
                heal_at = None
                self.note("partition healed")
            live = self.live()
            if live and rng.random() < r["crash"]:
                victim = rng.choice(live)
                what = rng.random()
                if what < 0.4:
                    self.kill(victim, power_loss=True)
                elif what < 0.6:
                    self.kill(victim, power_loss=False)
                elif what < 0.8:
                    self.disk.crash_after(victim, rng.randint(1, 60))
                    self.note(f"node {victim} will crash within 60 disk calls")
                else:
                    # An election storm: the leader dies and a follower crashes within
                    # its next few disk calls, i.e. while it persists its vote.
                    leader = self.leader()
                    if leader is not None:
                        self.kill(leader.id, power_loss=True)
                        others = [i for i in live if i != leader.id]
                        if others:
                            voter = rng.choice(others)
                            self.disk.crash_after(voter, rng.randint(1, 8))
                            self.note(f"node {voter} will crash within 8 disk calls")
            if heal_at is None and rng.random() < r["partition"]:
                ids = self.members()
                rng.shuffle(ids)
                cut = rng.randint(1, max(1, len(ids) // 2))
                one_way = rng.random() < 0.3
                self.faults.partition(ids[:cut], ids[cut:], one_way=one_way)
                heal_at = now + rng.uniform(0.2, 3.0)
                self.counts["partitions"] += 1
                self.note(
                    f"partition {sorted(ids[:cut])} | {sorted(ids[cut:])}"
                    + (" (one way)" if one_way else "")
                )
            for node_id in self.members():
                self.disk.set_faults(node_id, disk_faults)
            if not member_busy[0] and rng.random() < r["member"]:
                member_busy[0] = True
                nursery.start_soon(self._change_membership, nursery, rng.random(), member_busy)
        self.faults.reset()
        for node_id in sorted(self.incarnation):
            self.disk.set_faults(node_id, DiskFaults())
            self.disk.crash_after(node_id, None)

    async def _change_membership(
        self, nursery: trio.Nursery, draw: float, busy: list[bool]
    ) -> None:
        """Add a new server, or remove one (perhaps the leader), through the leader's API."""
        try:
            leader = self.leader()
            if leader is None:
                return
            voters = self.members()
            if self.removed and draw > 0.9:
                # Removed ids are never reused: the leader must refuse (NodeIdRemoved).
                victim = sorted(self.removed)[int(draw * 1000) % len(self.removed)]
                kind = "readd"
                m = member(victim)
                call = leader.add_member(victim, m.peer, m.http, timeout=5.0)
            elif len(voters) > self.options.servers or (len(voters) > 2 and draw < 0.3):
                victim = sorted(voters)[int(draw * 1000) % len(voters)]
                kind = "remove"
                call = leader.remove_member(victim, timeout=5.0)
            else:
                victim = self.next_id
                self.next_id += 1
                self.ids.append(victim)
                self.start_server(nursery, victim)
                kind = "add"
                m = member(victim)
                call = leader.add_member(victim, m.peer, m.http, timeout=5.0)
            self.note(f"{kind} node {victim} through leader {leader.id}")
            try:
                await call
            except NodeError as exc:
                outcome = "unknown" if type(exc).__name__ == "ProposalTimeout" else "failed"
                if type(exc).__name__ == "NodeStopped":
                    outcome = "unknown"
                self.member_ops.append((kind, victim, outcome))
                self.note(f"{kind} node {victim}: {type(exc).__name__}: {exc}")
                return
            self.member_ops.append((kind, victim, "ok"))
            if kind == "readd":
                self.note(f"readd node {victim}: accepted")
                return
            if kind == "remove":
                # Removed ids are never reused and the process is not needed any more.
                self.removed.add(victim)
                scope = self.scopes.get(victim)
                if scope is not None:
                    scope.cancel()
            self.counts["members_added" if kind == "add" else "members_removed"] += 1
            self.note(f"{kind} node {victim}: done")
        finally:
            busy[0] = False

    def status(self) -> dict[int, Any]:
        """Each running node's status, for failure reports."""
        return {i: self.nodes[i].status() for i in self.live()}
