"""Log compaction and snapshot installation (§7, with the seed's API)."""

from __future__ import annotations

import pytest

from traft.core import (
    EntryType,
    Membership,
    NodeConfig,
    NoSnapshotInProgress,
    NothingToSnapshot,
    Role,
    SendSnapshot,
    SnapshotInProgress,
)
from traft.core.entry import Entry
from traft.sim import Cluster

from .helpers import drain, elect, make
from .test_paper import ae, entry

MEMBERS = Membership((NodeConfig(1, True), NodeConfig(2, True), NodeConfig(3, True)))


def test_snapshot_compacts_log_up_to_applied_index() -> None:
    """§7: 'the entire current system state is written to a snapshot ... and the entire log up to that point is discarded'."""
    raft = make(1)
    elect(raft)
    raft.recv_entries([b"a", b"b", b"c"])
    drain(raft)
    from traft.core import AppendEntriesResponse

    raft.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=4, commit_index=0, seq=0)
    )
    drain(raft)
    assert raft.last_applied == 4
    meta = raft.begin_snapshot()
    assert (meta.index, meta.term) == (4, 1)
    assert meta.membership.voters == {1, 2, 3}
    raft.end_snapshot()
    rd = drain(raft)
    assert rd.compact_upto == 4
    assert raft.first_index == 5 and raft.current_index == 4
    assert raft.last_log_term == 1


def test_snapshot_keeps_trailing_entries_when_asked() -> None:
    c = Cluster([1, 2, 3], seed=2)
    leader = c.elect()
    for _ in range(20):
        c.propose(b"x")
    c.run(200)
    c.take_snapshot(leader, keep_entries=5)
    snap = c[leader].snapshot
    assert snap is not None
    assert c[leader].first_index == snap.index - 5 + 1


def test_snapshot_misuse_raises() -> None:
    raft = make(1)
    with pytest.raises(NothingToSnapshot):
        raft.begin_snapshot()
    with pytest.raises(NoSnapshotInProgress):
        raft.end_snapshot()
    with pytest.raises(NoSnapshotInProgress):
        raft.end_load_snapshot()
    raft.begin_load_snapshot(1, 5, MEMBERS, leader_term=1)
    with pytest.raises(SnapshotInProgress):
        raft.begin_load_snapshot(1, 6, MEMBERS, leader_term=1)


def test_follower_behind_first_index_gets_send_snapshot() -> None:
    """§7: 'the leader must occasionally send snapshots to followers that lag behind'."""
    c = Cluster([1, 2, 3], seed=4)
    leader = c.elect()
    lagger = [i for i in (1, 2, 3) if i != leader][0]
    c.crash(lagger)
    for _ in range(40):
        c.propose(b"x")
    c.run(300)
    c.take_snapshot(leader)
    c.restart(lagger)
    c.run(1000)
    assert any(
        isinstance(e, SendSnapshot) and e.node_id == lagger for e in c.servers[leader].events
    )
    assert c[lagger].snapshot is not None
    assert c.servers[lagger].state == c.servers[leader].state
    assert c[lagger].commit_index == c[leader].commit_index


def test_install_snapshot_keeps_following_entries_when_terms_match() -> None:
    """§7: 'If ... the follower receives a snapshot that describes a prefix of its log ... entries following the snapshot are retained'."""
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [entry(1, i) for i in range(1, 9)], commit=2))
    drain(raft)
    assert raft.begin_load_snapshot(1, 5, MEMBERS, leader_term=1, leader_id=2)
    raft.end_load_snapshot()
    rd = drain(raft)
    assert rd.compact_upto == 5 and rd.truncate_from is None
    assert raft.first_index == 6 and raft.current_index == 8
    assert raft.commit_index == 5


def test_install_snapshot_discards_log_when_terms_differ() -> None:
    """§7: 'Usually the snapshot will contain new information not already in the recipient's log. In this case, the follower discards its entire log'."""
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [entry(1, i) for i in range(1, 9)], commit=2))
    drain(raft)
    assert raft.begin_load_snapshot(2, 5, MEMBERS, leader_term=2, leader_id=3)
    raft.end_load_snapshot()
    rd = drain(raft)
    assert rd.truncate_from == 3 and rd.compact_upto == 5
    assert raft.current_index == 5 and raft.last_log_term == 2


