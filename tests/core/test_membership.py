"""Membership changes through the log (§6, with the seed library's semantics)."""

from __future__ import annotations

import pytest

from traft.core import (
    EntryType,
    MembershipChanged,
    MembershipError,
    NodeHasSufficientLogs,
    NodeUnknown,
    NotLeader,
    OneVotingChangeOnly,
    RemovedSelf,
    Role,
    membership_data,
)
from traft.core.entry import Entry
from traft.sim import Cluster

from .helpers import drain, elect, elect_and_commit, make
from .test_paper import ae


def test_add_nonvoting_node_takes_effect_when_appended() -> None:
    """Seed: 'when a log with type RAFT_LOGTYPE_ADD_NONVOTING_NODE is detected, we add a non-voting node'."""
    raft = make(1)
    raft.recv(
        2, ae(1, 0, 0, [Entry(1, 1, 7, EntryType.ADD_NONVOTING_NODE, membership_data(4, b"addr"))])
    )
    rd = drain(raft)
    node = raft.node(4)
    assert node is not None and not node.voting and node.context == b"addr"
    assert any(isinstance(e, MembershipChanged) and e.node_id == 4 for e in rd.events)
    assert raft.commit_index == 0  # not committed, yet in force


def test_popped_membership_entry_restores_previous_configuration() -> None:
    """A membership entry that gets truncated restores the configuration before it."""
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [Entry(1, 1, 7, EntryType.REMOVE_NODE, membership_data(3))]))
    drain(raft)
    assert raft.node(3) is None
    raft.recv(3, ae(2, 0, 0, [Entry(2, 1, 8, EntryType.NORMAL, b"")], leader=3))
    rd = drain(raft)
    node = raft.node(3)
    assert node is not None and node.voting
    assert MembershipChanged(3, node) in rd.events


def test_node_joins_catches_up_and_is_promoted() -> None:
    """Seed: add non-voting, wait for node_has_sufficient_logs, then ADD_NODE."""
    c = Cluster([1, 2, 3], seed=5)
    leader = c.elect()
    for _ in range(30):
        c.propose(b"x")
    c.run(200)
    c.add_server(4)
    c[leader].propose_membership(EntryType.ADD_NONVOTING_NODE, 4, b"addr4")
    c.run(2000)
    events = c.servers[leader].events
    assert sum(isinstance(e, NodeHasSufficientLogs) and e.node_id == 4 for e in events) == 1
    assert c[leader].voters() == [1, 2, 3, 4]
    assert c[4].voters() == [1, 2, 3, 4]
    assert c.servers[4].state == c.servers[leader].state


def test_one_voting_change_at_a_time() -> None:
    """Seed: only one voting change may be in progress."""
    raft = make(1, ids=(1, 2, 3, 4, 5))
    elect_and_commit(raft)
    raft.propose_membership(EntryType.REMOVE_NODE, 5)
    with pytest.raises(OneVotingChangeOnly):
        raft.propose_membership(EntryType.REMOVE_NODE, 4)
    # A non-voting addition is not a voting change.
    raft.propose_membership(EntryType.ADD_NONVOTING_NODE, 9)


def test_membership_misuse_raises_typed_errors() -> None:
    raft = make(1)
    with pytest.raises(NotLeader):
        raft.propose_membership(EntryType.ADD_NONVOTING_NODE, 4)
    elect(raft)
    with pytest.raises(MembershipError):
        raft.propose_membership(EntryType.ADD_NONVOTING_NODE, 2)
    with pytest.raises(NodeUnknown):
        raft.propose_membership(EntryType.REMOVE_NODE, 42)
    with pytest.raises(MembershipError):
        raft.propose_membership(EntryType.ADD_NODE, 2)
    with pytest.raises(MembershipError):
        raft.propose_membership(EntryType.NORMAL, 4)


def test_removed_follower_learns_of_its_removal() -> None:
    """Seed: 'Once the RAFT_LOGTYPE_REMOVE_NODE configuration change log is applied ... shutdown'."""
    c = Cluster([1, 2, 3], seed=8)
    leader = c.elect()
    victim = [i for i in (1, 2, 3) if i != leader][0]
    c[leader].propose_membership(EntryType.REMOVE_NODE, victim)
    c.run(1000)
    assert victim not in c[leader].voters()
    assert c.servers[victim].removed
    assert any(isinstance(e, RemovedSelf) for e in c.servers[victim].events)
    # The rest carry on without it.
    c.propose(b"after")
    c.run(300)
    others = [i for i in (1, 2, 3) if i != victim]
    assert c[others[0]].commit_index == c[others[1]].commit_index == c[leader].current_index


