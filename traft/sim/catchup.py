"""Catching a follower up by snapshot: the chaos that makes it hard, and the
invariant that it ends.

Theory of operation. A leader sends a follower a snapshot when the entries
it needs are compacted, and its progress for that follower stays in
SNAPSHOT state until it learns that the follower can be caught up from the
log again. A leader that snapshots more often than a transfer takes must
not chase the follower with snapshot after snapshot (issue 10, bug 3: the
heartbeat probed the leader's newest snapshot rather than the one sent, and
rejections were ignored, so the follower never returned to replication).

:class:`SnapshotStorm` produces that precondition: when a leader asks for a
snapshot to be sent (``SendSnapshot``), sometimes (``chance`` %) it then
snapshots again every ``period_ms`` while the follower is in SNAPSHOT state
in its progress (:meth:`Raft.progress`), for at most ``max_ms``, keeping
every entry after the first snapshot sent, as a node with a small snapshot
threshold under write load does.

:class:`CatchupChecker` checks ``replication_resumes``: while a server
leads, a follower it can reach both ways is up, not in a later term, and
holds a log whose last entry the leader also holds (same index and term,
at or after the leader's compacted index, so every later entry can be sent
from the log), the leader's progress for it must leave SNAPSHOT state
within ``bound_ms`` of virtual time. The clock restarts whenever one of
those conditions breaks. It costs one look at the leader's progress per
call.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from traft.core import Role, SendSnapshot
from traft.core.progress import ProgressState
from traft.sim.violations import InvariantViolation

if TYPE_CHECKING:
    from traft.sim.cluster import Cluster, SimServer

__all__ = ["CatchupChecker", "SnapshotStorm"]

_SNAPSHOT = ProgressState.SNAPSHOT
_LEADER = Role.LEADER


class CatchupChecker:
    """``replication_resumes`` (see the module docstring)."""

    def __init__(self, bound_ms: int) -> None:
        self.bound_ms = bound_ms
        self.checks = 0
        # (leader, term, follower) -> virtual ms since which the conditions held.
        self._since: dict[tuple[int, int, int], int] = {}

    def check(self, cluster: Cluster, now_ms: int) -> None:
        """Check the current leader's progress; raise :class:`InvariantViolation`."""
        leader_id = cluster.leader()
        if leader_id is None:
            self._since = {}
            return
        leader = cluster.servers[leader_id]
        raft = leader.raft
        since: dict[tuple[int, int, int], int] = {}
        self.checks += 1
        for follower_id, pr in raft.progress().items():
            if pr.state is not _SNAPSHOT:
                continue
            follower = cluster.servers.get(follower_id)
            if follower is None or not self._catchable(cluster, leader, follower):
                continue
            key = (leader_id, raft.term, follower_id)
            start = self._since.get(key, now_ms)
            since[key] = start
            if now_ms - start > self.bound_ms:
                fr = follower.raft
                raise InvariantViolation(
                    "replication_resumes",
                    f"leader {leader_id} (term {raft.term}) has kept server {follower_id} in "
                    f"SNAPSHOT state (pending snapshot {pr.pending_snapshot}) for "
                    f"{now_ms - start} ms, though its log ends at ({fr.current_index}, term "
                    f"{fr.last_log_term}) and the leader holds every entry after it "
                    f"(log {raft.log.base_index}..{raft.log.last_index})",
                )
        self._since = since

    @staticmethod
    def _catchable(cluster: Cluster, leader: SimServer, follower: SimServer) -> bool:
        if not follower.alive or follower.removed:
            return False
        blocked = cluster.network.blocked
        if blocked and ((leader.id, follower.id) in blocked or (follower.id, leader.id) in blocked):
            return False
        raft, fr = leader.raft, follower.raft
        if fr.term > raft.term:
            return False
        last = fr.current_index
        log = raft.log
        if last < log.base_index or last > log.last_index:
            return False
        return log.term_at(last) == fr.last_log_term


class SnapshotStorm:
    """A leader that snapshots again and again while a follower waits for a snapshot."""

    def __init__(
        self,
        cluster: Cluster,
        rng: random.Random,
        *,
        chance: float,
        period_ms: tuple[int, int],
        max_ms: int,
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.chance = chance
        self.period_ms = period_ms
        self.max_ms = max_ms
        self.storms = 0
        self.snapshots = 0
        # (leader, follower) -> (first snapshot index sent, ends at ms, next at ms).
        self._active: dict[tuple[int, int], tuple[int, int, int]] = {}
        if chance:
            cluster.on_event.append(self._on_event)

    def _on_event(self, server: SimServer, event: object) -> None:
        if type(event) is not SendSnapshot:
            return
        key = (server.id, event.node_id)
        if key in self._active or self.rng.random() * 100 >= self.chance:
            return
        now = self.cluster.now_ms
        self._active[key] = (event.index, now + self.max_ms, now + self._period())
        self.storms += 1

    @property
    def active(self) -> bool:
        """Whether a storm is going on."""
        return bool(self._active)

    def _period(self) -> int:
        return self.rng.randint(*self.period_ms)

    def step(self, now_ms: int) -> list[SimServer]:
        """Take the snapshots due by ``now_ms``; returns the leaders that took one."""
        if not self._active:
            return []
        servers = self.cluster.servers
        took: list[SimServer] = []
        for key in sorted(self._active):
            first, ends, due = self._active[key]
            leader = servers[key[0]]
            raft = leader.raft
            pr = raft.progress().get(key[1]) if raft.role is _LEADER else None
            if now_ms >= ends or not leader.alive or pr is None or pr.state is not _SNAPSHOT:
                del self._active[key]
                continue
            if now_ms < due:
                continue
            self._active[key] = (first, ends, now_ms + self._period())
            applied = raft.last_applied
            if applied <= first:
                continue
            meta = self.cluster.take_snapshot(leader.id, keep_entries=applied - first)
            if meta is not None:
                self.snapshots += 1
                took.append(leader)
        return took
