"""Raft's invariants, checked incrementally while a simulated cluster runs.

Theory of operation. The :class:`InvariantChecker` watches a
:class:`~traft.sim.cluster.Cluster` through its hooks and never trusts the
core: it rebuilds what it needs from what a driver sees.

* A *shadow log* per server (:class:`ShadowLog`) is built only from the
  Ready values the driver persisted (``truncate_from``, ``compact_upto``,
  ``entries``) and the snapshots it stored. It is what the server has
  acknowledged as durable, independent of both the core and the simulated
  disk.
* A global record of every ``(index, term)`` ever appended anywhere, with
  the entry id and the term of the entry before it. Two logs that agree on
  ``(index, term)`` must then agree on everything before it (log matching,
  §5.3) — checked entry by entry as entries are appended, so the cost is per
  entry, not per log.
* A global record of committed entries (as each server's commit index
  covers them) and of applied entries (``Ready.committed``), with the hash
  chain after each index, so every server's state machine and every
  snapshot can be compared in O(1).

Checks run at three moments: when a Ready is durable (``on_persist``: the
shadow log, term and vote, popped and compacted entries, id order, log
matching), when entries are applied (state-machine safety, durability of
the newest committed entry), and after every step of a server
(:meth:`InvariantChecker.after_step`: election safety, terms, current
index validity, log accuracy against the shadow, leader completeness, the
state machine's hash). :meth:`InvariantChecker.check_all` repeats the
per-server checks over whole logs, for tests and the end of a run. The
first broken invariant raises :class:`InvariantViolation` with its name.

The checker is built from modules named for what they hold:
:mod:`traft.sim.violations` (the names and the exception),
:mod:`traft.sim.shadow` (the shadow log and what is tracked per server),
:mod:`traft.sim.durability` (restarts, votes, durable commits: a
:class:`~traft.sim.durability.DurabilityChecks` the checker owns, given the
records it reads) and :mod:`traft.sim.configurations` (committed
configurations, removals: a
:class:`~traft.sim.configurations.CommittedConfigurations` the checker
updates and asks); the per-step and per-Ready checks are here.

The invariants (names as reported):

``election_safety``        at most one leader per term (§5.2).
``log_matching``           same (index, term) means the same entry and the
                           same history before it (§5.3).
``state_machine_safety``   every server applies the same entry at an index,
                           and its state (and every snapshot) matches (§5.4.3).
``current_index_validity`` the last index holds an entry; commit and applied
                           indexes lie within the log.
``commit_monotonic``       a server's commit index never goes back while it is
                           up (an old snapshot installed would take it back).
``commit_rule``            a leader's commit index moves only onto an entry of
                           its own term (§5.4.2, Figure 8).
``commit_vouched``         an AppendEntries moves a follower's commit index no
                           further than min(leader_commit, its last entry)
                           (Figure 2; checked by the run loop, which sees the
                           message, through :meth:`InvariantChecker.check_vouched`).
``match_monotonic``        a leader never lowers a follower's match index
                           (:meth:`InvariantChecker.check_progress`).
``configuration_accuracy`` after a membership entry is appended or popped,
                           the configuration is the one the persisted log says.
``membership_rule``        a leader appends a voting change only once an entry
                           of its term has committed (Ongaro, raft-dev 2015).
``entry_id_monotonicity``  client entries appear in a log in the order they
                           were proposed (ids from a counter increase).
``no_committed_popped``    a committed entry is never truncated, and only
                           entries covered by a durable snapshot are compacted.
``log_accuracy``           the core's log equals the shadow log.
``leader_completeness``    a leader holds every entry committed before its
                           term (§5.4).
``durability``             a restarted server holds exactly what it
                           persisted, and the newest committed entry is
                           durable on servers that meet every quorum of the
                           committed configuration.
``terms_monotonic``        a server's term never decreases, across restarts.
``vote_once``              a server votes for at most one candidate per term.
``vote_safety``            a server grants its vote only to a candidate whose
                           last entry is at least as up-to-date as every
                           committed entry the server holds durably (snapshot
                           included): the premise of leader completeness
                           (§5.4.1), which an unsound recovery breaks.
``snapshot_membership``    a snapshot's configuration is exactly the committed
                           configuration at its index.
``removal_notice``         a server removed by a committed entry sees
                           ``RemovedSelf`` exactly once once it has applied
                           past the removal, by applying the entry or by
                           installing a snapshot that leaves it out.
``no_id_reuse``            the id of a removed server is never accepted again
                           (checked by the run loop, which tries).

Checked elsewhere: ``entry_status`` (by :mod:`traft.sim.clients`: what
``Raft.entry_status`` says about a proposal is never wrong), ``liveness``
(by the run loop), ``replication_resumes`` (by :mod:`traft.sim.catchup`: a
follower the leader's log can catch up leaves SNAPSHOT state within a
bound), ``transfer_leaderless`` (by :mod:`traft.sim.transfers`: once faults
stop, a leadership transfer never leaves the cluster without a leader for
longer than an election timeout) and ``linearizability`` (``traft.check``
on the history).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from traft.core import Entry, EntryType, Ready, Role, SnapshotMeta
from traft.core.entry import membership_change
from traft.core.messages import AppendEntries
from traft.sim.cluster import chain
from traft.sim.configurations import CommittedConfigurations
from traft.sim.durability import DurabilityChecks
from traft.sim.shadow import ShadowLog, Track, compare_logs
from traft.sim.violations import INVARIANTS, InvariantViolation

if TYPE_CHECKING:
    from traft.sim.cluster import Cluster, SimServer

__all__ = ["INVARIANTS", "InvariantChecker", "InvariantViolation", "ShadowLog"]

_NORMAL = EntryType.NORMAL
_NO_OP = EntryType.NO_OP
_VOTING_CHANGES = (EntryType.ADD_NODE, EntryType.REMOVE_NODE)
_LEADER = Role.LEADER


class InvariantChecker:
    """Checks every invariant of :data:`INVARIANTS` except liveness and linearizability.

    Args:
        voters: the bootstrap voting members (for the committed configuration).
        monotonic_ids: client entries carry ids from an increasing counter,
            so ``entry_id_monotonicity`` applies to NORMAL entries.
    """

    def __init__(self, voters: Iterable[int], *, monotonic_ids: bool = True) -> None:
        self.monotonic_ids = monotonic_ids
        self._checks = 0
        self._tracks: dict[int, Track] = {}
        self._leader_of: dict[int, int] = {}
        self._pairs: dict[tuple[int, int], tuple[int, int]] = {}
        # Index -> (entry id, entry term, term in which it was first seen committed).
        self._committed: dict[int, tuple[int, int, int]] = {}
        self._max_committed = 0
        self._applied_ids: list[int] = []
        self._chain_at: list[int] = [0]
        self._leaders: set[int] = set()
        self._servers: dict[int, SimServer] = {}
        self.configurations = CommittedConfigurations(voters)
        self.durability = DurabilityChecks(
            self._tracks, self._pairs, self.configurations, self.committed_id
        )

    # -- wiring -----------------------------------------------------------------

    def attach(self, cluster: Cluster) -> None:
        """Register the checker's hooks on ``cluster``."""
        cluster.on_persist.append(self.on_persist)
        cluster.on_apply.append(self.on_apply)
        cluster.on_snapshot.append(self.on_snapshot)
        cluster.on_snapshot_saved.append(self.on_snapshot_saved)
        cluster.on_crash.append(self.on_crash)
        cluster.on_restart.append(self.on_restart)
        for server in cluster.servers.values():
            self.track(server)

    def track(self, server: SimServer) -> None:
        """Start watching a server (call for servers added after :meth:`attach`)."""
        if server.id not in self._tracks:
            self._tracks[server.id] = Track()
            self._servers[server.id] = server

    def _track(self, server: SimServer) -> Track:
        track = self._tracks.get(server.id)
        if track is None:
            self.track(server)
            track = self._tracks[server.id]
        return track

    @property
    def checks(self) -> int:
        """How many checks ran so far."""
        return self._checks + self.durability.checks

    @property
    def committed_index(self) -> int:
        """The highest index applied anywhere (everything up to it is committed)."""
        return len(self._applied_ids)

    def max_committed(self) -> int:
        """The newest index any server has been seen to commit."""
        return self._max_committed

    def committed_id(self, index: int) -> int | None:
        """The id of the entry known committed at ``index``, or None if not known yet."""
        if 0 < index <= len(self._applied_ids):
            return self._applied_ids[index - 1]
        known = self._committed.get(index)
        return None if known is None else known[0]

    @property
    def committed_voters(self) -> set[int]:
        """Voters of the configuration as of :attr:`committed_index`."""
        return set(self.configurations.voters)

    @property
    def removed_at(self) -> dict[int, int]:
        """Server id -> index of the committed entry that removed it."""
        return self.configurations.removed_at

    def committed_config_at(self, index: int) -> frozenset[tuple[int, bool]]:
        """The committed configuration at ``index`` as (id, voting) pairs."""
        return self.configurations.at(index)

    def check_removals(self, servers: Iterable[SimServer]) -> None:
        """``removal_notice`` (see :meth:`CommittedConfigurations.check_removals`)."""
        self.configurations.check_removals(servers)

    # -- hooks --------------------------------------------------------------------

    def on_persist(self, server: SimServer, rd: Ready) -> None:
        """A Ready is durable: update the shadow log and check what it changed."""
        track = self._track(server)
        shadow = track.shadow
        hs = rd.hard_state
        if hs is not None:
            self._checks += 2
            old = shadow.hard_state
            if hs.term < old.term:
                raise InvariantViolation(
                    "terms_monotonic",
                    f"server {server.id} persisted term {hs.term} after {old.term}",
                )
            if hs.term == old.term and old.voted_for is not None and hs.voted_for != old.voted_for:
                raise InvariantViolation(
                    "vote_once",
                    f"server {server.id} voted for {old.voted_for} then {hs.voted_for} "
                    f"in term {hs.term}",
                )
            if (
                hs.voted_for is not None
                and hs.voted_for != server.id
                and (hs.term, hs.voted_for) != (old.term, old.voted_for)
            ):
                self.durability.check_vote(server, shadow, hs)
            shadow.hard_state = hs
        if rd.truncate_from is not None:
            # Entries also covered by this Ready's compaction (a snapshot being
            # installed over a disagreeing log) are compacted, not popped.
            covered = rd.compact_upto if rd.compact_upto is not None else 0
            self._pop(server.id, track, rd.truncate_from, covered)
        if rd.compact_upto is not None:
            self._compact(server.id, track, rd.compact_upto)
        if rd.entries:
            self._append(server.id, track, rd.entries)
            if track.config_due and server.raft.role is _LEADER:
                self._check_membership_rule(server, rd.entries)

    def _check_membership_rule(self, server: SimServer, entries: list[Entry]) -> None:
        # membership_rule: a leader changes voting membership only once an
        # entry of its term has committed (Ongaro, raft-dev 2015: before that
        # it may not know of a change an earlier leader appended). Its commit
        # index only grows, so one that is still short of its term now was
        # short when the change was proposed.
        raft = server.raft
        term = raft.term
        if raft.log.term_at(raft.commit_index) == term:
            return
        self._checks += 1
        for entry in entries:
            if entry.term == term and entry.type in _VOTING_CHANGES:
                raise InvariantViolation(
                    "membership_rule",
                    f"leader {server.id} (term {term}) appended voting change {entry.index} "
                    f"({entry.type.name}) before an entry of its term committed "
                    f"(commit {raft.commit_index})",
                )

    def check_vouched(self, server: SimServer, msg: AppendEntries, before: int) -> None:
        """``commit_vouched``: an AppendEntries moves a follower's commit index no
        further than min(leader_commit, index of the last entry it carried)
        (Figure 2, receiver rule 5), ``before`` being the index before it."""
        self._checks += 1
        commit = server.raft.commit_index
        if commit <= before:
            return
        vouched = min(msg.leader_commit, msg.prev_log_index + len(msg.entries))
        if commit > vouched:
            raise InvariantViolation(
                "commit_vouched",
                f"server {server.id} moved its commit index from {before} to {commit} on an "
                f"AppendEntries that vouched for {vouched} (prev {msg.prev_log_index}, "
                f"{len(msg.entries)} entries, leader commit {msg.leader_commit})",
            )

    def _pop(self, node_id: int, track: Track, index: int, covered: int) -> None:
        self._checks += 1
        shadow = track.shadow
        snap = shadow.snapshot
        # Entries a durable snapshot covers may go: the snapshot holds them
        # (an install truncates before it compacts, each durable on its own).
        covered = 0 if snap is None else snap[0]
        if index <= shadow.base_index:
            raise InvariantViolation(
                "no_committed_popped",
                f"server {node_id} pops from {index}, at or below its compacted index "
                f"{shadow.base_index}",
            )
        committed = self._committed
        applied = self._applied_ids
        for entry in shadow.entries[max(index, covered + 1) - shadow.base_index - 1 :]:
            if entry.type > _NO_OP:
                track.config_due = True
            known = committed.get(entry.index)
            if known is not None and known[0] == entry.id:
                raise InvariantViolation(
                    "no_committed_popped",
                    f"server {node_id} pops committed entry {entry.index} (term {entry.term})",
                )
            if entry.index <= len(applied) and applied[entry.index - 1] == entry.id:
                raise InvariantViolation(
                    "no_committed_popped",
                    f"server {node_id} pops applied entry {entry.index} (term {entry.term})",
                )
        del shadow.entries[index - shadow.base_index - 1 :]
        self._dirty(track, index)

    def _compact(self, node_id: int, track: Track, upto: int) -> None:
        self._checks += 1
        shadow = track.shadow
        snap = shadow.snapshot
        if snap is None or upto > snap[0]:
            raise InvariantViolation(
                "no_committed_popped",
                f"server {node_id} compacts up to {upto} without a durable snapshot there "
                f"(snapshot {snap})",
            )
        if upto <= shadow.base_index:
            return
        drop = upto - shadow.base_index
        if drop >= len(shadow.entries):
            shadow.base_term = snap[1] if snap[0] == upto else -1
            shadow.entries.clear()
        else:
            shadow.base_term = shadow.entries[drop - 1].term
            del shadow.entries[:drop]
        shadow.base_index = upto
        self._dirty(track, upto)

    def _append(self, node_id: int, track: Track, entries: list[Entry]) -> None:
        shadow = track.shadow
        first = entries[0].index
        self._checks += 2
        if first != shadow.last_index + 1:
            raise InvariantViolation(
                "log_accuracy",
                f"server {node_id} appends at {first} but its log ends at {shadow.last_index}",
            )
        prev_term = shadow.base_term if not shadow.entries else shadow.entries[-1].term
        last_id = self._last_normal_id(shadow) if self.monotonic_ids else -1
        pairs = self._pairs
        for entry in entries:
            key = (entry.index, entry.term)
            seen = pairs.get(key)
            if seen is None:
                pairs[key] = (entry.id, prev_term)
            elif seen != (entry.id, prev_term):
                raise InvariantViolation(
                    "log_matching",
                    f"server {node_id} has entry {entry.index} of term {entry.term} with id "
                    f"{entry.id} after a term-{prev_term} entry; elsewhere it is id {seen[0]} "
                    f"after a term-{seen[1]} entry",
                )
            if entry.term < prev_term:
                raise InvariantViolation(
                    "log_matching",
                    f"server {node_id}: term {entry.term} at {entry.index} follows term {prev_term}",
                )
            prev_term = entry.term
            if entry.type > _NO_OP:
                track.config_due = True
            if last_id >= 0 and entry.type == _NORMAL:
                if entry.id <= last_id:
                    raise InvariantViolation(
                        "entry_id_monotonicity",
                        f"server {node_id}: entry {entry.index} has id {entry.id}, not above "
                        f"the id {last_id} of an earlier client entry",
                    )
                last_id = entry.id
        shadow.entries.extend(entries)
        self._dirty(track, first)

    @staticmethod
    def _last_normal_id(shadow: ShadowLog) -> int:
        entries = shadow.entries
        for k in range(len(entries) - 1, -1, -1):
            if entries[k].type == _NORMAL:
                return entries[k].id
        return 0

    @staticmethod
    def _dirty(track: Track, index: int) -> None:
        track.changes += 1
        if track.dirty_from is None or index < track.dirty_from:
            track.dirty_from = index

    def on_apply(self, server: SimServer, entry: Entry, result: object) -> None:
        """A server applied ``entry``: it must be the entry everyone applies there."""
        self._checks += 1
        applied = self._applied_ids
        index = entry.index
        known = self._committed.get(index)
        if known is not None and known[0] != entry.id:
            raise InvariantViolation(
                "state_machine_safety",
                f"server {server.id} applies entry {index} id {entry.id}, but id {known[0]} "
                "was committed there",
            )
        if index <= len(applied):
            if applied[index - 1] != entry.id:
                raise InvariantViolation(
                    "state_machine_safety",
                    f"server {server.id} applies id {entry.id} at {index}; another server "
                    f"applied id {applied[index - 1]}",
                )
            return
        if index != len(applied) + 1:
            raise InvariantViolation(
                "state_machine_safety",
                f"server {server.id} applies entry {index} but nothing was ever applied at "
                f"{len(applied) + 1}",
            )
        applied.append(entry.id)
        self._chain_at.append(chain(self._chain_at[-1], entry.id))
        if entry.type != _NORMAL and entry.type != EntryType.NO_OP:
            self.configurations.apply(entry)
        self.durability.check_durable(index, entry.id)

    def on_snapshot_saved(self, server: SimServer, meta: SnapshotMeta) -> None:
        """A received snapshot's file is durable (it is loaded later, if at all)."""
        self._stored(server, self._track(server), meta)

    def on_snapshot(self, server: SimServer, meta: SnapshotMeta, loaded: bool) -> None:
        """A snapshot was taken locally (and stored), or loaded after being stored."""
        track = self._track(server)
        if not loaded:
            self._stored(server, track, meta)
        if meta.index > track.commit:
            track.commit = meta.index
        if loaded:
            self._dirty(track, meta.index)

    def _stored(self, server: SimServer, track: Track, meta: SnapshotMeta) -> None:
        self._checks += 2
        track.shadow.snapshot = (meta.index, meta.term)
        chain_at = self._chain_at
        if meta.index >= len(chain_at):
            raise InvariantViolation(
                "state_machine_safety",
                f"server {server.id} stores a snapshot at {meta.index}, beyond every applied "
                f"entry ({len(chain_at) - 1})",
            )
        if server.disk.snapshot_state != chain_at[meta.index]:
            raise InvariantViolation(
                "state_machine_safety",
                f"server {server.id}'s snapshot at {meta.index} holds a different state",
            )
        got = frozenset((n.node_id, n.voting) for n in meta.membership.nodes)
        want = self.configurations.at(meta.index)
        if got != want:
            raise InvariantViolation(
                "snapshot_membership",
                f"server {server.id}'s snapshot at {meta.index} has configuration "
                f"{sorted(got)}; the committed one there is {sorted(want)}",
            )

    def on_restart(self, server: SimServer) -> None:
        """A server restarted from its disk: it must hold exactly what it persisted."""
        self.durability.on_restart(server, self._track(server))

    def on_crash(self, server: SimServer) -> None:
        self._leaders.discard(server.id)

    # -- per-step checks ------------------------------------------------------------

    def after_step(self, server: SimServer) -> None:
        """Check one server after it took input and processed its Ready values."""
        if not server.alive or server.install is not None:
            return
        track = self._tracks.get(server.id)
        if track is None:
            track = self._track(server)
        raft = server.raft
        node_id = server.id
        term = raft.term
        self._checks += 6
        # terms_monotonic and vote_once, in memory (not while an early-sent
        # Ready is out: a term or vote taken meanwhile is not durable, nor
        # sent, until the next Ready, and a crash may legitimately undo it).
        if server.syncing is not None:
            pass
        elif term != track.term:
            if term < track.term:
                raise InvariantViolation(
                    "terms_monotonic", f"server {node_id} went from term {track.term} to {term}"
                )
            track.term = term
            track.voted_for = raft.voted_for
        elif raft.voted_for != track.voted_for:
            if track.voted_for is not None:
                raise InvariantViolation(
                    "vote_once",
                    f"server {node_id} voted for {track.voted_for} then {raft.voted_for} "
                    f"in term {term}",
                )
            track.voted_for = raft.voted_for
        # election_safety.
        if raft.role is _LEADER:
            leader = self._leader_of.setdefault(term, node_id)
            if leader != node_id:
                raise InvariantViolation(
                    "election_safety", f"servers {leader} and {node_id} both lead term {term}"
                )
            self._leaders.add(node_id)
            if track.led != term:
                track.led = term
                self._check_completeness(server, term)
        elif self._leaders:
            self._leaders.discard(node_id)
        # current_index_validity.
        log = raft.log
        base = log.base_index
        last = log.last_index
        entry = log.get(last) if last > base else None
        if (
            raft.current_index != last
            or last < base
            or (last > base and (entry is None or entry.index != last))
        ):
            raise InvariantViolation(
                "current_index_validity",
                f"server {node_id}: current index {raft.current_index}, log {base}..{last}, "
                f"entry there {entry}",
            )
        commit = raft.commit_index
        if not raft.last_applied <= commit <= last:
            raise InvariantViolation(
                "current_index_validity",
                f"server {node_id}: applied {raft.last_applied}, commit {commit}, last {last}",
            )
        # log_accuracy: the whole log after a persisted change, else its ends.
        if server.syncing is not None:
            # A leader's early-sent Ready is not durable yet: the log runs
            # ahead of the shadow until the fsync completes.
            pass
        elif track.dirty_from is not None:
            compare_logs(server, track, track.dirty_from)
            track.dirty_from = None
        else:
            shadow = track.shadow
            if last != shadow.last_index or base != shadow.base_index:
                compare_logs(server, track, 0)
            if entry is not None:
                theirs = shadow.entries[-1]
                if entry is not theirs and entry != theirs:
                    compare_logs(server, track, last)
        # commit_monotonic: only a restart takes a server's commit index back.
        if commit < track.commit:
            raise InvariantViolation(
                "commit_monotonic",
                f"server {node_id}'s commit index went from {track.commit} to {commit}",
            )
        if track.config_due and server.syncing is None:
            track.config_due = False
            self._check_configuration(server, track)
        # Commit observed: record newly committed entries.
        if commit > track.commit:
            self._record_commits(server, track.commit + 1, commit, term)
            track.commit = commit
            if raft.role is _LEADER:
                if log.term_at(commit) != term:
                    # §5.4.2, Figure 8: a leader commits entries of earlier
                    # terms only by committing one of its own after them.
                    raise InvariantViolation(
                        "commit_rule",
                        f"leader {node_id} (term {term}) moved its commit index to {commit}, "
                        f"an entry of term {log.term_at(commit)}",
                    )
                self.durability.check_commit_durable(server, commit)
        # state_machine_safety: the state machine's hash at its applied index.
        applied = server.applied_index
        if applied and (applied >= len(self._chain_at) or server.state != self._chain_at[applied]):
            raise InvariantViolation(
                "state_machine_safety",
                f"server {node_id}'s state after applying {applied} differs from the others'",
            )

    def _check_configuration(self, server: SimServer, track: Track) -> None:
        # configuration_accuracy: a membership entry takes effect when it is
        # appended and is undone when it is popped, so the configuration in
        # force is the committed one at the log's base with every membership
        # entry of the (persisted) log applied in order.
        self._checks += 1
        shadow = track.shadow
        nodes = dict(self.configurations.at(shadow.base_index))
        for entry in shadow.entries:
            if entry.type <= _NO_OP:
                continue
            try:
                node_id, _ = membership_change(entry)
            except ValueError:
                continue
            if entry.type == EntryType.ADD_NONVOTING_NODE:
                nodes.setdefault(node_id, False)
            elif entry.type == EntryType.ADD_NODE:
                nodes[node_id] = True
            else:
                nodes.pop(node_id, None)
        got = {n.node_id: n.voting for n in server.raft.membership().nodes}
        if got != nodes:
            raise InvariantViolation(
                "configuration_accuracy",
                f"server {server.id} has configuration {sorted(got.items())}; its log "
                f"{shadow.base_index}..{shadow.last_index} says {sorted(nodes.items())}",
            )

    def check_progress(self, servers: Iterable[SimServer]) -> None:
        """``match_monotonic``: a leader never lowers what it knows a follower holds."""
        for server in servers:
            raft = server.raft
            if raft.role is not _LEADER or not server.alive:
                continue
            track = self._track(server)
            term, seen = track.matches
            if term != raft.term:
                seen = {}
                track.matches = (raft.term, seen)
            self._checks += 1
            for follower, pr in raft.progress().items():
                match = pr.match_index
                before = seen.get(follower)
                if before is not None and before[0] is pr and match < before[1]:
                    raise InvariantViolation(
                        "match_monotonic",
                        f"leader {server.id} (term {raft.term}) lowered server {follower}'s "
                        f"match index from {before[1]} to {match}",
                    )
                seen[follower] = (pr, match)

    def _record_commits(self, server: SimServer, lo: int, hi: int, term: int) -> None:
        log = server.raft.log
        committed = self._committed
        leaders = self._leaders
        for entry in log.slice(lo, hi + 1):
            known = committed.get(entry.index)
            if known is None:
                committed[entry.index] = (entry.id, entry.term, term)
                if entry.index > self._max_committed:
                    self._max_committed = entry.index
                for leader_id in leaders:
                    other = self._servers[leader_id].raft
                    if other.role is _LEADER and other.term > term:
                        self._completeness_at(leader_id, other, entry.index, entry.id)
            elif known[0] == entry.id:
                if term < known[2]:
                    committed[entry.index] = (entry.id, entry.term, term)
            else:
                raise InvariantViolation(
                    "state_machine_safety",
                    f"server {server.id} committed id {entry.id} at {entry.index}; id {known[0]} "
                    "was committed there before",
                )

    def _check_completeness(self, server: SimServer, term: int) -> None:
        # Every entry committed in an earlier term must be in the new leader's
        # log (or under its snapshot).
        raft = server.raft
        committed = self._committed
        for index in range(raft.log.base_index + 1, self._max_committed + 1):
            known = committed.get(index)
            if known is not None and known[2] < term:
                self._completeness_at(server.id, raft, index, known[0])

    def _completeness_at(self, node_id: int, raft: object, index: int, entry_id: int) -> None:
        self._checks += 1
        log = raft.log  # type: ignore[attr-defined]
        if index <= log.base_index:
            return
        entry = log.get(index)
        if entry is None or entry.id != entry_id:
            raise InvariantViolation(
                "leader_completeness",
                f"leader {node_id} (term {raft.term}) lacks committed entry {index}",  # type: ignore[attr-defined]
            )

    # -- whole-state check ------------------------------------------------------------

    def check_all(self, servers: Iterable[SimServer]) -> None:
        """Check every server from scratch (whole logs, pairwise log matching)."""
        live = [s for s in servers if s.alive]
        for server in live:
            track = self._track(server)
            track.dirty_from = 1
            track.led = -1
            self.after_step(server)
        for server in live:
            raft = server.raft
            log = raft.log
            last = log.last_index
            if server.syncing is not None:
                # Entries not durable yet were recorded nowhere (see after_step).
                last = min(last, self._track(server).shadow.last_index)
            for entry in log.slice(log.first_index, last + 1):
                prev = log.term_at(entry.index - 1)
                seen = self._pairs.get((entry.index, entry.term))
                self._checks += 1
                if seen is None or (prev is not None and seen != (entry.id, prev)):
                    raise InvariantViolation(
                        "log_matching",
                        f"server {server.id}: entry {entry.index} term {entry.term} disagrees "
                        "with the entries recorded elsewhere",
                    )