def test_leader_removing_itself_steps_down_after_commit() -> None:
    """§6: 'the leader steps down once the Cnew entry is committed'."""
    c = Cluster([1, 2, 3], seed=9)
    leader = c.elect()
    c[leader].propose_membership(EntryType.REMOVE_NODE, leader)
    assert c[leader].role is Role.LEADER  # still leads until the change commits
    c.run(3000)
    assert c[leader].role is not Role.LEADER
    assert c.servers[leader].removed
    new = c.leader()
    assert new is not None and new != leader
    assert c[new].voters() == sorted({1, 2, 3} - {leader})


def test_removed_node_does_not_campaign_once_its_removal_commits() -> None:
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [Entry(1, 1, 7, EntryType.REMOVE_NODE, membership_data(1))], commit=1))
    drain(raft)
    raft.periodic(10_000)
    assert raft.role is Role.FOLLOWER and raft.term == 1


def test_voter_with_uncommitted_own_removal_may_still_campaign() -> None:
    """Thesis §4.2.2: until its removal commits, a server still takes part."""
    raft = make(1, pre_vote=False)
    raft.recv(2, ae(1, 0, 0, [Entry(1, 1, 7, EntryType.REMOVE_NODE, membership_data(1))]))
    drain(raft)
    raft.periodic(10_000)
    assert raft.role is Role.CANDIDATE


def test_non_voting_node_does_not_count_for_commit() -> None:
    raft = make(1, ids=(1, 2, 3))
    raft.add_non_voting_node(4)
    raft.add_non_voting_node(5)
    elect(raft)
    from traft.core import AppendEntriesResponse

    for n in (4, 5):
        raft.recv(
            n, AppendEntriesResponse(term=1, success=True, current_index=1, commit_index=0, seq=0)
        )
    assert raft.commit_index == 0
    raft.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=1, commit_index=0, seq=0)
    )
    assert raft.commit_index == 1


def test_configuration_after_restart_is_rebuilt_from_snapshot_and_log() -> None:
    c = Cluster([1, 2, 3], seed=12)
    leader = c.elect()
    c.add_server(4)
    c[leader].propose_membership(EntryType.ADD_NONVOTING_NODE, 4, b"a4")
    c.run(2000)
    assert c[leader].voters() == [1, 2, 3, 4]
    c.take_snapshot(leader)
    c[leader].propose_membership(EntryType.REMOVE_NODE, 3)
    c.run(500)
    before = c[leader].membership()
    c.crash(leader)
    c.restart(leader)
    assert c[leader].membership() == before


def test_inactive_node_gets_no_messages_but_stays_a_member() -> None:
    """Seed: raft_node_set_active; an inactive node is skipped when sending."""
    from traft.core import NodeUnknown as Unknown

    raft = make(1)
    raft.set_node_active(3, False)
    assert not raft.node_is_active(3) and raft.node(3) is not None
    rd = elect(raft)
    assert {dst for dst, _ in rd.messages} == {2}
    raft.periodic(100)
    assert {dst for dst, _ in drain(raft).messages} == {2}
    raft.set_node_active(3, True)
    raft.periodic(100)
    assert {dst for dst, _ in drain(raft).messages} == {2, 3}
    with pytest.raises(Unknown):
        raft.set_node_active(42, False)


def test_leader_removing_itself_learns_its_removal_from_the_next_leader() -> None:
    """A leader that appends its own removal and loses leadership before it
    commits must still learn that it was removed (docs/reliability.md)."""
    c = Cluster([1, 2, 3], seed=41)
    old = c.elect()
    others = sorted({1, 2, 3} - {old})
    c.network.block(old, others[1])  # the removal reaches one follower only
    for _ in range(3):
        c.propose(b"x")
    c.run(200)
    c[old].propose_membership(EntryType.REMOVE_NODE, old)
    c.process(old)
    c.settle()
    c.crash(old)  # lose leadership before the removal commits
    new = c.elect()
    assert new != old and old not in c[new].voters()
    c.network.heal()
    c.restart(old)
    c.run(3000)
    assert c.servers[old].removed, "the old leader never learned of its removal"
