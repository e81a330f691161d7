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
   (:class:`~traft.sim.transfers.TransferChaos`), racing with the rest;
4. liveness: while servers that are up and all connected hold a quorum of
   the committed configuration and of the one in force on the most
   up-to-date servers, the cluster must commit, or sit idle under an
   up-to-date leader, within ``liveness_ms``.

The last ``calm_ms`` of a run are calm: partitions heal, crashed servers
restart, and no message is lost, duplicated or reordered; membership
changes, compactions and crashes stop; clients and transfers go on. Once
the cluster has settled, every transfer must leave it without a leader for
no longer than an election timeout (``transfer_leaderless``).

The :class:`~traft.sim.invariants.InvariantChecker` checks after every
delivered message and every step of every server. At the end the client
history is checked for linearizability with ``traft.check``.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from collections import deque
from typing import Any

import attrs

from traft.check import Verdict
from traft.core import (
    Config,
    EntryType,
    LeaderNotReady,
    MembershipError,
    NodeUnknown,
    NotLeader,
    OneVotingChangeOnly,
    Ready,
    Role,
    RoleChanged,
)
from traft.sim.catchup import CatchupChecker, SnapshotStorm
from traft.sim.clients import Workload
from traft.sim.cluster import INSTALL_STEPS, Cluster, Install, SimServer
from traft.sim.invariants import InvariantChecker, InvariantViolation
from traft.sim.transfers import TransferChaos

__all__ = ["RunResult", "SimOptions", "Simulation", "run_one"]

_LEADER = Role.LEADER


