"""Each invariant checker catches its violation on a hand-made trace.

Every test builds a small healthy cluster watched by an
:class:`InvariantChecker`, checks that it passes, then breaks exactly one
property by hand (a forged Ready, a poked core field, a corrupted disk) and
asserts the checker names the right invariant.
"""

from __future__ import annotations

import attrs
import pytest

from traft.core import (
    Entry,
    EntryType,
    HardState,
    Membership,
    NodeConfig,
    Ready,
    Role,
    SnapshotMeta,
)
from traft.core.entry import membership_data
from traft.core.log import RaftLog
from traft.core.messages import AppendEntries, RequestVote
from traft.sim import Cluster
from traft.sim.catchup import CatchupChecker
from traft.sim.invariants import INVARIANTS, InvariantChecker, InvariantViolation
from traft.sim.runner import SimOptions, Simulation

pytestmark = pytest.mark.timeout(60)


def _entry(index: int, term: int, entry_id: int, kind: EntryType = EntryType.NORMAL) -> Entry:
    return Entry(term, index, entry_id, kind, b"")


class Watched:
    """A 3-server cluster with a checker, elected, with a few entries committed."""

    def __init__(self, ids: tuple[int, ...] = (1, 2, 3), entries: int = 3) -> None:
        self.cluster = Cluster(ids, seed=7)
        self.checker = InvariantChecker(ids)
        self.checker.attach(self.cluster)
        self.next_id = 1
        self.leader = self.cluster.elect()
        for _ in range(entries):
            self.propose()
        self.settle()

    def propose(self) -> None:
        raft = self.cluster[self.leader]
        raft.recv_entry(b"x", id=self.next_id)
        self.next_id += 1
        self.cluster.process(self.leader)

    def settle(self) -> None:
        self.cluster.settle()
        self.check()

    def check(self) -> None:
        for server in self.cluster.servers.values():
            self.checker.after_step(server)
        self.checker.check_all(self.cluster.servers.values())

    def server(self, node_id: int):  # type: ignore[no-untyped-def]
        return self.cluster.servers[node_id]

    def follower(self) -> int:
        return next(i for i in sorted(self.cluster.servers) if i != self.leader)


def _violates(name: str) -> pytest.RaisesContext[InvariantViolation]:
    assert name in INVARIANTS
    return pytest.raises(InvariantViolation, match=f"^{name}:")


def test_healthy_cluster_passes_every_check() -> None:
    w = Watched()
    w.check()
    assert w.checker.committed_index >= 4
    assert w.checker.checks > 0


def test_election_safety_two_leaders_in_one_term() -> None:
    w = Watched()
    other = w.cluster[w.follower()]
    other.role = Role.LEADER
    with _violates("election_safety"):
        w.checker.after_step(w.server(w.follower()))


def test_terms_monotonic_in_memory() -> None:
    w = Watched()
    f = w.follower()
    w.cluster[f].term -= 1
    with _violates("terms_monotonic"):
        w.checker.after_step(w.server(f))


def test_terms_monotonic_persisted() -> None:
    w = Watched()
    f = w.server(w.follower())
    term = f.raft.term
    with _violates("terms_monotonic"):
        w.checker.on_persist(f, Ready(hard_state=HardState(term - 1, None)))


def test_vote_once_persisted() -> None:
    w = Watched()
    f = w.server(w.follower())
    term = f.raft.term + 1
    w.checker.on_persist(f, Ready(hard_state=HardState(term, 1)))
    with _violates("vote_once"):
        w.checker.on_persist(f, Ready(hard_state=HardState(term, 2)))


def test_vote_once_in_memory() -> None:
    w = Watched()
    f = w.follower()
    raft = w.cluster[f]
    raft.voted_for = 3 if raft.voted_for != 3 else 2
    with _violates("vote_once"):
        w.checker.after_step(w.server(f))


def test_current_index_validity_commit_beyond_log() -> None:
    w = Watched()
    f = w.follower()
    w.cluster[f].commit_index = w.cluster[f].current_index + 3
    with _violates("current_index_validity"):
        w.checker.after_step(w.server(f))


def test_log_matching_same_index_and_term_different_entry() -> None:
    w = Watched()
    a, b = (i for i in sorted(w.cluster.servers) if i != w.leader)
    last = w.cluster[a].current_index
    term = w.cluster[a].term
    w.checker.on_persist(w.server(a), Ready(entries=[_entry(last + 1, term, 1000)]))
    with _violates("log_matching"):
        w.checker.on_persist(w.server(b), Ready(entries=[_entry(last + 1, term, 1001)]))


