"""Availability scenarios in the simulator: pre-vote, leadership transfer, follower reads.

Each drives a :class:`~traft.sim.Cluster` by hand with the
:class:`~traft.sim.invariants.InvariantChecker` attached (election safety —
at most one leader per term —, log matching, state-machine safety, ...).
"""

from __future__ import annotations

import random

import pytest

from traft.core import (
    Config,
    EntryType,
    LeaderChanged,
    ReadReady,
    Role,
    TransferAborted,
    TransferFinished,
)
from traft.sim import Cluster
from traft.sim.invariants import InvariantChecker, InvariantViolation
from traft.sim.transfers import TransferChaos

pytestmark = pytest.mark.timeout(60)

T = 100


def harness(ids: list[int], seed: int, **config: object) -> tuple[Cluster, InvariantChecker]:
    cfg = Config(election_timeout_ms=T, request_timeout_ms=30, **config)  # type: ignore[arg-type]
    c = Cluster(ids, seed=seed, config=cfg)
    checker = InvariantChecker(ids, monotonic_ids=False)
    checker.attach(c)
    return c, checker


def check(c: Cluster, checker: InvariantChecker) -> None:
    for server in c.servers.values():
        checker.after_step(server)
    checker.check_all(c.servers.values())


def partitioned_then_healed(pre_vote: bool, seed: int) -> tuple[int, int, int]:
    """A follower of 5 cut off for 10 election timeouts, then healed.

    Returns (term increases of the cut-off server, term increases of the
    cluster, leader changes), counted from the cut to 10 timeouts after the heal.
    """
    ids = [1, 2, 3, 4, 5]
    c, checker = harness(ids, seed, pre_vote=pre_vote)
    leader = c.elect()
    c.run(5 * T)
    victim = min(i for i in ids if i != leader)
    changes: list[int] = []
    c.on_event.append(
        lambda s, e: (
            changes.append(s.id) if isinstance(e, LeaderChanged) and e.leader_id == s.id else None
        )
    )
    own_before, cluster_before = c[victim].term, max(c[i].term for i in ids)
    c.network.isolate(victim, set(ids))
    c.run(10 * T)
    own_after_cut = c[victim].term
    c.network.heal()
    c.run(10 * T)
    check(c, checker)
    assert c.leader() is not None
    return own_after_cut - own_before, max(c[i].term for i in ids) - cluster_before, len(changes)


@pytest.mark.parametrize("seed", range(3))
def test_pre_vote_keeps_a_healed_voter_from_raising_the_term(seed: int) -> None:
    """Thesis §9.6: with pre-vote a partitioned server "would not be able to
    increment its term, since it could not receive permission from a majority
    of the cluster"; without it, its term climbs every timeout and the
    cluster's term follows it on heal (and the leader is deposed)."""
    assert partitioned_then_healed(pre_vote=True, seed=seed) == (0, 0, 0)
    own, cluster, changes = partitioned_then_healed(pre_vote=False, seed=seed)
    assert own >= 5 and cluster >= 5 and changes >= 1, (own, cluster, changes)


def transfer_events(c: Cluster) -> list[object]:
    seen: list[object] = []
    c.on_event.append(
        lambda s, e: (
            seen.append((s.id, e)) if isinstance(e, TransferFinished | TransferAborted) else None
        )
    )
    return seen


def test_transfer_then_target_crash_and_partition_keeps_every_invariant() -> None:
    ids = [1, 2, 3, 4, 5]
    c, checker = harness(ids, seed=7)
    events = transfer_events(c)
    leader = c.elect()
    for k in range(10):
        c.propose(b"x%d" % k)
    c.run(3 * T)
    target = max(i for i in ids if i != leader)
    c[leader].transfer_leadership(target)
    c.process(leader)
    c.settle()
    c.run(2 * T)
    assert c.leader() == target
    assert (leader, TransferFinished(target)) in events
    # Now transfer again and crash the target at once; then cut the old
    # leader off: the cluster elects someone else and stays consistent.
    second = min(i for i in ids if i not in (leader, target))
    c[target].transfer_leadership(second)
    c.process(target)
    c.crash(second)
    c.network.isolate(leader, set(ids))
    c.run(10 * T)
    assert any(isinstance(e, TransferAborted) and s == target for s, e in events)  # type: ignore[misc]
    new = c.leader()
    assert new is not None and new not in (second, leader)
    c.restart(second)
    c.network.heal()
    c.run(10 * T)
    check(c, checker)
    assert len(c.leaders()) == 1


def test_transfer_racing_a_membership_change() -> None:
    """A transfer started while a removal is uncommitted: the target must not
    be the removed node (refused up front), the change commits after the
    transfer, and the invariants hold."""
    ids = [1, 2, 3, 4]
    c, checker = harness(ids, seed=11)
    leader = c.elect()
    c.run(2 * T)
    gone = max(i for i in ids if i != leader)
    c[leader].propose_membership(EntryType.REMOVE_NODE, gone)
    c.process(leader)
    target = min(i for i in ids if i not in (leader, gone))
    c[leader].transfer_leadership(target)
    c.process(leader)
    c.run(5 * T)
    assert c.leader() == target
    assert gone not in c[target].voters()
    check(c, checker)


def test_follower_read_is_served_from_the_follower_at_the_leaders_index() -> None:
    ids = [1, 2, 3]
    c, checker = harness(ids, seed=5)
    ready: list[tuple[int, ReadReady]] = []
    c.on_event.append(lambda s, e: ready.append((s.id, e)) if isinstance(e, ReadReady) else None)
    leader = c.elect()
    for k in range(5):
        c.propose(b"y%d" % k)
    c.settle()
    follower = min(i for i in ids if i != leader)
    assert c[follower].role is Role.FOLLOWER
    c[follower].read_index("r")
    c.process(follower)
    c.settle()
    assert ready == [(follower, ReadReady("r", c[leader].commit_index))]
    check(c, checker)


def test_transfer_leaderless_invariant_fires_on_a_long_gap() -> None:
    """The checker is not vacuous: a target that crashes right after its
    campaign deposed the leader leaves the cluster leaderless until another
    server's election timeout fires, longer than T: ``transfer_leaderless``."""
    ids = [1, 2, 3]
    c, checker = harness(ids, seed=2)
    chaos = TransferChaos(c, random.Random(0), T)
    chaos.calm(0)  # no fault from the start
    leader = c.elect()
    c.run(6 * T)
    assert c.leader() == leader
    chaos.rng = _Fixed(0)  # type: ignore[assignment]
    chaos.start(c.now_ms)
    target = chaos._watch[1] if chaos._watch is not None else None
    assert target is not None and chaos.stats["transfers_watched"] == 1
    # Deliver one message at a time until the target's campaign deposed the leader.
    for _ in range(100):
        if c[leader].role is not Role.LEADER:
            break
        if not c.network.in_flight:
            c.tick(1)
            continue
        c.deliver(0)
    assert c[target].role is Role.CANDIDATE and c[leader].role is Role.FOLLOWER
    c.crash(target)
    with pytest.raises(InvariantViolation, match="transfer_leaderless"):
        for _ in range(400):
            c.tick(5)
            c.settle()
            chaos.check(c.now_ms)
    check(c, checker)


class _Fixed:
    """An rng whose randrange always picks ``index``."""

    def __init__(self, index: int) -> None:
        self.index = index

    def randrange(self, n: int) -> int:
        return min(self.index, n - 1)