@attrs.frozen(kw_only=True)
class SimOptions:
    """Everything that shapes a run except the seed. Rates are percentages.

    ``drop``, ``dupe`` and ``reorder`` apply to each delivered message;
    ``partition``, ``member``, ``compaction``, ``crash`` and ``client`` are
    chances per iteration (fractions allowed, e.g. 0.2). ``install_ms`` is
    the time each step of a snapshot install takes (None: installs are
    instant); ``install_crash`` the chance that an install crashes between
    two of its steps; ``readd`` the chance that a membership change tries to
    re-add a removed id; ``away`` the chance that a server being removed is
    crashed at once and kept down while its removal commits and the leader
    compacts, so that it comes back to a snapshot; ``stale_compaction`` the
    chance that, when a partition heals while a server holds a stale tail
    past the leader's applied index, the leader compacts first, so that the
    server is caught up by a snapshot its tail contradicts; ``chase`` the
    chance that a leader asked to send a snapshot then keeps snapshotting
    while the follower waits for it (:class:`~traft.sim.catchup.SnapshotStorm`),
    and ``catchup_ms`` the bound of ``replication_resumes``. ``early_send``
    is the chance that a server's driver sends a leader's Ready before its
    fsync (thesis §10.2.1), which then takes ``fsync_ms`` of virtual time
    while the server keeps taking input. ``transfer`` is the chance per
    iteration that the leader is asked to transfer leadership; ``pre_vote``
    turns the cores' pre-vote on (the default) or off; ``calm_ms`` is the
    fault-free tail of every run (at most its second half; 0 for none;
    module docstring).
    """

    servers: int = 5
    iterations: int = 5000
    duration_ms: int | None = None
    step_ms: int = 5
    drop: float = 5.0
    dupe: float = 5.0
    reorder: float = 10.0
    delay_ms: tuple[int, int] = (1, 15)
    partition: float = 0.5
    member: float = 0.5
    compaction: float = 1.0
    crash: float = 0.2
    install_ms: tuple[int, int] | None = (1, 40)
    install_crash: float = 25.0
    readd: float = 10.0
    away: float = 30.0
    stale_compaction: float = 50.0
    chase: float = 25.0
    catchup_ms: int = 400
    early_send: float = 50.0
    fsync_ms: tuple[int, int] = (1, 20)
    client: float = 20.0
    transfer: float = 0.5
    random_period: bool = True
    election_timeout_ms: int = 150
    heartbeat_ms: int = 50
    liveness_ms: int = 10_000
    check_quorum: bool = True
    pre_vote: bool = True
    calm_ms: int = 2000
    clients: int = 4
    keys: int = 3
    client_timeout_ms: int = 2000
    max_extra_servers: int = 2
    trace: bool = False
    check_history: bool = True
    history_timeout_s: float = 10.0

    def iterations_total(self) -> int:
        if self.duration_ms is not None:
            return max(1, self.duration_ms // self.step_ms)
        return self.iterations


@attrs.define
class RunResult:
    """The outcome of one run: its summary and the first violation, if any."""

    seed: int
    summary: dict[str, Any]
    violation: InvariantViolation | None = None
    iteration: int | None = None
    digest: str | None = None

    @property
    def ok(self) -> bool:
        return self.violation is None


class Simulation:
    """One run of the simulator (see the module docstring)."""

    def __init__(self, options: SimOptions, seed: int) -> None:
        self.options = o = options
        self.seed = seed
        root = random.Random(seed)
        self.rng = random.Random(root.getrandbits(64))
        config = Config(
            election_timeout_ms=o.election_timeout_ms,
            request_timeout_ms=o.heartbeat_ms,
            snapshot_resend_ms=4 * o.election_timeout_ms,
            check_quorum=o.check_quorum,
            pre_vote=o.pre_vote,
        )
        ids = list(range(1, o.servers + 1))
        self.cluster = c = Cluster(ids, seed=root.getrandbits(64), config=config)
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
        self.next_id = o.servers + 1
        self.now_ms = 0
        self.iteration = 0
        self.stats = dict.fromkeys(
            (
                "elections",
                "leader_changes",
                "snapshots",
                "snapshots_loaded",
                "membership_proposed",
                "crashes",
                "restarts",
                "partitions",
                "install_crashes",
                "readd_refused",
                "away",
                "away_compactions",
                "stale_compactions",
            ),
            0,
        )
        self._restart_at: dict[int, int] = {}
        self._new_leaders: list[int] = []
        self._retired: set[int] = set()
        self._heal_at: int | None = None
        self._cut: list[tuple[int, int]] = []
        self._last_ok_ms = 0
        # Raft promises progress only when a round trip is well within the
        # election timeout (§5.6: broadcastTime << electionTimeout).
        self._liveness_applies = 2 * o.delay_ms[1] < o.election_timeout_ms
        self._last_commit = 0
        self._healthy_cache: tuple[Any, bool] | None = None
        self._hash = hashlib.blake2b(digest_size=16) if o.trace else None
        self.recent: deque[str] = deque(maxlen=0)
        self._log = False
        c.on_snapshot.append(self._count_snapshot)
        c.on_install.append(self._on_install)
        c.on_crash.append(self._on_crash)
        # Servers crashed by the away path: id -> (leader id, removal index).
        self._away: dict[int, tuple[int, int]] = {}

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
                    # Adversarial timing: membership changes right after an
                    # election, before the new leader's no-op commits.
                    member = self.options.member
                    if (
                        member
                        and not self._calm
                        and self.rng.random() * 100 < min(50.0, 20 * member)
                    ):
                        self._new_leaders.append(server.id)

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
        self._healthy_cache = None

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
            if self._new_leaders:
                self._greet_new_leaders()
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
            self._change_membership()
        if o.compaction and rng.random() * 100 < o.compaction and not calm:
            self._compact()
        if self.storm.active:
            for leader in self.storm.step(now):
                self._note(f"leader {leader.id} snapshots at {leader.raft.snapshot} (storm)")
                check(leader)
        if o.crash and rng.random() * 100 < o.crash and not calm:
            self._crash()
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
        self._retire_removed()
        # 4. Liveness, every fourth iteration: the window is seconds long, and
        # no outage shorter than that excuses a whole window without progress.
        if not self.iteration % 4:
            self._check_liveness(now)
            if self._liveness_applies:
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
            receive(src, dst, msg)
            check(server)
            if self._new_leaders:
                self._greet_new_leaders()

    # -- chaos ---------------------------------------------------------------------------

    def _become_calm(self, now: int) -> None:
        """Faults stop: heal, restart everyone, deliver every message as sent."""
        self._calm = True
        self._drop = self._dupe = self._reorder = 0.0
        self._new_leaders.clear()
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
        self._cut = cut
        self.cluster.network.blocked.update(cut)
        lo = self.options.election_timeout_ms
        self._heal_at = self.now_ms + rng.randint(lo, 10 * lo)
        self._healthy_cache = None
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
        self._cut = []
        self._heal_at = None
        self._healthy_cache = None

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
        leader = self.cluster.leader()
        return None if leader is None else self.cluster.servers[leader]

    def _greet_new_leaders(self) -> None:
        new, self._new_leaders = self._new_leaders, []
        for node_id in new:
            server = self.cluster.servers[node_id]
            if server.alive and server.raft.role is _LEADER:
                self._change_membership(server)

    def _change_membership(self, leader: SimServer | None = None) -> None:
        if leader is None:
            leader = self._leader()
        if leader is None:
            return
        rng = self.rng
        raft = leader.raft
        members = raft.membership().nodes
        voters = [n.node_id for n in members if n.voting]
        non_voters = [n.node_id for n in members if not n.voting]
        o = self.options
        choices = []
        if o.readd and self.checker.removed_at and rng.random() * 100 < o.readd:
            self._readd(leader)
            return
        if len(members) < o.servers + o.max_extra_servers:
            choices.append("add")
        if non_voters:
            choices.append("promote")
        if len(voters) > max(1, o.servers - 2) or non_voters:
            choices.append("remove")
        if not choices:
            return
        action = choices[rng.randrange(len(choices))]
        try:
            if action == "add":
                node_id = self.next_id
                raft.propose_membership(EntryType.ADD_NONVOTING_NODE, node_id)
                self.next_id += 1
                server = self.cluster.add_server(node_id)
                server.keep_applied = False
                server.keep_events = False
                self._draw_driver(server)
                self.checker.track(server)
            elif action == "promote":
                node_id = non_voters[rng.randrange(len(non_voters))]
                raft.propose_membership(EntryType.ADD_NODE, node_id)
            else:
                pool = voters if len(voters) > max(1, o.servers - 2) else []
                pool = pool + non_voters
                node_id = pool[rng.randrange(len(pool))]
                resp = raft.propose_membership(EntryType.REMOVE_NODE, node_id)
        except (NotLeader, OneVotingChangeOnly, MembershipError, NodeUnknown, LeaderNotReady):
            return
        self._note(f"leader {leader.id} proposes {action} of server {node_id}")
        self.stats["membership_proposed"] += 1
        if action == "remove" and o.away and node_id != leader.id:
            if rng.random() * 100 < o.away:
                self._send_away(node_id, leader.id, resp.index)
        self.cluster.process(leader.id)
        self.checker.after_step(leader)

    def _readd(self, leader: SimServer) -> None:
        """Try to add again a server whose removal committed: the leader must refuse."""
        # Only removals this leader knows committed: a deposed leader that
        # never heard of a server may accept it (the entry can never commit).
        commit = leader.raft.commit_index
        removed = sorted(i for i, at in self.checker.removed_at.items() if at <= commit)
        if not removed:
            return
        node_id = removed[self.rng.randrange(len(removed))]
        try:
            leader.raft.propose_membership(EntryType.ADD_NONVOTING_NODE, node_id)
        except MembershipError:
            # Ids of removed servers are never reused (the leader says so).
            self.stats["readd_refused"] += 1
            self._note(f"leader {leader.id} refuses to re-add removed server {node_id}")
            return
        except (NotLeader, OneVotingChangeOnly, NodeUnknown, LeaderNotReady):
            return
        raise InvariantViolation(
            "no_id_reuse",
            f"leader {leader.id} accepted re-adding server {node_id}, removed by the committed "
            f"entry {self.checker.removed_at[node_id]}",
        )

    def _send_away(self, node_id: int, leader_id: int, index: int) -> None:
        """Crash a server being removed before it hears of it, and keep it down
        long enough for the removal to commit and the leader to compact."""
        server = self.cluster.servers.get(node_id)
        if server is None or not server.alive or node_id in self._retired:
            return
        lo = self.options.election_timeout_ms
        self._restart_at[node_id] = self.now_ms + self.rng.randint(4 * lo, 12 * lo)
        self._away[node_id] = (leader_id, index)
        self.cluster.crash(node_id)
        self.stats["away"] += 1
        self._note(f"server {node_id} goes away while leader {leader_id} removes it at {index}")

    def _compact_for_away(self, node_id: int, leader_id: int, index: int) -> None:
        # If the removal committed, the leader that proposed it (which keeps
        # replicating to the removed server until it hears) compacts past it,
        # so the returning server is caught up by a snapshot.
        leader = self.cluster.servers.get(leader_id)
        if leader is None or not leader.alive or leader.raft.role is not _LEADER:
            return
        if leader.raft.last_applied < index:
            return
        if leader.raft.log.base_index < index:
            meta = self.cluster.take_snapshot(leader_id)
            if meta is None:
                return
            self._note(f"leader {leader_id} snapshots at {meta.index} before {node_id} returns")
            self.checker.after_step(leader)
        # The returning server needs a snapshot that leaves it out.
        self.stats["away_compactions"] += 1

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
        lo = self.options.election_timeout_ms
        self._restart_at[server.id] = self.now_ms + rng.randint(lo // 2, 10 * lo)
        if in_ready:
            self.cluster.crash_in_ready(server.id)
            self._note(f"server {server.id} will crash inside its next Ready")
        else:
            self.cluster.crash(server.id)
            self._note(f"server {server.id} crashes")
        self.stats["crashes"] += 1
        self._healthy_cache = None

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
            away = self._away.pop(node_id, None)
            if away is not None:
                self._compact_for_away(node_id, *away)
            try:
                self.cluster.restart(node_id)
            except (ValueError, AssertionError) as exc:
                raise InvariantViolation(
                    "durability", f"server {node_id} cannot restart from its disk: {exc}"
                ) from None
            self._note(f"server {node_id} restarts: {server.raft!r}")
            self.stats["restarts"] += 1
            self._healthy_cache = None
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
                self._healthy_cache = None

    # -- liveness ------------------------------------------------------------------------

    def _configurations(self) -> list[tuple[int, ...]]:
        """Voter sets a leader must win over: the committed one, and the one in
        force on the servers with the most up-to-date logs (membership entries
        take effect when appended, so an uncommitted change already counts)."""
        configs = {tuple(sorted(self.checker.committed_voters))}
        live = [s for s in self.cluster.alive() if not s.removed and s.raft.voters()]
        if live:
            best = max((s.raft.last_log_term, s.raft.current_index) for s in live)
            for s in live:
                if (s.raft.last_log_term, s.raft.current_index) == best:
                    configs.add(tuple(s.raft.voters()))
        return sorted(configs)

    def _healthy(self) -> bool:
        """Whether some servers that are up and can all talk to each other hold
        a quorum of every configuration in :meth:`_configurations`."""
        configs = self._configurations()
        servers = self.cluster.servers
        members = sorted({v for config in configs for v in config})
        # A crash inside a Ready happens during a step, so whether each voter
        # is up is part of the key.
        up = [v for v in members if v in servers and servers[v].alive and not servers[v].removed]
        key = (tuple(configs), tuple(self._cut), tuple(up))
        cached = self._healthy_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        blocked = self.cluster.network.blocked
        healthy = False
        for size in range(len(up), 0, -1):
            for group in itertools.combinations(up, size):
                chosen = set(group)
                if all(
                    len(chosen.intersection(config)) > len(config) // 2 for config in configs
                ) and not any((a, b) in blocked for a in group for b in group if a != b):
                    healthy = True
                    break
            if healthy:
                break
        self._healthy_cache = (key, healthy)
        return healthy

    def _check_liveness(self, now: int) -> None:
        if not self._liveness_applies:
            return
        commit = self.checker.committed_index
        if commit > self._last_commit or not self._healthy():
            self._last_commit = commit
            self._last_ok_ms = now
            return
        leader = self._leader()
        if leader is not None:
            raft = leader.raft
            top = max(s.raft.term for s in self.cluster.alive())
            if (
                raft.term == top
                and raft.commit_index == raft.current_index
                and raft.log.term_at(raft.commit_index) == raft.term
            ):
                self._last_ok_ms = now
                return
        if now - self._last_ok_ms > self.options.liveness_ms:
            raise InvariantViolation(
                "liveness",
                f"no progress for {now - self._last_ok_ms} ms while a quorum of each of "
                f"{self._configurations()} was up and connected",
            )

    # -- results -------------------------------------------------------------------------

    def _summary(
        self, wall: float, cpu: float, violation: InvariantViolation | None, lin: str | None
    ) -> dict[str, Any]:
        network = self.cluster.network
        servers = self.cluster.servers.values()
        counts = self.workload.counts
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
            "membership_changes": self.stats["membership_proposed"],
            "crashes": self.stats["crashes"],
            "partitions": self.stats["partitions"],
            "install_crashes": self.cluster.install_crashes,
            "readd_refused": self.stats["readd_refused"],
            "away": self.stats["away"],
            "away_compactions": self.stats["away_compactions"],
            "stale_compactions": self.stats["stale_compactions"],
            "early_sends": self.cluster.early_sends,
            "early_crashes": self.cluster.early_crashes,
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
        }


def run_one(options: SimOptions, seed: int) -> RunResult:
    """Run one seed with ``options``."""
    return Simulation(options, seed).run()