def test_log_matching_term_goes_down() -> None:
    w = Watched()
    f = w.server(w.follower())
    last = f.raft.current_index
    with _violates("log_matching"):
        w.checker.on_persist(f, Ready(entries=[_entry(last + 1, 0, 2000)]))


def test_state_machine_safety_different_entries_applied() -> None:
    w = Watched()
    index = w.checker.committed_index + 1
    for node_id in w.cluster.servers:
        w.checker.on_persist(w.server(node_id), Ready(entries=[_entry(index, 9, 500)]))
    w.checker.on_apply(w.server(1), _entry(index, 9, 500), None)
    with _violates("state_machine_safety"):
        w.checker.on_apply(w.server(2), _entry(index, 9, 501), None)


def test_state_machine_safety_state_hash_differs() -> None:
    w = Watched()
    f = w.server(w.follower())
    f.state ^= 1
    with _violates("state_machine_safety"):
        w.checker.after_step(f)


def test_entry_id_monotonicity() -> None:
    w = Watched()
    f = w.server(w.follower())
    last = f.raft.current_index
    term = f.raft.term
    with _violates("entry_id_monotonicity"):
        w.checker.on_persist(
            f, Ready(entries=[_entry(last + 1, term, 90), _entry(last + 2, term, 80)])
        )


def test_no_committed_entry_popped() -> None:
    w = Watched()
    f = w.server(w.follower())
    with _violates("no_committed_popped"):
        w.checker.on_persist(f, Ready(truncate_from=f.raft.commit_index))


def test_no_compaction_without_snapshot() -> None:
    w = Watched()
    f = w.server(w.follower())
    with _violates("no_committed_popped"):
        w.checker.on_persist(f, Ready(compact_upto=2))


def test_log_accuracy_core_log_changed_without_ready() -> None:
    w = Watched()
    f = w.follower()
    raft = w.cluster[f]
    raft.log.append([_entry(raft.current_index + 1, raft.term, 777)])
    with _violates("log_accuracy"):
        w.checker.after_step(w.server(f))


def test_log_accuracy_entry_replaced_in_place() -> None:
    w = Watched()
    f = w.follower()
    raft = w.cluster[f]
    last = raft.current_index
    raft.log.truncate_from(last)
    raft.log.append([_entry(last, raft.term, 4242)])
    with _violates("log_accuracy"):
        w.checker.after_step(w.server(f))


def test_leader_completeness() -> None:
    w = Watched(ids=(1, 2, 3), entries=0)
    lagging = w.follower()
    w.cluster.network.isolate(lagging, set(w.cluster.servers))
    for _ in range(3):
        w.propose()
    w.settle()
    raft = w.cluster[lagging]
    assert raft.current_index < w.checker.committed_index
    # Forge an election the lagging server could never win.
    raft.term += 5
    raft.role = Role.LEADER
    w.checker.on_persist(w.server(lagging), Ready(hard_state=HardState(raft.term, lagging)))
    with _violates("leader_completeness"):
        w.checker.after_step(w.server(lagging))


def test_durability_restart_lost_acknowledged_entry() -> None:
    w = Watched()
    f = w.follower()
    w.cluster.crash(f)
    w.server(f).disk.entries.pop()  # the disk "lost" an fsynced write
    with _violates("durability"):
        w.cluster.restart(f)


def test_durability_restart_lost_vote() -> None:
    w = Watched()
    f = w.follower()
    w.cluster.crash(f)
    w.server(f).disk.term -= 1
    with _violates("durability"):
        w.cluster.restart(f)


def test_durability_committed_entry_on_too_few_servers() -> None:
    w = Watched()
    index = w.checker.committed_index + 1
    leader = w.server(w.leader)
    w.checker.on_persist(leader, Ready(entries=[_entry(index, leader.raft.term, 10_000)]))
    with _violates("durability"):
        w.checker.on_apply(leader, _entry(index, leader.raft.term, 10_000), None)


def test_liveness_no_progress_while_healthy() -> None:
    options = SimOptions(
        servers=3,
        iterations=4000,
        drop=100.0,
        dupe=0,
        reorder=0,
        partition=0,
        member=0,
        compaction=0,
        crash=0,
        client=0,
        liveness_ms=2000,
    )
    result = Simulation(options, 1).run()
    assert result.violation is not None
    assert result.violation.name == "liveness"


