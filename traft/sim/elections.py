"""The Raft paper's election experiment (Figure 16), repeated in the simulator.

Theory of operation. Ongaro and Ousterhout (2014, §9.3) crashed the leader
of a five-server cluster over and over and timed how long the cluster went
without a leader, for several ranges of election timeouts. Their method,
followed here trial by trial:

* five servers, a broadcast time of about 15 ms (one-way delays drawn
  uniformly from ``delay_ms``; the study measures and reports the actual
  broadcast time: the slowest of the four round trips of a leader's
  broadcast);
* the heartbeat interval is half the minimum election timeout;
* the leader is crashed at a uniformly random point of its heartbeat
  interval, right after a synchronized broadcast that carries a new entry
  (the paper's approximation of "the leader replicating a new log entry
  prior to crashing");
* the servers' logs have different lengths, so some candidates are not
  eligible: the new entry reaches a random subset of the followers and the
  others (none, one or two of them) get the broadcast without it. A server
  without the entry cannot win: only the other servers without it would
  vote for it, and with its own vote that is at most two of five.

The one change to the core is the timeout draw: traft draws election
timeouts from [T, 2T); the study needs arbitrary ranges [lo, hi], so
:func:`study_raft` makes a :class:`~traft.core.Raft` subclass whose
``_draw_timeout`` returns ``rng.randint(lo, hi)`` (the core's own rng, so
trials stay deterministic). Time advances in 1 ms steps. A trial that has
not elected a leader within ``cap_ms`` of the crash is recorded as
``inf``.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence

import attrs

from traft.core import AppendEntries, Config, Raft, Role
from traft.sim.cluster import Cluster

__all__ = ["LineResult", "TrialSetup", "run_line", "run_trial", "study_raft"]


def study_raft(lo: int, hi: int) -> type[Raft]:
    """A :class:`Raft` whose election timeouts are uniform integers in [lo, hi] ms."""

    class StudyRaft(Raft):
        def _draw_timeout(self) -> int:
            return self._rng.randint(lo, hi)

    StudyRaft.__name__ = f"StudyRaft_{lo}_{hi}"
    return StudyRaft


@attrs.frozen(kw_only=True)
class TrialSetup:
    """One line of the figure: a timeout range and how trials are run."""

    lo: int
    hi: int
    servers: int = 5
    delay_ms: tuple[int, int] = (1, 2)
    fsync_ms: tuple[int, int] = (4, 7)
    cap_ms: int = 10_000


@attrs.define
class LineResult:
    """The times without a leader (ms) of every trial of one line."""

    setup: TrialSetup
    times_ms: list[float]
    broadcast_ms: list[int]

    @property
    def label(self) -> str:
        return f"{self.setup.lo}-{self.setup.hi} ms"

    @property
    def finite(self) -> list[float]:
        return [t for t in self.times_ms if math.isfinite(t)]

    def stats(self) -> dict[str, float | int]:
        """Trials, median, mean, 99th percentile, worst and trials over the cap."""
        times = sorted(self.times_ms)
        n = len(times)
        finite = self.finite
        over = n - len(finite)
        return {
            "trials": n,
            "median": times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2,
            "mean": statistics.fmean(times) if not over else math.inf,
            "p99": times[min(n - 1, math.ceil(0.99 * n) - 1)],
            "worst": times[-1],
            "over_cap": over,
            "broadcast": statistics.fmean(self.broadcast_ms) if self.broadcast_ms else 0.0,
        }


def _step(cluster: Cluster) -> None:
    """One millisecond: every live server ticks, then messages due are delivered."""
    cluster.tick(1)
    for _, src, dst, msg in cluster.network.take_due(cluster.now_ms):
        cluster.network.count_delivered()
        cluster.receive(src, dst, msg)


def run_trial(setup: TrialSetup, seed: int) -> tuple[float, int]:
    """One trial: returns (time without a leader in ms or inf, broadcast time in ms)."""
    rng = random.Random(seed)
    heartbeat = max(1, setup.lo // 2)
    config = Config(
        election_timeout_ms=setup.lo,
        request_timeout_ms=heartbeat if heartbeat < setup.lo else setup.lo - 1,
        check_quorum=True,
    )
    ids = list(range(1, setup.servers + 1))
    cluster = Cluster(ids, seed=rng.getrandbits(64), config=config, auto_promote=False)
    cluster.network.delay_ms = setup.delay_ms
    cluster.fsync_ms = setup.fsync_ms
    cluster.network.rng = random.Random(rng.getrandbits(64))
    cls = study_raft(setup.lo, setup.hi)
    for server in cluster.servers.values():
        server.keep_applied = False
        server.keep_events = False
        raft = cls(server.id, config, server.rng)
        for node_id in ids:
            raft.add_node(node_id, is_self=node_id == server.id)
        server.raft = raft
    cluster[ids[0]].campaign()
    cluster.process(ids[0])
    # Warm up: a leader's no-op commits and a few heartbeat rounds pass; with
    # timeouts close to the broadcast time leadership may change meanwhile,
    # so the trial crashes whoever leads once the warm-up is over.
    warm = 3 * heartbeat + rng.randrange(heartbeat) + rng.randrange(heartbeat)
    leader_id = None
    while True:
        _step(cluster)
        if cluster.now_ms > setup.cap_ms:
            raise RuntimeError("no stable leader before the crash")
        leaders = [i for i in ids if cluster[i].role is Role.LEADER]
        if not leaders:
            continue
        raft = cluster[leaders[0]]
        if raft.log.term_at(raft.commit_index) == raft.term and cluster.now_ms >= warm:
            leader_id = leaders[0]
            break
    leader = cluster.servers[leader_id]
    # One broadcast that must be durable (a RequestVote round): the sender's
    # fsync, then the slowest of the round trips, each with the receiver's fsync.
    net, disk = setup.delay_ms, setup.fsync_ms
    broadcast = rng.randint(*disk) + max(
        rng.randint(*net) + rng.randint(*disk) + rng.randint(*net) for _ in ids[1:]
    )
    leader.raft.recv_entry(b"last", id=1)
    cluster.process(leader_id)
    followers = [i for i in ids if i != leader_id]
    missing = set(rng.sample(followers, rng.randint(0, 2)))
    network = cluster.network
    for k, (src, dst, msg) in enumerate(network.in_flight):
        if src == leader_id and dst in missing and isinstance(msg, AppendEntries) and msg.entries:
            network.in_flight[k] = (src, dst, attrs.evolve(msg, entries=()))
    cluster.crash(leader_id)
    crashed_at = cluster.now_ms
    while cluster.now_ms - crashed_at <= setup.cap_ms:
        _step(cluster)
        for node_id in followers:
            if cluster[node_id].role is Role.LEADER:
                return float(cluster.now_ms - crashed_at), broadcast
    return math.inf, broadcast


def run_line(setup: TrialSetup, trials: int, first_seed: int = 0) -> LineResult:
    """Run ``trials`` trials of one line with seeds ``first_seed``, ``first_seed + 1``..."""
    times: list[float] = []
    broadcasts: list[int] = []
    for seed in range(first_seed, first_seed + trials):
        t, b = run_trial(setup, seed)
        times.append(t)
        broadcasts.append(b)
    return LineResult(setup, times, broadcasts)


def cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Points of the empirical CDF of the finite ``values`` (over all values)."""
    finite = sorted(v for v in values if math.isfinite(v))
    n = len(values)
    return finite, [(k + 1) / n for k in range(len(finite))]
