"""The checks of what survives a crash: ``durability``, ``vote_safety``, and
``log_matching`` at a restart.

:class:`DurabilityChecks` is a collaborator of
:class:`~traft.sim.invariants.InvariantChecker`, given at construction what
it reads of the checker's records (the tracked servers, the ``(index,
term)`` pairs seen, the committed configurations and entries) and counting
its own checks: when a vote is persisted, the candidate's log must
be at least as up-to-date as every committed entry the voter holds durably;
when an entry commits, enough voters must hold it durably that every
quorum meets one of them; when a server restarts, it must hold exactly what
it persisted (:func:`~traft.sim.shadow.recover_shadow` says what a sound
recovery keeps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traft.core import EntryType, HardState
from traft.sim.shadow import ShadowLog, Track, compare_logs, recover_shadow
from traft.sim.violations import InvariantViolation

if TYPE_CHECKING:
    from collections.abc import Callable

    from traft.sim.cluster import SimServer
    from traft.sim.configurations import CommittedConfigurations

__all__ = ["DurabilityChecks"]


class DurabilityChecks:
    """``durability`` and ``vote_safety`` (see the module docstring).

    Args:
        tracks: the checker's record of each server (read only).
        pairs: every ``(index, term)`` appended anywhere -> (entry id, term
            of the entry before it) (read only).
        configurations: the committed configurations (read only).
        committed_id: the id of the entry known committed at an index, or None.
    """

    def __init__(
        self,
        tracks: dict[int, Track],
        pairs: dict[tuple[int, int], tuple[int, int]],
        configurations: CommittedConfigurations,
        committed_id: Callable[[int], int | None],
    ) -> None:
        #: How many checks ran (part of the checker's count).
        self.checks = 0
        self._tracks = tracks
        self._pairs = pairs
        self._configurations = configurations
        self._committed_id = committed_id

    def check_vote(self, server: SimServer, shadow: ShadowLog, hs: HardState) -> None:
        """``vote_safety``: ``server``, whose durable log is ``shadow``, persisted the vote ``hs``."""
        self.checks += 1
        request = server.vote_request
        if request is None or request.candidate_id != hs.voted_for or request.term != hs.term:
            return
        # The most up-to-date committed entry this server holds durably.
        best = (0, 0)
        if shadow.snapshot is not None:
            best = (shadow.snapshot[1], shadow.snapshot[0])
        committed_id = self._committed_id
        for index in range(shadow.last_index, max(shadow.base_index, best[1]), -1):
            entry = shadow.get(index)
            if entry is not None and committed_id(index) == entry.id:
                best = max(best, (entry.term, index))
                break
        if (request.last_log_term, request.last_log_index) < best:
            raise InvariantViolation(
                "vote_safety",
                f"server {server.id} votes for {hs.voted_for} in term {hs.term}, whose log ends "
                f"at ({request.last_log_index}, term {request.last_log_term}), though it holds "
                f"committed entry {best[1]} of term {best[0]} durably",
            )

    def check_durable(self, index: int, entry_id: int) -> None:
        """``durability``: the newest committed entry, ``entry_id`` at ``index``, is
        durable on enough voters of the committed configuration."""
        # Every quorum of the committed configuration must meet a server
        # whose durable state holds the newest committed entry (§5.4; with
        # single-server changes, quorums of consecutive configurations meet).
        self.checks += 1
        voters = self._configurations.voters
        holders = 0
        for node_id in voters:
            track = self._tracks.get(node_id)
            if track is None:
                continue
            shadow = track.shadow
            if shadow.base_index >= index:
                holders += 1
            else:
                entry = shadow.get(index)
                if entry is not None and entry.id == entry_id:
                    holders += 1
        needed = len(voters) - (len(voters) // 2 + 1) + 1
        if holders < needed:
            raise InvariantViolation(
                "durability",
                f"committed entry {index} is durable on {holders} of voters {sorted(voters)}; "
                f"a quorum of them could elect a leader without it",
            )

    def check_commit_durable(self, server: SimServer, index: int) -> None:
        """``durability``: leader ``server`` moved its commit index to ``index``."""
        # A leader's commit index must rest on durable copies on a majority
        # of its voters when it advances: its own copy counts only once its
        # fsync completed, whatever it already sent (thesis §10.2.1).
        self.checks += 1
        raft = server.raft
        log = raft.log
        entry = log.get(index)
        if entry is None:
            return
        tracks = self._tracks

        def holds(node_id: int) -> bool:
            track = tracks.get(node_id)
            if track is None:
                return False
            shadow = track.shadow
            if shadow.base_index >= index:
                return True
            held = shadow.get(index)
            return held is not None and held.id == entry.id

        voters = raft.voters()
        if sum(map(holds, voters)) > len(voters) // 2:
            return
        # The configuration may have changed since the commit moved (a change
        # appended later in the same step): any configuration in force since
        # then will do.
        conf = raft._conf  # noqa: SLF001
        for later in range(index + 1, log.last_index + 1):
            appended = log.get(later)
            if appended is None or appended.type in (EntryType.NORMAL, EntryType.NO_OP):
                continue
            before = [n.node_id for n in conf.membership_at(later - 1).nodes if n.voting]
            if sum(map(holds, before)) > len(before) // 2:
                return
        raise InvariantViolation(
            "durability",
            f"leader {server.id} (term {raft.term}) commits {index}, durable only on "
            f"{sorted(v for v in voters if holds(v))} of its voters {sorted(voters)}",
        )

    def on_restart(self, server: SimServer, track: Track) -> None:
        """A server restarted from its disk: it must hold exactly what it
        persisted (``track`` is what the checker remembers of it)."""
        self.checks += 2
        shadow = track.shadow
        raft = server.raft
        hs = shadow.hard_state
        if (raft.term, raft.voted_for) != (hs.term, hs.voted_for):
            raise InvariantViolation(
                "durability",
                f"server {server.id} restarted with term {raft.term} vote {raft.voted_for}; "
                f"it persisted term {hs.term} vote {hs.voted_for}",
            )
        snap = raft.snapshot
        got = None if snap is None else (snap.index, snap.term)
        if got != shadow.snapshot:
            raise InvariantViolation(
                "durability",
                f"server {server.id} restarted with snapshot {got}; it stored {shadow.snapshot}",
            )
        log = raft.log
        if log.last_index > log.base_index:
            # The restored log must continue its base as the entry did where
            # it was appended (an install's stale tail under a newer snapshot
            # does not).
            first = log.get(log.base_index + 1)
            assert first is not None
            seen = self._pairs.get((first.index, first.term))
            if seen is None or seen != (first.id, log.base_term):
                raise InvariantViolation(
                    "log_matching",
                    f"server {server.id} restarted with entry {first.index} of term "
                    f"{first.term} right after its base (index {log.base_index}, term "
                    f"{log.base_term}); it was appended after a term-"
                    f"{None if seen is None else seen[1]} entry",
                )
        recover_shadow(shadow)
        compare_logs(server, track, 0, "durability")
        track.commit = raft.commit_index
        track.dirty_from = None
        if raft.term < track.term:
            raise InvariantViolation(
                "terms_monotonic",
                f"server {server.id} restarted in term {raft.term} after term {track.term}",
            )