def test_linearizability_stale_reads_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from traft.sim import kv

    # Every read answers "absent": a write acknowledged earlier is then lost.
    monkeypatch.setattr(kv.KVStore, "get", lambda self, key: None)
    options = SimOptions(servers=3, iterations=3000, client=60.0, crash=0, member=0)
    result = Simulation(options, 3).run()
    assert result.violation is not None
    assert result.violation.name == "linearizability"


def test_vote_safety_vote_for_a_candidate_lacking_a_committed_entry() -> None:
    # What an unsound recovery does (issue 10, bug 2): the server holds a
    # committed entry durably yet grants its vote to a less up-to-date log.
    w = Watched()
    f = w.server(w.follower())
    other = next(i for i in w.cluster.servers if i not in (f.id, w.leader))
    term = f.raft.term + 1
    f.vote_request = RequestVote(term=term, candidate_id=other, last_log_index=1, last_log_term=0)
    with _violates("vote_safety"):
        w.checker.on_persist(f, Ready(hard_state=HardState(term, other)))


def test_vote_safety_allows_an_up_to_date_candidate() -> None:
    w = Watched()
    f = w.server(w.follower())
    other = next(i for i in w.cluster.servers if i not in (f.id, w.leader))
    term = f.raft.term + 1
    f.vote_request = RequestVote(
        term=term,
        candidate_id=other,
        last_log_index=f.raft.current_index,
        last_log_term=f.raft.last_log_term,
    )
    w.checker.on_persist(f, Ready(hard_state=HardState(term, other)))


def test_snapshot_membership_includes_a_later_change() -> None:
    # Issue 10, bug 6: a snapshot's configuration from after its index.
    w = Watched()
    f = w.server(w.follower())
    meta = w.cluster.take_snapshot(f.id)
    assert meta is not None
    later = Membership((*meta.membership.nodes, NodeConfig(9, False)))
    with _violates("snapshot_membership"):
        w.checker.on_snapshot(f, attrs.evolve(meta, membership=later), False)


def test_removal_notice_never_seen() -> None:
    # Issue 10, bug 5: removed, applied past the removal, no RemovedSelf.
    w = Watched()
    f = w.server(w.follower())
    w.checker.removed_at[f.id] = f.applied_index
    with _violates("removal_notice"):
        w.checker.check_removals([f])
    f.removed_seen.append(f.applied_index)
    w.checker.check_removals([f])


def test_removal_notice_seen_twice_or_without_a_removal() -> None:
    w = Watched()
    f = w.server(w.follower())
    f.removed_seen.append(2)
    with _violates("removal_notice"):
        w.checker.check_removals([f])
    w.checker.removed_at[f.id] = 2
    f.removed_seen.append(2)
    with _violates("removal_notice"):
        w.checker.check_removals([f])


def test_log_matching_restart_keeps_a_tail_the_snapshot_contradicts() -> None:
    # Issue 10, bug 2: the disk holds a snapshot (S, T) and a tail after S of
    # a lower term (an install crashed before its truncation was durable); a
    # recovery that keeps the tail restores a log whose terms go backwards.
    w = Watched(entries=5)
    f = w.server(w.follower())
    w.cluster.crash(f.id)
    stale = f.disk.entries[-2:]
    index = stale[0].index - 1
    term = stale[-1].term + 1
    membership = Membership(tuple(NodeConfig(i, True) for i in (1, 2, 3)))
    meta = SnapshotMeta(index, term, membership)
    f.disk.snapshot = meta
    f.disk.snapshot_state = w.checker._chain_at[index]
    w.checker.on_snapshot_saved(f, meta)
    w.cluster.restart(f.id)  # a sound recovery drops the tail
    assert f.raft.current_index == index
    unsound = RaftLog(index, term)
    unsound.append(stale)
    f.raft._log = unsound
    with _violates("log_matching"):
        w.checker.on_restart(f)


def test_no_id_reuse_accepted_readd() -> None:
    # No transfers: a transferring leader refuses every proposal, the re-add too.
    options = SimOptions(
        servers=3, iterations=400, member=0, crash=0, transfer=0, early_send=0, chase=0
    )
    sim = Simulation(options, 1)
    sim.run()
    leader = sim._leader()
    assert leader is not None
    # Pretend server 9 was removed: a leader that has never heard of it accepts it.
    sim.checker.removed_at[9] = 1
    with _violates("no_id_reuse"):
        sim.membership.readd(leader)


