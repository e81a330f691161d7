"""Core bugs the simulator found, each as a short deterministic scenario.

Every test drives a :class:`~traft.sim.Cluster` by hand through the
interleaving that broke the core, with the
:class:`~traft.sim.invariants.InvariantChecker` attached, and asserts that
no invariant breaks.
"""

from __future__ import annotations

import contextlib

import pytest

from traft.core import Config, EntryStatus, EntryType, LeaderNotReady, Role
from traft.sim import Cluster
from traft.sim.invariants import InvariantChecker

pytestmark = pytest.mark.timeout(60)

CONFIG = Config(election_timeout_ms=100, request_timeout_ms=30)


class Harness:
    def __init__(self, ids: list[int], seed: int, **kwargs: bool) -> None:
        self.c = Cluster(ids, seed=seed, config=CONFIG, **kwargs)
        self.checker = InvariantChecker(ids)
        self.checker.attach(self.c)

    def check(self) -> None:
        for server in self.c.servers.values():
            self.checker.after_step(server)
        self.checker.check_all(self.c.servers.values())

    def drop_in_flight(self) -> None:
        network = self.c.network
        while network.in_flight:
            network.drop(0)


def test_new_leader_changes_membership_only_after_committing_in_its_term() -> None:
    """Ongaro's single-server membership bug (raft-dev, 2015).

    C0 = {1,2,3,4}. Leader 1 appends C1 = C0 + {5} but only 5 gets it. A new
    leader L of C0 (elected by L, B and D) appends C2 = C0 - {D} and a client
    entry, which reach B only: committed under C2 by {L, B}. Then 1 campaigns
    under C1 and wins with D and 5 (its log, ending in C1, is more
    up to date than D's), and overwrites the committed entries. The fix: a
    leader proposes no voting change before an entry of its term commits
    (which here needs D, who would then never vote for 1).
    """
    h = Harness([1, 2, 3, 4], seed=3, auto_promote=False)
    c = h.c
    c[1].campaign()
    c.process(1)
    c.settle()
    assert c.leader() == 1
    h.checker.track(c.add_server(5))
    c[1].propose_membership(EntryType.ADD_NONVOTING_NODE, 5)
    c.process(1)
    c.run(300)
    h.check()
    # Leader 1, cut off from 2, 3 and 4, appends C1 (5 votes) on 1 and 5 only.
    c.network.partition({1}, {2, 3, 4})
    c[1].propose_membership(EntryType.ADD_NODE, 5)
    c.process(1)
    c.settle()
    h.check()
    # 2, 3 and 4 elect a leader of C0 among themselves.
    c.network.partition({5}, {2, 3, 4})
    new_leader = None
    for _ in range(100):
        c.tick(10)
        while c.network.in_flight and new_leader is None:
            c.deliver(0)
            leaders = [i for i in (2, 3, 4) if c[i].role is Role.LEADER]
            new_leader = leaders[0] if leaders else None
        if new_leader is not None:
            break
    assert new_leader is not None
    h.check()
    b, d = (i for i in (2, 3, 4) if i != new_leader)
    # The new leader reaches B but not D, and at once removes D.
    c.network.block(new_leader, d)
    h.drop_in_flight()
    with contextlib.suppress(LeaderNotReady):
        c[new_leader].propose_membership(EntryType.REMOVE_NODE, d)
    c[new_leader].recv_entry(b"X", id=1000)
    c.process(new_leader)
    c.settle()
    h.check()
    # {L, B} on one side; 1 campaigns under C1 with D and 5.
    c.network.heal()
    c.network.partition({new_leader, b}, {1, d, 5})
    for _ in range(200):
        c.tick(10)
        c.settle()
        h.check()
    c.network.heal()
    for _ in range(100):
        c.tick(10)
        c.settle()
        h.check()


def test_entry_status_is_not_lost_while_the_entry_can_still_commit() -> None:
    """entry_status said LOST for an entry that later committed.

    Leader 1 proposes E, which reaches 2 only. 5 wins term 2 without E and
    its no-op replaces E on 1 (uncommitted), then 5 crashes. 2, which holds
    E, wins a later term with 3 and 4 and commits E. Server 1 had answered
    LOST as soon as another term's entry sat at E's index, so a client
    would have retried E and applied it twice. Now LOST means a different
    entry is *committed* at that index.
    """
    h = Harness([1, 2, 3, 4, 5], seed=5)
    c = h.c
    c[1].campaign()
    c.process(1)
    c.settle()
    c.run(100)
    c.network.partition({1}, {3, 4, 5})
    resp = c[1].recv_entry(b"E", id=77)
    c.process(1)
    c.settle()
    h.check()
    # 3, 4 and 5 elect a leader W; only its votes get through, then nothing.
    c.network.heal()
    c.network.partition({1, 2}, {3, 4, 5})
    w = None
    for _ in range(300):
        c.tick(5)
        while c.network.in_flight and w is None:
            c.deliver(0)
            leaders = [i for i in (3, 4, 5) if c[i].role is Role.LEADER]
            w = leaders[0] if leaders else None
        if w is not None:
            break
    assert w is not None
    h.drop_in_flight()
    h.check()
    # W reaches 1 only: its uncommitted no-op replaces E on 1.
    c.network.heal()
    others = {1, 2, 3, 4, 5} - {w, 1}
    c.network.partition({w, 1}, others)
    c.tick(40)
    c.settle()
    h.check()
    assert c[1].log.term_at(resp.index) != resp.term
    statuses = {c[1].entry_status(resp)}
    # W crashes; 2 (holding E) wins with the others and commits E.
    c.crash(w)
    c.network.heal()
    c.network.partition({1}, others)
    for _ in range(100):
        c.tick(10)
        c.settle()
        h.check()
        statuses.add(c[1].entry_status(resp))
    assert h.checker.committed_id(resp.index) == 77
    assert EntryStatus.LOST not in statuses
    c.network.heal()
    for _ in range(200):
        c.tick(10)
        c.settle()
        h.check()
        if c[1].entry_status(resp) is EntryStatus.COMMITTED:
            break
    assert c[1].entry_status(resp) is EntryStatus.COMMITTED


