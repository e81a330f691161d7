"""Membership across its whole life: removal, snapshots, restarts (issue 10, bugs 4-6).

A removed id is never reused (as in etcd): the configuration remembers the
ids its log removed, snapshots carry them, and a leader refuses to add one
again. A server that learns of its own removal from a snapshot is told so
(``RemovedSelf``) like one that applied the removing entry. A snapshot's
configuration is the one in force at its index, not a later one.
"""

from __future__ import annotations

import random

import pytest

from traft.core import (
    EntryType,
    Membership,
    MembershipError,
    NodeConfig,
    NodeIdRemoved,
    Raft,
    RemovedSelf,
    SnapshotMeta,
    membership_data,
)
from traft.core.entry import Entry

from .helpers import CONFIG, ack, drain, elect_and_commit, make
from .test_paper import ae, entry


def removed_and_snapshotted(victim: int = 3) -> tuple[Raft, SnapshotMeta]:
    """Leader 1 of {1, 2, 3} removes ``victim``, commits it with 2 and snapshots."""
    leader = make(1)
    elect_and_commit(leader)
    leader.propose_membership(EntryType.REMOVE_NODE, victim)
    leader.recv_entries([b"after"])
    drain(leader)
    ack(leader, 2)
    drain(leader)
    assert leader.commit_index == leader.current_index == leader.last_applied
    meta = leader.begin_snapshot()
    leader.end_snapshot()
    drain(leader)
    return leader, meta


# -- bug 4: ids of removed nodes are never reused -------------------------------


def test_leader_refuses_to_add_a_removed_id_again() -> None:
    leader, _ = removed_and_snapshotted(3)
    before = (leader.membership(), leader.current_index)
    for kind in (EntryType.ADD_NONVOTING_NODE, EntryType.ADD_NODE):
        with pytest.raises(NodeIdRemoved) as info:
            leader.propose_membership(kind, 3, b"addr")
        assert isinstance(info.value, MembershipError) and info.value.node_id == 3
        assert "new id" in str(info.value)
    assert (leader.membership(), leader.current_index) == before
    # A fresh id is fine.
    leader.propose_membership(EntryType.ADD_NONVOTING_NODE, 4, b"addr")


def test_removed_ids_travel_in_snapshots_and_survive_restart_and_install() -> None:
    _, meta = removed_and_snapshotted(3)
    assert meta.membership.removed == frozenset({3})
    assert meta.membership.voters == {1, 2}
    assert Membership.from_bytes(meta.membership.to_bytes()) == meta.membership
    # Restarted from that snapshot, server 2 still refuses once it leads.
    restarted = Raft.restore(
        2, CONFIG, random.Random(2), term=meta.term, voted_for=None, entries=[], snapshot=meta
    )
    assert restarted.membership().removed == frozenset({3})
    elect_and_commit(restarted)
    with pytest.raises(MembershipError, match="new id"):
        restarted.propose_membership(EntryType.ADD_NONVOTING_NODE, 3)
    # Installed from a leader, the same.
    follower = make(2)
    assert follower.begin_load_snapshot(
        meta.term, meta.index, meta.membership, leader_term=meta.term
    )
    follower.end_load_snapshot()
    drain(follower)
    assert follower.membership().removed == frozenset({3})


def test_popping_a_removal_forgets_the_removed_id() -> None:
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [Entry(1, 1, 7, EntryType.REMOVE_NODE, membership_data(3))]))
    drain(raft)
    assert raft.membership().removed == frozenset({3})
    raft.recv(3, ae(2, 0, 0, [entry(2, 1)], leader=3))
    drain(raft)
    assert raft.membership().removed == frozenset()
    node = raft.node(3)
    assert node is not None and node.voting


def test_membership_bytes_without_removed_ids_still_decode() -> None:
    # The encoding before removed ids were recorded: a count, then the nodes.
    old = Membership((NodeConfig(1, True, b"a"), NodeConfig(2, False)))
    written_before = (
        b"\x00\x00\x00\x02"
        + b"\x00" * 7 + b"\x01\x01\x00\x00\x00\x01a"
        + b"\x00" * 7 + b"\x02\x00\x00\x00\x00\x00"
    )  # fmt: skip
    assert old.to_bytes() == written_before
    assert Membership.from_bytes(old.to_bytes()) == old
    assert Membership.from_bytes(old.to_bytes()).removed == frozenset()
    new = Membership((NodeConfig(1, True),), removed=frozenset({2, 5}))
    assert Membership.from_bytes(new.to_bytes()) == new
    with pytest.raises(ValueError):
        Membership.from_bytes(new.to_bytes()[:-1])


# -- bug 5: a removal learnt from a snapshot is reported --------------------------


