"""The simulator's run loop: chaos per iteration, invariants after every step.

Theory of operation. One run is a pure function of :class:`SimOptions` and
a seed: a single ``random.Random(seed)`` feeds the cluster (which derives one
rng per server), the network's delays, the chaos and the clients, each
through its own derived rng, and nothing reads a clock except to measure
the run's wall time. The same options and seed replay the same run message
for message (``trace=True`` keeps a digest of every delivered message to
prove it).

An iteration is ``step_ms`` of virtual time:

1. every live server's clock moves (``periodic``): by ``step_ms``, or with a
   random period by a random 1..2*step_ms, so timers drift as in virtraft2;
2. every message due by now is delivered in arrival order, except that each
   may be dropped (``drop`` %), duplicated (``dupe`` %) or swapped with a
   later due message (``reorder`` %); a partition loses messages on its
   links, including those already in flight;
3. chaos, each a percentage per iteration: a partition starts (two-way
   split, one server cut off one way, or one link cut) and heals after a
   random time; a membership change (add a non-voting server, promote one,
   remove any member, the leader included); a snapshot with compaction on a
   random server; a crash (half of them inside a Ready: after the fsync,
   before sending) with a restart from disk after a random downtime; a
   client operation; a leadership transfer (thesis §3.10) to a random voter
   (:class:`~traft.sim.transfers.TransferChaos`), racing with the rest; old
   messages from anywhere in the run delivered again
   (:class:`~traft.sim.replay.Archive`); new leaders crashed before their
   term commits; leaders crashed right after proposing a voting change
   (:mod:`traft.sim.membership_chaos`);
4. liveness: while servers that are up and all connected hold a quorum of
   the committed configuration and of the one in force on the most
   up-to-date servers, the cluster must commit, or sit idle under an
   up-to-date leader, within ``liveness_ms``.

The last ``calm_ms`` of a run are calm: partitions heal, crashed servers
restart, and no message is lost, duplicated or reordered; membership
changes, compactions and crashes stop; clients and transfers go on. Once
the cluster has settled, every transfer must leave it without a leader for
no longer than an election timeout (``transfer_leaderless``).

With ``swarm`` (``traft sim``'s default) each seed first draws its own
mix from the options: sizes, fault rates, driver modes
(:mod:`traft.sim.swarm`).

The :class:`~traft.sim.invariants.InvariantChecker` checks after every
delivered message and every step of every server. At the end the client
history is checked for linearizability with ``traft.check``.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import deque
from typing import Any

from traft.check import Verdict
from traft.core import (
    AppendEntries,
    Config,
    Ready,
    Role,
    RoleChanged,
)
from traft.sim.catchup import CatchupChecker, SnapshotStorm
from traft.sim.clients import Workload
from traft.sim.cluster import INSTALL_STEPS, Cluster, Install, SimServer
from traft.sim.invariants import InvariantChecker, InvariantViolation
from traft.sim.liveness import LivenessCheck
from traft.sim.membership_chaos import MembershipChaos
from traft.sim.options import RunResult, SimOptions
from traft.sim.replay import Archive
from traft.sim.swarm import draw
from traft.sim.transfers import TransferChaos

__all__ = ["RunResult", "SimOptions", "Simulation", "run_one"]

_LEADER = Role.LEADER


class Simulation:
    """One run of the simulator (see the module docstring)."""

    def __init__(self, options: SimOptions, seed: int) -> None:
        self.seed = seed
        root = random.Random(seed)
        # What this seed drew (swarm testing), for the summary.
        self.drawn: dict[str, Any] = {}
        if options.swarm:
            options, self.drawn = draw(options, random.Random(root.getrandbits(64)))
        self.options = o = options
        self.rng = random.Random(root.getrandbits(64))
        config = Config(
            election_timeout_ms=o.election_timeout_ms,
            request_timeout_ms=o.heartbeat_ms,
            snapshot_resend_ms=4 * o.election_timeout_ms,
            check_quorum=o.check_quorum,
            pre_vote=o.pre_vote,
            max_entries_per_message=o.max_entries,
        )
        ids = list(range(1, o.servers + 1))
        self.cluster = c = Cluster(
            ids, seed=root.getrandbits(64), config=config, auto_promote=o.auto_promote
        )
        c.install_guard = o.install_guard
        c.network.rng = random.Random(root.getrandbits(64))
        c.network.delay_ms = o.delay_ms
        c.install_ms = o.install_ms
        c.eager = True
        for server in c.servers.values():
            server.keep_applied = False
            server.keep_events = False
        self.checker = InvariantChecker(ids, monotonic_ids=True)
        self.checker.attach(c)
        self.workload = Workload(
            c,
            random.Random(root.getrandbits(64)),
            clients=o.clients,
            keys=o.keys,
            timeout_ms=o.client_timeout_ms,
            after_step=self.checker.after_step,
            reads=o.reads / 100,
            committed=self.checker.max_committed,
        )
        self.transfers = TransferChaos(
            c,
            random.Random(root.getrandbits(64)),
            o.election_timeout_ms,
            after_step=self.checker.after_step,
            note=self._note,
        )
        # The calm tail: at most the second half of the run; none with calm_ms=0.
        total_ms = o.iterations_total() * o.step_ms
        self._calm_at = max(total_ms // 2, total_ms - o.calm_ms) if o.calm_ms else total_ms + 1
        self._calm = False
        self._drop, self._dupe, self._reorder = o.drop, o.dupe, o.reorder
        c.observers.append(self._observe)
        self.catchup = CatchupChecker(o.catchup_ms)
        self.storm = SnapshotStorm(
            c,
            random.Random(root.getrandbits(64)),
            chance=o.chase,
            period_ms=(o.heartbeat_ms // 2, 2 * o.heartbeat_ms),
            max_ms=40 * o.election_timeout_ms,
        )
        self._early_rng = random.Random(root.getrandbits(64))
        c.early_fsync_ms = o.fsync_ms
        for server in c.servers.values():
            self._draw_driver(server)
        self.now_ms = 0
        self.iteration = 0
        self.stats = dict.fromkeys(
            (
                "elections",
                "leader_changes",
                "snapshots",
                "snapshots_loaded",
                "crashes",
                "restarts",
                "partitions",
                "install_crashes",
                "stale_compactions",
            ),
            0,
        )
        self._restart_at: dict[int, int] = {}
        self._retired: set[int] = set()
        self._heal_at: int | None = None
        self.liveness = LivenessCheck(o, c, self.checker)
        self._hash = hashlib.blake2b(digest_size=16) if o.trace else None
        self.recent: deque[str] = deque(maxlen=0)
        self._log = False
        c.on_snapshot.append(self._count_snapshot)
        c.on_install.append(self._on_install)
        c.on_crash.append(self._on_crash)
        # Old messages delivered again (``replay``), and the rng of the
        # crashes aimed at new leaders and at leaders changing membership.
        self.archive = Archive(random.Random(root.getrandbits(64)))
        self._doom_rng = random.Random(root.getrandbits(64))
        self._doomed: list[int] = []
        self.stats.update(leader_crashes=0)
        self.membership = MembershipChaos(
            o,
            c,
            self.checker,
            rng=self.rng,
            doom_rng=self._doom_rng,
            retired=self._retired,
            restart_at=self._restart_at,
            crash_server=self._crash_server,
            draw_driver=self._draw_driver,
            note=self._note,
        )

    def _draw_driver(self, server: SimServer) -> None:
        # Whether this server's driver sends a leader's Ready before its fsync.
        early = self.options.early_send
        server.early_send = bool(early) and self._early_rng.random() * 100 < early

    def keep_recent(self, count: int) -> None:
        """Remember the last ``count`` deliveries and chaos events (see :attr:`recent`)."""
        self.recent = deque(maxlen=count)
        self._log = True

    def _note(self, text: str) -> None:
        if self._log:
            self.recent.append(f"[{self.iteration} @{self.now_ms}ms] {text}")

    # -- bookkeeping hooks -----------------------------------------------------------

    def _observe(self, server: SimServer, rd: Ready) -> None:
        for event in rd.events:
            if isinstance(event, RoleChanged):
                if event.role is Role.CANDIDATE:
                    self.stats["elections"] += 1
                elif event.role is _LEADER:
                    self.stats["leader_changes"] += 1
                    if self._calm:
                        continue
                    self.membership.elected(server.id)
                    chance = self.options.leader_crash
                    if chance and self._doom_rng.random() * 100 < chance:
                        # Crashed before its no-op is known committed.
                        self._doomed.append(server.id)

    def _count_snapshot(self, server: SimServer, meta: object, loaded: bool) -> None:
        self.stats["snapshots_loaded" if loaded else "snapshots"] += 1

    def _on_install(self, server: SimServer, install: Install) -> None:
        chance = self.options.install_crash
        if chance and not self._calm and self.rng.random() * 100 < chance:
            # Between two steps, each equally likely (see INSTALL_STEPS).
            install.crash_before = self.rng.randint(1, len(INSTALL_STEPS))
            self._note(f"server {server.id} will crash before install step {install.crash_before}")

    def _on_crash(self, server: SimServer) -> None:
        if server.id in self._restart_at or server.id in self._retired or server.removed:
            return
        # A crash inside an install (or a Ready) that the chaos did not schedule.
        lo = self.options.election_timeout_ms
        self._restart_at[server.id] = self.now_ms + self.rng.randint(lo // 2, 10 * lo)
        self.stats["crashes"] += 1
        self.liveness.forget()

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run every iteration; stop at the first violated invariant."""
        started = time.perf_counter()
        cpu_started = time.process_time()
        total = self.options.iterations_total()
        violation: InvariantViolation | None = None
        try:
            for self.iteration in range(1, total + 1):
                self._iterate()
            self.checker.check_all(self.cluster.servers.values())
        except InvariantViolation as exc:
            violation = exc
        lin = None
        if violation is None and self.options.check_history:
            result = self.workload.check(self.options.history_timeout_s)
            lin = result.verdict.value
            if result.verdict is Verdict.NOT_LINEARIZABLE:
                violation = InvariantViolation("linearizability", result.explanation or "")
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        return RunResult(
            seed=self.seed,
            summary=self._summary(wall, cpu, violation, lin),
            violation=violation,
            iteration=self.iteration if violation is not None else None,
            digest=self._hash.hexdigest() if self._hash is not None else None,
        )

    def _iterate(self) -> None:
        o = self.options
        rng = self.rng
        cluster = self.cluster
        check = self.checker.after_step
        membership = self.membership
        self.now_ms += o.step_ms
        now = self.now_ms
        cluster.now_ms = now
        cluster.network.now_ms = now
        # 1. Time passes.
        step = o.step_ms
        for server in cluster.alive():
            elapsed = rng.randint(1, 2 * step) if o.random_period else step
            if server.install is not None:
                # Busy installing a snapshot: its clock catches up afterwards.
                server.missed_ms += elapsed
                continue
            server.raft.periodic(elapsed)
            cluster.process(server.id)
            check(server)
            if membership.new_leaders:
                membership.greet(now)
        # 2. Messages due by now, and snapshot install steps.
        self._deliver(now)
        if cluster.early_sends:
            cluster.run_syncs(now, check)
        if cluster.install_ms is not None:
            cluster.run_installs(now, check)
        # 3. Chaos.
        if not self._calm and now >= self._calm_at:
            self._become_calm(now)
        calm = self._calm
        if o.partition and self._heal_at is None and rng.random() * 100 < o.partition and not calm:
            self._start_partition()
        if self._heal_at is not None and now >= self._heal_at:
            self._heal()
        if o.member and rng.random() * 100 < o.member and not calm:
            membership.change(now)
        if o.compaction and rng.random() * 100 < o.compaction and not calm:
            self._compact()
        if self.storm.active:
            for leader in self.storm.step(now):
                self._note(f"leader {leader.id} snapshots at {leader.raft.snapshot} (storm)")
                check(leader)
        if o.crash and rng.random() * 100 < o.crash and not calm:
            self._crash()
        if self._doomed:
            self._crash_new_leaders()
        if o.replay and not calm and self._doom_rng.random() * 100 < o.replay:
            for src, dst, msg in self.archive.replay(cluster.network, rng.randint(1, 3)):
                self._note(f"replays {src} -> {dst}: {msg!r}")
        if self._restart_at:
            self._restart_due(now)
        if o.transfer and self.transfers.rng.random() * 100 < o.transfer:
            self.transfers.start(now)
        self.transfers.check(now)
        if o.client:
            # Above 100, the rate is operations per 100 iterations.
            starts = int(o.client // 100) + (rng.random() * 100 < o.client % 100)
            for _ in range(starts):
                self.workload.start_one(now)
        self.workload.expire(now)
        self.workload.audit(self.checker.committed_id)
        self.checker.check_removals(cluster.servers.values())
        self.checker.check_progress(cluster.servers.values())
        self._retire_removed()
        # 4. Liveness, every fourth iteration: the window is seconds long, and
        # no outage shorter than that excuses a whole window without progress.
        if not self.iteration % 4:
            self.liveness.check(now)
            if self.liveness.applies:
                self.catchup.check(cluster, now)

    def _deliver(self, now: int) -> None:
        network = self.cluster.network
        batch = network.take_due(now)
        if not batch:
            return
        rng = self.rng
        random_ = rng.random
        drop, dupe, reorder = self._drop, self._dupe, self._reorder
        blocked = network.blocked
        servers = self.cluster.servers
        receive = self.cluster.receive
        check = self.checker.after_step
        trace = self._hash
        archive = self.archive if self.options.replay else None
        membership = self.membership
        n = len(batch)
        for k in range(n):
            if reorder and k + 1 < n and random_() * 100 < reorder:
                j = rng.randrange(k + 1, n)
                batch[k], batch[j] = batch[j], batch[k]
            _, src, dst, msg = batch[k]
            if blocked and (src, dst) in blocked:
                network.drop_taken()
                continue
            if drop and random_() * 100 < drop:
                network.drop_taken()
                continue
            if dupe and random_() * 100 < dupe:
                network.resend(src, dst, msg)
            server = servers.get(dst)
            if server is None or not server.alive:
                network.drop_taken()
                continue
            network.count_delivered()
            if self._log:
                self._note(f"{src} -> {dst}: {msg!r}")
            if trace is not None:
                trace.update(f"{self.iteration} {src}>{dst} {msg!r}\n".encode())
            if type(msg) is AppendEntries:
                before = server.raft.commit_index
                receive(src, dst, msg)
                if server.alive:
                    self.checker.check_vouched(server, msg, before)
            else:
                receive(src, dst, msg)
            check(server)
            if archive is not None:
                archive.offer(src, dst, msg)
            if membership.new_leaders:
                membership.greet(now)

    # -- chaos ---------------------------------------------------------------------------

    def _become_calm(self, now: int) -> None:
        """Faults stop: heal, restart everyone, deliver every message as sent."""
        self._calm = True
        self._drop = self._dupe = self._reorder = 0.0
        self.membership.new_leaders.clear()
        if self._heal_at is not None:
            self._heal()
        for server in self.cluster.servers.values():
            server.crash_in_ready = False
            if server.install is not None:
                server.install.crash_before = None
            if not server.alive and server.id not in self._retired:
                self._restart_at[server.id] = now
        self._note("calm: faults stop")
        self.transfers.calm(now)

    def _members(self) -> list[int]:
        return sorted(
            i for i, s in self.cluster.servers.items() if i not in self._retired and not s.removed
        )

    def _start_partition(self) -> None:
        rng = self.rng
        ids = self._members()
        if len(ids) < 2:
            return
        kind = rng.randrange(3)
        cut: list[tuple[int, int]] = []
        if kind == 0:
            # Two-way split into two random non-empty sides.
            side = set(rng.sample(ids, rng.randint(1, len(ids) - 1)))
            cut = [(a, b) for a in ids for b in ids if (a in side) != (b in side)]
        elif kind == 1:
            # One server cut off one way: its messages out, or in, are lost.
            node = ids[rng.randrange(len(ids))]
            out = rng.random() < 0.5
            cut = [(node, b) if out else (b, node) for b in ids if b != node]
        else:
            a, b = rng.sample(ids, 2)
            cut = [(a, b)]
        self.liveness.cut(cut)
        self.cluster.network.blocked.update(cut)
        lo = self.options.election_timeout_ms
        self._heal_at = self.now_ms + rng.randint(lo, 10 * lo)
        self.stats["partitions"] += 1
        self._note(f"partition: links {sorted(cut)} cut until {self._heal_at}ms")

    def _heal(self) -> None:
        if (
            self.options.stale_compaction
            and self.rng.random() * 100 < self.options.stale_compaction
        ):
            self._compact_over_stale_tails()
        self.cluster.network.heal()
        self._note("partition healed")
        self.liveness.cut([])
        self._heal_at = None

    def _compact_over_stale_tails(self) -> None:
        # A server cut off with entries the leader does not hold past its
        # applied index (a deposed leader's tail, of an older term) is
        # caught up, once healed, by a snapshot that contradicts its tail
        # when the leader compacts first: the install a crash must not spoil.
        leader = self._leader()
        if leader is None or leader.install is not None:
            return
        raft = leader.raft
        applied = raft.last_applied
        term = raft.log.term_at(applied)
        if term is None or applied <= raft.log.base_index:
            return
        stale = [
            s.id
            for s in self.cluster.alive()
            if s.id != leader.id and s.raft.current_index > applied and s.raft.last_log_term < term
        ]
        if not stale:
            return
        meta = self.cluster.take_snapshot(leader.id)
        if meta is not None:
            self.stats["stale_compactions"] += 1
            self._note(f"leader {leader.id} snapshots at {meta.index} over the tails of {stale}")
            self.checker.after_step(leader)

    def _leader(self) -> SimServer | None:
        return self.cluster.leader_server()

    def _compact(self) -> None:
        live = self.cluster.alive()
        if not live:
            return
        rng = self.rng
        server = live[rng.randrange(len(live))]
        keep = rng.choice((0, 0, 1, 5, 20))
        if rng.random() < 0.5:
            # As a node's snapshot policy does: right after its next advance(),
            # when a leader's own fsync may just have committed more entries.
            server.snapshot_after_advance = keep
            return
        meta = self.cluster.take_snapshot(server.id, keep_entries=keep)
        if meta is not None:
            self._note(f"server {server.id} snapshots at {meta.index}, keeps {keep} entries")
            self.checker.after_step(server)

    def _crash(self) -> None:
        live = [
            s for s in self.cluster.alive() if s.id not in self._retired and not s.crash_in_ready
        ]
        if not live:
            return
        rng = self.rng
        server = live[rng.randrange(len(live))]
        in_ready = rng.random() < 0.5
        syncing = [s for s in live if s.syncing is not None]
        if syncing and rng.random() < 0.5:
            # A leader whose Ready left before its fsync: crash before the
            # fsync completes, so its entries never reach its disk.
            server = syncing[rng.randrange(len(syncing))]
            in_ready = True
        self._crash_server(server, in_ready)

    def _crash_server(self, server: SimServer, in_ready: bool) -> None:
        """Crash ``server`` now or inside its next Ready; it restarts later."""
        lo = self.options.election_timeout_ms
        self._restart_at[server.id] = self.now_ms + self.rng.randint(lo // 2, 10 * lo)
        if in_ready:
            self.cluster.crash_in_ready(server.id)
            self._note(f"server {server.id} will crash inside its next Ready")
        else:
            self.cluster.crash(server.id)
            self._note(f"server {server.id} crashes")
        self.stats["crashes"] += 1
        self.liveness.forget()

    def _crash_new_leaders(self) -> None:
        """Crash the leaders doomed at their election (``leader_crash``) while
        their term has committed nothing yet: now or inside their next Ready."""
        doomed, self._doomed = self._doomed, []
        for node_id in doomed:
            server = self.cluster.servers[node_id]
            raft = server.raft
            if (
                not server.alive
                or server.crash_in_ready
                or node_id in self._retired
                or raft.role is not _LEADER
                or raft.log.term_at(raft.commit_index) == raft.term
            ):
                continue
            self.stats["leader_crashes"] += 1
            self._crash_server(server, self._doom_rng.random() < 0.5)

    def _restart_due(self, now: int) -> None:
        for node_id in sorted(self._restart_at):
            if self._restart_at[node_id] > now:
                continue
            server = self.cluster.servers[node_id]
            if server.crash_in_ready and server.alive:
                # It never reached another Ready: crash it between steps instead.
                self.cluster.crash(node_id)
            del self._restart_at[node_id]
            if server.alive or node_id in self._retired:
                continue
            self.membership.returning(node_id)
            try:
                self.cluster.restart(node_id)
            except (ValueError, AssertionError) as exc:
                raise InvariantViolation(
                    "durability", f"server {node_id} cannot restart from its disk: {exc}"
                ) from None
            self._note(f"server {node_id} restarts: {server.raft!r}")
            self.stats["restarts"] += 1
            self.liveness.forget()
            self.cluster.process(node_id)
            self.checker.after_step(server)

    def _retire_removed(self) -> None:
        for server in self.cluster.servers.values():
            if server.removed and server.id not in self._retired:
                # It applied its own removal: it stops for good.
                self._retired.add(server.id)
                self._note(f"server {server.id} applied its removal and stops")
                self._restart_at.pop(server.id, None)
                if server.alive:
                    self.cluster.crash(server.id)
                self.liveness.forget()

    # -- results -------------------------------------------------------------------------

    def _summary(
        self, wall: float, cpu: float, violation: InvariantViolation | None, lin: str | None
    ) -> dict[str, Any]:
        network = self.cluster.network
        servers = self.cluster.servers.values()
        counts = self.workload.counts
        membership = self.membership.stats
        return {
            "seed": self.seed,
            "servers": self.options.servers,
            "servers_total": len(self.cluster.servers),
            "iterations": self.iteration,
            "virtual_ms": self.now_ms,
            "elections": self.stats["elections"],
            "terms": max(s.raft.term for s in servers),
            "leader_changes": self.stats["leader_changes"],
            "committed": self.checker.committed_index,
            "snapshots": self.stats["snapshots"],
            "snapshots_loaded": self.stats["snapshots_loaded"],
            "membership_changes": membership["membership_proposed"],
            "crashes": self.stats["crashes"],
            "partitions": self.stats["partitions"],
            "install_crashes": self.cluster.install_crashes,
            "readd_refused": membership["readd_refused"],
            "away": membership["away"],
            "away_compactions": membership["away_compactions"],
            "stale_compactions": self.stats["stale_compactions"],
            "early_sends": self.cluster.early_sends,
            "early_crashes": self.cluster.early_crashes,
            "leader_crashes": self.stats["leader_crashes"],
            "forced_elections": membership["forced_elections"],
            "replayed": self.archive.replayed,
            "snapshot_storms": self.storm.storms,
            "storm_snapshots": self.storm.snapshots,
            **self.transfers.stats,
            "longest_leaderless_after_transfer_ms": self.transfers.longest_leaderless_ms,
            "follower_reads": counts["follower_reads"],
            "delivered": network.delivered,
            "dropped": network.dropped,
            "duplicated": network.duplicated,
            "client_ok": counts["ok"],
            "client_fail": counts["fail"],
            "client_unknown": counts["unknown"],
            "linearizability": lin,
            "invariants_checked": self.checker.checks,
            "violations": 0 if violation is None else 1,
            "violation": None if violation is None else violation.name,
            "detail": None if violation is None else violation.detail,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            # Per second of this process's CPU time: a busy machine does not skew it.
            "messages_per_s": round(network.delivered / cpu) if cpu > 0 else 0,
            "drawn": self.drawn,
        }


def run_one(options: SimOptions, seed: int) -> RunResult:
    """Run one seed with ``options``."""
    return Simulation(options, seed).run()
