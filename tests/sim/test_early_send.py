"""The simulator's leader early send (thesis §10.2.1): a leader's Ready with
neither hard state nor truncation is sent before its fsync, which completes
(with ``advance()``) only after a simulated delay while the leader keeps
taking input; a crash in between loses the Ready's entries from its disk.
"""

from __future__ import annotations

import pytest

from traft.sim import Cluster
from traft.sim.invariants import InvariantChecker, InvariantViolation
from traft.sim.runner import SimOptions, Simulation

pytestmark = pytest.mark.timeout(60)


def _early_cluster() -> tuple[Cluster, InvariantChecker, int]:
    c = Cluster((1, 2, 3), seed=5)
    checker = InvariantChecker((1, 2, 3))
    checker.attach(c)
    leader = c.elect()
    for server in c.servers.values():
        server.early_send = True
    c.early_fsync_ms = (30, 30)
    return c, checker, leader


def _propose(c: Cluster, leader: int, entry_id: int) -> int:
    index = c[leader].recv_entry(b"x", id=entry_id).index
    c.process(leader)
    return index


def test_the_leader_sends_before_its_fsync_and_advances_after_it() -> None:
    c, checker, leader = _early_cluster()
    server = c.servers[leader]
    index = _propose(c, leader, 1)
    assert server.syncing is not None
    assert server.disk.last_index < index  # not durable on the leader yet
    assert c.network.in_flight  # but already sent
    c.settle()  # the followers persist and answer; the leader takes their answers
    assert server.syncing is not None and c[leader].commit_index == index
    for s in c.servers.values():
        checker.after_step(s)
    c.tick(30)
    assert server.syncing is None and server.disk.last_index >= index
    c.run(200)
    for s in c.servers.values():
        checker.after_step(s)
    checker.check_all(c.servers.values())
    assert all(s.applied_index >= index for s in c.servers.values())


def test_a_crash_between_the_send_and_the_fsync_loses_the_entries_from_disk() -> None:
    c, checker, leader = _early_cluster()
    server = c.servers[leader]
    index = _propose(c, leader, 1)
    c.crash_in_ready(leader)  # lands in the early-sent Ready: before its fsync
    c.tick(30)
    assert not server.alive and c.early_crashes == 1
    assert server.disk.last_index < index
    c.restart(leader)
    assert c[leader].current_index < index
    new = c.elect()
    c.run(500)
    for s in c.servers.values():
        checker.after_step(s)
    checker.check_all(c.servers.values())
    assert c[new].commit_index >= index - 1


def test_a_leader_that_counts_its_unsynced_copy_breaks_durability() -> None:
    # What the simulator exists to catch here: the leader counting its own
    # entries toward commitment at ready() instead of advance().
    c, checker, leader = _early_cluster()
    for s in c.servers.values():
        checker.after_step(s)
    follower = next(i for i in sorted(c.servers) if i != leader)
    third = next(i for i in sorted(c.servers) if i not in (leader, follower))
    c.network.isolate(third, set(c.servers))
    index = _propose(c, leader, 1)
    c[leader]._stable_index = index  # poked: counted before the fsync completed
    c.settle()
    assert c[leader].commit_index == index
    with pytest.raises(InvariantViolation, match="^durability:"):
        checker.after_step(c.servers[leader])


def test_seed_with_early_sends_and_crashes_holds_every_invariant() -> None:
    options = SimOptions(iterations=1500, early_send=100.0, crash=1.0)
    result = Simulation(options, 4).run()
    assert result.violation is None, f"{result.violation} (iteration {result.iteration})"
    assert result.summary["early_sends"] > 50
    assert result.summary["early_crashes"] > 0
