"""The ``liveness`` check: a healthy cluster makes progress.

:class:`LivenessCheck` is owned by :class:`~traft.sim.runner.Simulation`,
which tells it of partitions (:meth:`LivenessCheck.cut`) and of servers
going down or up (:meth:`LivenessCheck.forget`). While servers
that are up and can all talk to each other hold a quorum of the committed
configuration and of the one in force on the most up-to-date servers (an
appended membership change counts at once), the cluster must commit, or
sit idle under an up-to-date leader, within ``liveness_ms``. It applies
only when a round trip fits well within the election timeout (§5.6:
broadcastTime << electionTimeout).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from traft.sim.violations import InvariantViolation

if TYPE_CHECKING:
    from traft.sim.cluster import Cluster
    from traft.sim.invariants import InvariantChecker
    from traft.sim.options import SimOptions

__all__ = ["LivenessCheck"]


class LivenessCheck:
    """``liveness`` (see the module docstring).

    Args:
        options: the run's options (``delay_ms``, ``election_timeout_ms``,
            ``liveness_ms``).
        cluster: the cluster watched.
        checker: what has committed, and the committed configuration.
    """

    def __init__(self, options: SimOptions, cluster: Cluster, checker: InvariantChecker) -> None:
        self.cluster = cluster
        self.checker = checker
        self._liveness_ms = options.liveness_ms
        #: Raft promises progress only when a round trip is well within the
        #: election timeout (§5.6: broadcastTime << electionTimeout).
        self.applies = 2 * options.delay_ms[1] < options.election_timeout_ms
        self._cut: list[tuple[int, int]] = []
        self._healthy_cache: tuple[Any, bool] | None = None
        self._last_commit = 0
        self._last_ok_ms = 0

    def cut(self, links: list[tuple[int, int]]) -> None:
        """A partition cut ``links`` (``[]``: it healed)."""
        self._cut = links
        self._healthy_cache = None

    def forget(self) -> None:
        """A server went down or came back: whether the cluster is healthy may change."""
        self._healthy_cache = None

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

    def check(self, now: int) -> None:
        """Raise ``liveness`` if a healthy cluster made no progress for too long."""
        if not self.applies:
            return
        commit = self.checker.committed_index
        if commit > self._last_commit or not self._healthy():
            self._last_commit = commit
            self._last_ok_ms = now
            return
        leader = self.cluster.leader_server()
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
        if now - self._last_ok_ms > self._liveness_ms:
            raise InvariantViolation(
                "liveness",
                f"no progress for {now - self._last_ok_ms} ms while a quorum of each of "
                f"{self._configurations()} was up and connected",
            )