def test_two_voters_removing_one_do_not_wedge() -> None:
    """Shrinking from two voters wedged when only the removed leader held the removal.

    Leader 1 of {1, 2}, cut off from 2, appends REMOVE 1: its configuration
    becomes {2} and, membership changes taking effect when appended, it is
    no longer a voter in its own eyes, so it never campaigned again. Server 2
    still saw {1, 2} and needed 1's vote, which 1 refused (its log is longer).
    No leader, forever (the simulator's liveness invariant caught it). Now a
    voter whose own removal is uncommitted keeps campaigning, wins with 2's
    vote, commits its removal and steps down.
    """
    h = Harness([1, 2], seed=1)
    c = h.c
    c[1].campaign()
    c.process(1)
    c.settle()
    c.run(100)
    assert c.leader() == 1
    c.network.partition({1}, {2})
    c[1].propose_membership(EntryType.REMOVE_NODE, 1)
    c.process(1)
    c.settle()
    h.check()
    assert c[1].voters() == [2] and c[2].voters() == [1, 2]
    for _ in range(50):
        c.tick(10)
        c.settle()
        h.check()
    c.network.heal()
    for _ in range(300):
        c.tick(10)
        c.settle()
        h.check()
    assert c[2].voters() == [2]
    assert c.leader() == 2
    assert c[2].commit_index == c[2].current_index


def test_refused_candidates_do_not_hold_back_the_best_candidate() -> None:
    """A follower restarted its election timer on every higher-term RequestVote.

    Figure 2 restarts a follower's timer only when it hears from the leader
    or grants a vote. The core also restarted it when a candidate's higher
    term arrived, even when it refused the vote. Candidates that cannot win
    (shorter logs, removed servers that never learned of their removal)
    then kept the only server that could win, the one with the longest log,
    from ever timing out: the simulator's liveness invariant saw no leader
    for seconds (3 servers, seed 14 of the test chaos). Here a short-log
    server campaigns every 60 ms, below every election timeout; the
    long-log server must still time out and win.
    """
    h = Harness([1, 2, 3], seed=2)
    c = h.c
    c[1].campaign()
    c.process(1)
    c.settle()
    c.run(100)
    c.network.partition({3}, {1, 2})
    for k in range(3):
        c[1].recv_entry(b"only on 1 and 2", id=100 + k)
        c.process(1)
    c.run(100)
    h.check()
    assert c[2].current_index > c[3].current_index
    c.crash(1)
    c.network.heal()
    for step in range(100):
        if step % 6 == 0 and c[3].role is not Role.LEADER:
            c[3].campaign()
            c.process(3)
        c.tick(10)
        c.settle()
        h.check()
        if c[2].role is Role.LEADER:
            break
    assert c[2].role is Role.LEADER


def test_a_server_that_cannot_campaign_forgets_a_silent_leader() -> None:
    """A server that could not campaign believed in its old leader forever.

    Check-quorum makes a follower ignore RequestVotes while its leader is
    fresh: known, and heard from within an election timeout. The core
    measured that with the election timer, which restarts every time it
    fires; a server that cannot campaign (a non-voter, or a new server that
    others have already promoted but that has not received its promotion)
    never cleared its leader, so every restart made the dead leader look
    fresh again and it kept ignoring the candidates that needed its vote:
    no leader for seconds (the simulator's liveness invariant, 4 servers,
    seed 60429 of a membership-heavy soak). Now such a server forgets its
    leader when a whole election timeout passes without hearing from it.
    """
    h = Harness([1, 2, 3], seed=4, auto_promote=False)
    c = h.c
    c[1].campaign()
    c.process(1)
    c.settle()
    h.checker.track(c.add_server(4))
    c[1].propose_membership(EntryType.ADD_NONVOTING_NODE, 4)
    c.process(1)
    c.run(200)
    h.check()
    assert c[4].leader_id == 1 and not c[4].node(4).voting  # type: ignore[union-attr]
    c.crash(1)
    c.network.isolate(4, {1, 2, 3})
    for _ in range(60):  # 600 ms: several election timeouts of silence
        c.tick(10)
        c.settle()
        h.check()
    assert c[4].leader_id is None
    c.network.heal()
    for _ in range(60):
        c.tick(10)
        c.settle()
        h.check()
    assert c.leader() in (2, 3)
    assert c[4].leader_id == c.leader()
