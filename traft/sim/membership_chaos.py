"""Membership chaos: changes through the leader, re-adds, servers sent away.

:class:`MembershipChaos` is owned by :class:`~traft.sim.runner.Simulation`,
which gives it the cluster, the checker, its rngs and the hooks it needs
(crash a server, draw a new server's driver, note an event), and tells it
of new leaders (:meth:`MembershipChaos.elected`) and of servers sent away
coming back (:meth:`MembershipChaos.returning`). A change goes through the
leader: add a non-voting server with
a fresh id, promote one, remove any member (the leader included). A newly
elected leader is sometimes asked for a change at once, before its no-op
commits. ``readd`` tries instead to re-add an id whose removal committed
(the leader must refuse: ``no_id_reuse``); ``away`` crashes the server being
removed and keeps it down until its removal commits and the leader has
compacted past it; ``force_election`` crashes the leader right after it
proposed a voting change (inside the Ready that carries it, or once its
messages left) and asks the next leader for a change at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traft.core import (
    EntryType,
    LeaderNotReady,
    MembershipError,
    NodeUnknown,
    NotLeader,
    OneVotingChangeOnly,
    Role,
)
from traft.sim.violations import InvariantViolation

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from traft.sim.cluster import Cluster, SimServer
    from traft.sim.invariants import InvariantChecker
    from traft.sim.options import SimOptions

__all__ = ["MembershipChaos"]

_LEADER = Role.LEADER


class MembershipChaos:
    """Membership changes and the paths around them (see the module docstring).

    Args:
        options: the run's options (the rates and sizes of the changes).
        cluster: the cluster changed.
        checker: what has committed (removals), and the servers it watches.
        rng: the run's chaos rng (shared with the run loop, in its order).
        doom_rng: the rng of the crashes aimed at leaders (shared likewise).
        retired: the servers that applied their own removal (read only).
        restart_at: server id -> virtual ms of its restart (a server sent
            away is entered here before it crashes).
        crash_server: crash a server now, or inside its next Ready if the
            flag is set; it restarts later.
        draw_driver: draw the driver mode of a server just added.
        note: record a chaos event.
    """

    def __init__(
        self,
        options: SimOptions,
        cluster: Cluster,
        checker: InvariantChecker,
        *,
        rng: random.Random,
        doom_rng: random.Random,
        retired: set[int],
        restart_at: dict[int, int],
        crash_server: Callable[[SimServer, bool], None],
        draw_driver: Callable[[SimServer], None],
        note: Callable[[str], None],
    ) -> None:
        self.options = options
        self.cluster = cluster
        self.checker = checker
        self.rng = rng
        self._doom_rng = doom_rng
        self._retired = retired
        self._restart_at = restart_at
        self._crash_server = crash_server
        self._draw_driver = draw_driver
        self._note = note
        #: The id the next added server gets.
        self.next_id = options.servers + 1
        #: New leaders to ask for a change at once (see :meth:`greet`).
        self.new_leaders: list[int] = []
        self.stats = dict.fromkeys(
            (
                "membership_proposed",
                "readd_refused",
                "away",
                "away_compactions",
                "forced_elections",
            ),
            0,
        )
        # Servers crashed by the away path: id -> (leader id, removal index).
        self._away: dict[int, tuple[int, int]] = {}
        # The next leader is asked for a change at once (after a forced election).
        self._greet_next = False

    def elected(self, node_id: int) -> None:
        """Server ``node_id`` became leader: maybe ask it for a change at once
        (adversarial timing: before its no-op commits)."""
        member = self.options.member
        if self._greet_next or (member and self.rng.random() * 100 < min(50.0, 20 * member)):
            self._greet_next = False
            self.new_leaders.append(node_id)

    def greet(self, now: int) -> None:
        """Ask the new leaders still leading for a change."""
        new, self.new_leaders = self.new_leaders, []
        for node_id in new:
            server = self.cluster.servers[node_id]
            if server.alive and server.raft.role is _LEADER:
                self._change_membership(now, server)

    def change(self, now: int) -> None:
        """Ask the leader, if any, for a change."""
        self._change_membership(now)

    def returning(self, node_id: int) -> None:
        """Server ``node_id`` restarts: if it was sent away, the leader that
        removed it compacts past the removal first."""
        away = self._away.pop(node_id, None)
        if away is not None:
            self._compact_for_away(node_id, *away)

    def _change_membership(self, now: int, leader: SimServer | None = None) -> None:
        if leader is None:
            leader = self.cluster.leader_server()
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
            self.readd(leader)
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
                self._send_away(now, node_id, leader.id, resp.index)
        forced = (
            action != "add"
            and o.force_election
            and leader.alive
            and not leader.crash_in_ready
            and self._doom_rng.random() * 100 < o.force_election
        )
        if forced:
            # An election right after a voting change: its entry dies with
            # the leader's crash (inside the Ready that carries it), or
            # reaches only the followers its messages get to; the next leader
            # is asked for a change at once.
            self.stats["forced_elections"] += 1
            self._greet_next = True
            if self._doom_rng.random() < 0.5:
                self._crash_server(leader, True)
                forced = False
        self.cluster.process(leader.id)
        if forced and leader.alive:
            self._crash_server(leader, False)
        self.checker.after_step(leader)

    def readd(self, leader: SimServer) -> None:
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

    def _send_away(self, now: int, node_id: int, leader_id: int, index: int) -> None:
        """Crash a server being removed before it hears of it, and keep it down
        long enough for the removal to commit and the leader to compact."""
        server = self.cluster.servers.get(node_id)
        if server is None or not server.alive or node_id in self._retired:
            return
        lo = self.options.election_timeout_ms
        self._restart_at[node_id] = now + self.rng.randint(4 * lo, 12 * lo)
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