def test_stale_snapshot_is_refused() -> None:
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [entry(1, i) for i in range(1, 6)], commit=5))
    drain(raft)
    assert not raft.begin_load_snapshot(1, 4, MEMBERS, leader_term=1, leader_id=2)
    assert raft.current_index == 5


def test_snapshot_never_moves_term_backwards() -> None:
    raft = make(1)
    raft.recv(2, ae(7, 0, 0, []))
    drain(raft)
    assert raft.begin_load_snapshot(3, 10, MEMBERS, leader_term=7, leader_id=2)
    raft.end_load_snapshot()
    assert raft.term == 7


def test_loaded_snapshot_replaces_configuration() -> None:
    raft = make(1)
    members = Membership((NodeConfig(1, True), NodeConfig(2, True), NodeConfig(5, False, b"x")))
    assert raft.begin_load_snapshot(1, 3, members, leader_term=1, leader_id=2)
    raft.end_load_snapshot()
    assert raft.membership() == members


def test_membership_entries_after_snapshot_apply_on_restore() -> None:
    import random

    from traft.core import Config, Raft, SnapshotMeta, membership_data

    e = Entry(2, 6, 1, EntryType.ADD_NONVOTING_NODE, membership_data(9, b"n9"))
    raft = Raft.restore(
        1,
        Config(),
        random.Random(1),
        term=2,
        voted_for=None,
        entries=[e],
        snapshot=SnapshotMeta(5, 2, MEMBERS),
    )
    node = raft.node(9)
    assert node is not None and not node.voting
    assert raft.commit_index == 5 and raft.first_index == 6


def test_load_snapshot_checks_the_leaders_term() -> None:
    # Issue 10, hardening: begin_load_snapshot carries the sending leader's term
    # and treats it as any message from that leader would.
    raft = make(1)
    raft.recv(2, ae(3, 0, 0, [], leader=2))
    drain(raft)
    assert raft.term == 3
    # A stale leader's snapshot is refused and changes nothing.
    assert not raft.begin_load_snapshot(2, 10, MEMBERS, leader_term=2, leader_id=3)
    assert (raft.term, raft.commit_index, raft.snapshot) == (3, 0, None)
    assert not raft.snapshot_in_progress
    # A snapshot whose term is above the sender's term is malformed: refused.
    assert not raft.begin_load_snapshot(5, 10, MEMBERS, leader_term=4, leader_id=3)
    assert raft.term == 3
    # A newer leader's snapshot: its term is adopted (and persisted), the vote reset.
    assert raft.begin_load_snapshot(4, 10, MEMBERS, leader_term=5, leader_id=3)
    raft.end_load_snapshot()
    assert (raft.term, raft.voted_for, raft.leader_id) == (5, None, 3)
    rd = drain(raft)
    assert rd.hard_state is not None and rd.hard_state.term == 5


def test_load_snapshot_from_a_newer_leader_makes_a_leader_step_down() -> None:
    raft = make(1)
    elect(raft)
    assert not raft.begin_load_snapshot(1, 50, MEMBERS, leader_term=raft.term, leader_id=2)
    assert raft.is_leader
    assert raft.begin_load_snapshot(1, 50, MEMBERS, leader_term=raft.term + 1, leader_id=2)
    raft.end_load_snapshot()
    assert raft.role is Role.FOLLOWER and raft.leader_id == 2 and raft.commit_index == 50
    candidate = make(2, pre_vote=False)
    candidate.periodic(5000)
    drain(candidate)
    assert candidate.role is Role.CANDIDATE
    assert candidate.begin_load_snapshot(1, 7, MEMBERS, leader_term=candidate.term, leader_id=3)
    candidate.end_load_snapshot()
    assert candidate.role is Role.FOLLOWER and candidate.leader_id == 3