def test_replication_resumes_follower_kept_in_snapshot_state() -> None:
    # Issue 10, bug 3: the leader keeps a follower in SNAPSHOT state though
    # the follower's log ends where the leader's log still holds every later
    # entry (it installed a snapshot and the leader snapshotted again since).
    w = Watched(entries=6)
    leader = w.server(w.leader)
    f = w.server(w.follower())
    meta = w.cluster.take_snapshot(w.leader, keep_entries=3)
    assert meta is not None and leader.raft.log.base_index <= f.raft.current_index
    checker = CatchupChecker(bound_ms=400)
    pr = leader.raft.progress()[f.id]
    checker.check(w.cluster, 0)  # replicating: nothing to time
    pr.become_snapshot(meta.index, meta.term)  # poked: as if a snapshot were being sent
    checker.check(w.cluster, 100)
    checker.check(w.cluster, 500)
    with _violates("replication_resumes"):
        checker.check(w.cluster, 501)
    # The clock restarts when the follower cannot be reached, or is down.
    w.cluster.network.blocked.add((w.leader, f.id))
    checker.check(w.cluster, 600)
    w.cluster.network.blocked.clear()
    checker.check(w.cluster, 700)
    checker.check(w.cluster, 1100)
    w.cluster.crash(f.id)
    checker.check(w.cluster, 2000)


def test_commit_monotonic_commit_index_goes_back() -> None:
    w = Watched()
    raft = w.cluster[w.follower()]
    raft.commit_index -= 1  # as an old snapshot installed over a newer commit would
    raft.last_applied = min(raft.last_applied, raft.commit_index)
    with _violates("commit_monotonic"):
        w.checker.after_step(w.server(w.follower()))


def test_commit_rule_leader_commits_an_entry_of_an_earlier_term() -> None:
    w = Watched()
    leader = w.cluster[w.leader]
    leader.term += 1  # its log now ends with entries of an earlier term
    w.checker._tracks[w.leader].commit -= 1  # noqa: SLF001 - as if the commit just moved
    w.checker._tracks[w.leader].term = leader.term  # noqa: SLF001
    with _violates("commit_rule"):
        w.checker.after_step(w.server(w.leader))


def test_match_monotonic_leader_lowers_a_followers_match() -> None:
    w = Watched()
    servers = w.cluster.servers.values()
    w.checker.check_progress(servers)
    pr = w.cluster[w.leader].progress()[w.follower()]
    pr.match_index -= 1
    with _violates("match_monotonic"):
        w.checker.check_progress(servers)


def test_configuration_accuracy_popped_change_not_undone() -> None:
    w = Watched()
    f = w.server(w.follower())
    last = f.raft.current_index
    term = f.raft.term
    change = Entry(term, last + 1, 999, EntryType.ADD_NONVOTING_NODE, membership_data(9))
    f.raft._append([change])  # noqa: SLF001 - the core appends it (and takes it into force)
    w.checker.on_persist(f, Ready(entries=[change]))
    w.checker.after_step(f)  # appended: in force, as the log says
    w.checker.on_persist(f, Ready(truncate_from=last + 1))
    f.raft._log.truncate_from(last + 1)  # noqa: SLF001 - popped, but its effect stays
    with _violates("configuration_accuracy"):
        w.checker.after_step(f)


def test_commit_vouched_follower_commits_past_the_request() -> None:
    w = Watched()
    f = w.server(w.follower())
    before = f.raft.commit_index
    msg = AppendEntries(
        term=f.raft.term,
        leader_id=w.leader,
        prev_log_index=before,
        prev_log_term=f.raft.log.term_at(before) or 0,
        entries=(),
        leader_commit=before + 5,
        seq=0,
    )
    w.checker.check_vouched(f, msg, before)  # nothing moved: fine
    f.raft.commit_index = before + 1  # past prev + 0 entries
    with _violates("commit_vouched"):
        w.checker.check_vouched(f, msg, before)


def test_membership_rule_voting_change_before_an_entry_of_the_term_commits() -> None:
    w = Watched()
    leader = w.server(w.leader)
    leader.raft.term += 1  # a new term in which nothing has committed yet
    last = leader.raft.current_index
    change = Entry(leader.raft.term, last + 1, 999, EntryType.REMOVE_NODE, membership_data(2))
    with _violates("membership_rule"):
        w.checker.on_persist(leader, Ready(entries=[change]))
