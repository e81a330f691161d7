"""Leadership transfers in the simulator's chaos, and the invariant they must keep.

Theory of operation. :class:`TransferChaos` asks the current leader to hand
leadership to a random other voter (thesis §3.10), racing with whatever else
the chaos does (partitions, crashes, membership changes, compactions); it
counts what the cores report (``TransferStarted``, ``TransferFinished``,
``TransferAborted``). Safety under transfers is checked by the ordinary
invariants (election safety: at most one leader per term; log matching;
state-machine safety; linearizable client histories).

The liveness promise of a transfer is checked once faults stop
(:meth:`TransferChaos.calm`): a transfer started while every voter is up and
no link is cut or lossy must not leave the cluster without a leader for
longer than an election timeout (the target campaigns at once; the voters
grant it despite stickiness). A violation is ``transfer_leaderless``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from traft.core import NotLeader, Role, TransferAborted, TransferError, TransferFinished
from traft.sim.cluster import Cluster, SimServer
from traft.sim.invariants import InvariantViolation

__all__ = ["TransferChaos"]


class TransferChaos:
    """Starts leadership transfers and checks the leaderless time after them.

    Args:
        cluster: the simulated cluster (an ``on_event`` hook is registered).
        rng: the chaos's own random source.
        election_timeout_ms: T, the bound on a leaderless period after a
            transfer once faults have stopped.
        after_step: called with a server after a transfer made it act.
        note: records a line in the run's recent-events log.
    """

    def __init__(
        self,
        cluster: Cluster,
        rng: random.Random,
        election_timeout_ms: int,
        *,
        after_step: Callable[[SimServer], None] | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.election_timeout_ms = election_timeout_ms
        self._after_step = after_step
        self._note = note
        self.stats = {
            "transfers": 0,
            "transfers_finished": 0,
            "transfers_aborted": 0,
            "transfers_refused": 0,
            "transfers_watched": 0,
        }
        self._calm_since: int | None = None
        # While calm: (time the watched transfer started, its target).
        self._watch: tuple[int, int] | None = None
        self._leaderless_since: int | None = None
        self.longest_leaderless_ms = 0
        cluster.on_event.append(self._on_event)

    def _on_event(self, server: SimServer, event: object) -> None:
        if isinstance(event, TransferFinished):
            self.stats["transfers_finished"] += 1
        elif isinstance(event, TransferAborted):
            self.stats["transfers_aborted"] += 1

    def calm(self, now_ms: int) -> None:
        """Faults stopped at ``now_ms``: watch transfers once the cluster has settled."""
        self._calm_since = now_ms

    def _settled(self, now_ms: int, leader: SimServer) -> bool:
        """Calm for 5 election timeouts, every voter up and in the leader's term."""
        since = self._calm_since
        if since is None or now_ms - since < 5 * self.election_timeout_ms:
            return False
        servers = self.cluster.servers
        for voter in leader.raft.voters():
            server = servers.get(voter)
            if server is None or not server.alive or server.install is not None:
                return False
        return all(s.raft.term == leader.raft.term for s in self.cluster.alive())

    def start(self, now_ms: int) -> None:
        """Ask the current leader to transfer leadership to a random voter."""
        cluster = self.cluster
        leader_id = cluster.leader()
        if leader_id is None:
            return
        leader = cluster.servers[leader_id]
        raft = leader.raft
        others = [v for v in raft.voters() if v != leader_id]
        if not others:
            return
        target = others[self.rng.randrange(len(others))]
        try:
            raft.transfer_leadership(target)
        except (NotLeader, TransferError):
            self.stats["transfers_refused"] += 1
            return
        self.stats["transfers"] += 1
        if self._note is not None:
            self._note(f"leader {leader_id} transfers leadership to {target}")
        if self._watch is None and self._settled(now_ms, leader):
            self._watch = (now_ms, target)
            self.stats["transfers_watched"] += 1
        cluster.process(leader_id)
        if self._after_step is not None:
            self._after_step(leader)

    def check(self, now_ms: int) -> None:
        """After each iteration: while calm, bound the leaderless time after a transfer.

        Raises:
            InvariantViolation: the cluster had no leader for longer than an
                election timeout after a transfer started with no fault active.
        """
        watch = self._watch
        if watch is None:
            return
        started, target = watch
        cluster = self.cluster
        leader = cluster.leader()
        top = max((s.raft.term for s in cluster.alive()), default=0)
        has_leader = leader is not None and cluster.servers[leader].raft.term == top
        if has_leader:
            if self._leaderless_since is not None:
                gap = now_ms - self._leaderless_since
                self.longest_leaderless_ms = max(self.longest_leaderless_ms, gap)
                self._leaderless_since = None
            if now_ms - started > 3 * self.election_timeout_ms:
                self._watch = None  # this transfer is settled, one way or the other
            return
        if self._leaderless_since is None:
            self._leaderless_since = now_ms
            return
        gap = now_ms - self._leaderless_since
        if gap > self.election_timeout_ms:
            roles = {
                s.id: (s.raft.role.value, s.raft.term)
                for s in cluster.alive()
                if s.raft.role is not Role.FOLLOWER or s.id == target
            }
            raise InvariantViolation(
                "transfer_leaderless",
                f"no leader for {gap} ms after a transfer to {target} started at {started} ms "
                f"with no fault active (election timeout {self.election_timeout_ms} ms); "
                f"non-followers and target: {roles}",
            )
