"""Core bugs the simulator found, each as a short deterministic scenario.

Every test drives a :class:`~traft.sim.Cluster` by hand through the
interleaving that broke the core, with the
:class:`~traft.sim.invariants.InvariantChecker` attached, and asserts that
no invariant breaks.
"""

from __future__ import annotations

import contextlib

import pytest

from traft.core import Config, EntryType, LeaderNotReady, Role
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