def test_node_removed_while_away_learns_it_from_a_snapshot_once() -> None:
    leader, meta = removed_and_snapshotted(3)
    away = make(3)  # heard nothing since the founding configuration
    assert away.begin_load_snapshot(meta.term, meta.index, meta.membership, leader_term=meta.term)
    away.end_load_snapshot()
    rd = drain(away)
    assert [e for e in rd.events if isinstance(e, RemovedSelf)] == [RemovedSelf(meta.index)]
    assert not away.is_member()
    # A later snapshot does not tell it again.
    leader.recv_entries([b"more"])
    drain(leader)
    ack(leader, 2)
    drain(leader)
    later = leader.begin_snapshot()
    leader.end_snapshot()
    assert away.begin_load_snapshot(
        later.term, later.index, later.membership, leader_term=later.term
    )
    away.end_load_snapshot()
    assert not [e for e in drain(away).events if isinstance(e, RemovedSelf)]
    # It never campaigns again (the installs adopted the leader's term).
    term = away.term
    away.periodic(10 * CONFIG.election_timeout_ms)
    assert away.term == term


def test_node_restarted_from_a_snapshot_that_removed_it_is_told() -> None:
    _, meta = removed_and_snapshotted(3)
    raft = Raft.restore(3, CONFIG, random.Random(3), term=1, voted_for=1, entries=[], snapshot=meta)
    assert RemovedSelf(meta.index) in drain(raft).events


def test_joining_node_installing_a_snapshot_from_before_its_addition_is_not_removed() -> None:
    _, meta = removed_and_snapshotted(3)
    joiner = Raft(4, CONFIG, random.Random(4))
    assert joiner.begin_load_snapshot(meta.term, meta.index, meta.membership, leader_term=meta.term)
    joiner.end_load_snapshot()
    assert not [e for e in drain(joiner).events if isinstance(e, RemovedSelf)]


# -- bug 6: a snapshot's configuration is the one at its index ------------------------


def test_snapshot_membership_is_the_configuration_at_its_index() -> None:
    raft = make(1)
    log = [entry(1, 1), entry(1, 2), Entry(1, 3, 7, EntryType.REMOVE_NODE, membership_data(3))]
    raft.recv(2, ae(1, 0, 0, [*log, entry(1, 4)], commit=2))
    drain(raft)
    assert raft.last_applied == 2
    # The removal at 3 commits before it is applied, and a snapshot is taken at 2.
    raft.recv(2, ae(1, 4, 1, [], commit=4))
    assert raft.commit_index == 4
    meta = raft.begin_snapshot()
    assert meta.index == 2
    assert meta.membership.voters == {1, 2, 3}
    raft.end_snapshot()
    # The next snapshot, once 3 and 4 are applied, has the removal.
    drain(raft)
    assert raft.begin_snapshot().membership.voters == {1, 2}


def test_leader_snapshot_between_commit_and_apply_has_the_configuration_at_its_index() -> None:
    raft = make(1)
    elect_and_commit(raft)
    applied = raft.last_applied
    raft.propose_membership(EntryType.REMOVE_NODE, 3)
    drain(raft)
    ack(raft, 2)  # the removal commits; the next Ready would apply it
    assert raft.commit_index > raft.last_applied == applied
    meta = raft.begin_snapshot()
    assert meta.index == applied
    assert meta.membership.voters == {1, 2, 3}


# -- a server removed while away, by a leader since deposed -----------------------


def test_server_removed_while_away_by_a_deposed_leader_learns_it_from_the_next_leader() -> None:
    """Found by the simulator (docs/simulator.md): server 4 is cut off while
    leader L removes it; the removal commits, L is deposed, and no later
    leader replicates to 4 any more, so it never learns of its removal and
    campaigns forever (a zombie `traft serve` that never exits). A leader
    that hears from a server removed by a committed entry now replicates to
    it until it knows: it gets RemovedSelf, and its terms never disturb the
    cluster."""
    from .net import Net

    timeout = CONFIG.election_timeout_ms
    net = Net((1, 2, 3, 4))
    first = net.elect()
    zombie = 4 if first != 4 else 3
    net.isolated.add(zombie)
    net[first].propose_membership(EntryType.REMOVE_NODE, zombie)
    net.run(2 * timeout)
    assert zombie in net[first].membership().removed
    assert net[first].commit_index >= net[first].current_index
    # The remover is deposed: cut off, the others elect another leader.
    net.isolated = {zombie, first}
    net.run(4 * timeout)
    second = net.leader()
    assert second is not None and second != first
    net.isolated = {zombie}
    net.run(2 * timeout)
    leader_term = net[second].term
    # The zombie comes back; it believes it is still a voter and campaigns.
    net.isolated = set()
    net.run(6 * timeout)
    told = [e for _, i, e in net.events if i == zombie and isinstance(e, RemovedSelf)]
    assert len(told) == 1, net[zombie].membership()
    assert not net[zombie].is_member()
    assert net.leader() == second and net[second].term == leader_term
    # Once it knows, the leader stops replicating to it.
    assert zombie not in net[second].progress()
