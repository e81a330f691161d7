"""The core's public API: local misuse raises typed errors; accessors tell the truth."""

from __future__ import annotations

import random

import pytest

from traft.core import (
    AppendEntriesResponse,
    Config,
    Entry,
    EntryResponse,
    EntryStatus,
    EntryType,
    Membership,
    MembershipError,
    NodeConfig,
    NotLeader,
    Raft,
    ReadLost,
    ReadReady,
    Ready,
    RequestVoteResponse,
    Role,
    SnapshotInProgress,
    SnapshotMeta,
    membership_change,
    membership_data,
)
from traft.core.quorum import quorum_index
from traft.sim import Cluster

from .helpers import drain, elect, make
from .test_paper import ae, entry


def test_config_validates_its_values() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Config(election_timeout_ms=0)
    with pytest.raises(ValueError, match="below election_timeout_ms"):
        Config(election_timeout_ms=100, request_timeout_ms=100)


def test_rng_is_required_and_must_be_a_random_instance() -> None:
    with pytest.raises(TypeError):
        Raft(1, Config(), 7)  # type: ignore[arg-type]


def test_add_node_is_self_must_match() -> None:
    raft = Raft(1, Config(), random.Random(1))
    with pytest.raises(ValueError, match="is_self"):
        raft.add_node(2, is_self=True)
    with pytest.raises(ValueError, match="is_self"):
        raft.add_node(1)


def test_periodic_refuses_negative_time() -> None:
    with pytest.raises(ValueError):
        make(1).periodic(-1)


def test_non_voter_cannot_campaign() -> None:
    raft = make(4, ids=(1, 2, 3))
    raft.add_non_voting_node(4)
    with pytest.raises(MembershipError):
        raft.campaign()
    raft.periodic(10_000)
    assert raft.role is Role.FOLLOWER


def test_campaign_starts_an_election_and_single_voter_wins_at_once() -> None:
    raft = make(1, ids=(1,))
    raft.campaign()
    assert raft.role is Role.LEADER and raft.is_leader and raft.is_member()
    raft.campaign()  # a leader campaigning is a no-op
    assert raft.term == 1


def test_ready_twice_without_advance_raises() -> None:
    raft = make(1)
    raft.periodic(5000)
    raft.ready()
    with pytest.raises(RuntimeError):
        raft.ready()


def test_ready_is_falsy_when_empty() -> None:
    assert not Ready()
    assert Ready(compact_upto=3)


def test_entry_status_pending_committed_lost() -> None:
    raft = make(1)
    elect(raft)
    resp = raft.recv_entry(b"x")
    drain(raft)
    assert raft.entry_status(resp) is EntryStatus.PENDING
    raft.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=2, commit_index=0, seq=1)
    )
    assert raft.entry_status(resp) is EntryStatus.COMMITTED
    # Beyond our log: another server may still hold it and commit it.
    assert raft.entry_status(EntryResponse(1, 0, 99)) is EntryStatus.PENDING
    # Another entry is committed at the index: lost for good.
    assert raft.entry_status(EntryResponse(resp.id, 7, resp.index)) is EntryStatus.LOST


def test_entry_status_after_compaction_is_lost_unless_checkable() -> None:
    c = Cluster([1, 2, 3], seed=31)
    leader = c.elect()
    raft = c[leader]
    resp = raft.recv_entry(b"x")
    c.run(300)
    for _ in range(5):
        c.propose(b"y")
    c.run(300)
    c.take_snapshot(leader)
    assert raft.entry_status(resp) is EntryStatus.LOST


def test_recv_entries_with_ids_and_mismatched_ids() -> None:
    raft = make(1)
    elect(raft)
    resps = raft.recv_entries([b"a", b"b"], ids=[10, 11])
    assert [r.id for r in resps] == [10, 11]
    assert raft.recv_entry(b"c", id=12).id == 12
    with pytest.raises(ValueError):
        raft.recv_entries([b"a"], ids=[1, 2])


def test_read_index_on_follower_raises_and_single_voter_reads_at_once() -> None:
    raft = make(2)
    with pytest.raises(NotLeader):
        raft.read_index("r")
    solo = make(1, ids=(1,))
    solo.campaign()
    drain(solo)
    drain(solo)
    solo.read_index("r")
    assert ReadReady("r", solo.commit_index) in drain(solo).events


def test_pending_reads_are_lost_when_leadership_is_lost() -> None:
    raft = make(1)
    elect(raft)
    raft.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=1, commit_index=0, seq=1)
    )
    raft.read_index("r")
    raft.recv(2, RequestVoteResponse(term=5, vote_granted=False))
    assert raft.role is Role.FOLLOWER
    assert ReadLost("r") in drain(raft).events


def test_check_quorum_leader_steps_down_without_majority() -> None:
    raft = make(1)
    elect(raft)
    raft.periodic(1000)
    raft.periodic(1000)
    assert raft.role is Role.FOLLOWER and raft.leader_id is None


def test_leader_refuses_to_load_snapshot_and_stale_or_busy_loads() -> None:
    members = Membership((NodeConfig(1, True), NodeConfig(2, True), NodeConfig(3, True)))
    raft = make(1)
    elect(raft)
    assert not raft.begin_load_snapshot(1, 50, members, leader_term=raft.term, leader_id=2)
    follower = make(2)
    follower.recv(1, ae(1, 0, 0, [entry(1, 1), entry(1, 2)], commit=2, leader=1))
    drain(follower)
    follower.recv(1, ae(1, 2, 1, [entry(1, 3)], commit=3, leader=1))
    drain(follower)
    assert follower.last_applied == 3
    follower.begin_snapshot()
    with pytest.raises(SnapshotInProgress):
        follower.begin_snapshot()
    with pytest.raises(SnapshotInProgress):
        follower.begin_load_snapshot(1, 9, members, leader_term=1, leader_id=1)


def test_restore_validates_its_pieces() -> None:
    members = Membership((NodeConfig(1, True),))
    with pytest.raises(ValueError, match="after the snapshot"):
        Raft.restore(
            1,
            Config(),
            random.Random(1),
            term=1,
            voted_for=None,
            entries=[],
            snapshot=SnapshotMeta(5, 1, members),
            base_index=7,
            base_term=1,
        )
    with pytest.raises(ValueError, match="right after"):
        Raft.restore(
            1,
            Config(),
            random.Random(1),
            term=1,
            voted_for=None,
            entries=[entry(1, 3)],
            membership=members,
        )
    with pytest.raises(ValueError, match="contiguous"):
        Raft.restore(
            1,
            Config(),
            random.Random(1),
            term=1,
            voted_for=None,
            entries=[entry(1, 1), entry(1, 3)],
            membership=members,
        )


def test_restore_after_own_committed_removal_does_not_campaign() -> None:
    members = Membership((NodeConfig(2, True), NodeConfig(3, True)))
    raft = Raft.restore(
        1,
        Config(),
        random.Random(1),
        term=1,
        voted_for=None,
        entries=[],
        snapshot=SnapshotMeta(4, 1, members),
    )
    assert not raft.is_member()
    raft.periodic(10_000)
    assert raft.role is Role.FOLLOWER


def test_membership_bytes_round_trip_and_garbage() -> None:
    m = Membership((NodeConfig(1, True, b"a"), NodeConfig(9, False, b"")))
    assert Membership.from_bytes(m.to_bytes()) == m
    assert m.voters == {1}
    for bad in (b"", b"\x00\x00\x00\x02", m.to_bytes() + b"x", m.to_bytes()[:-1]):
        with pytest.raises(ValueError):
            Membership.from_bytes(bad)


def test_membership_change_decoding() -> None:
    e = Entry(1, 1, 1, EntryType.ADD_NODE, membership_data(7, b"ctx"))
    assert membership_change(e) == (7, b"ctx")
    with pytest.raises(ValueError):
        membership_change(Entry(1, 1, 1, EntryType.NORMAL, b""))
    with pytest.raises(ValueError):
        membership_change(Entry(1, 1, 1, EntryType.ADD_NODE, b"\x00"))


def test_malformed_membership_entry_changes_nothing() -> None:
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [Entry(1, 1, 1, EntryType.REMOVE_NODE, b"\x01")]))
    drain(raft)
    assert raft.voters() == [1, 2, 3]


def test_cannot_remove_last_voter() -> None:
    raft = make(1, ids=(1,))
    raft.campaign()
    drain(raft)
    drain(raft)
    with pytest.raises(MembershipError, match="last voting"):
        raft.propose_membership(EntryType.REMOVE_NODE, 1)


def test_adding_a_node_on_the_leader_starts_replicating_to_it() -> None:
    raft = make(1)
    elect(raft)
    raft.add_non_voting_node(9)
    assert 9 in raft.progress()
    assert "Progress(node=9" in repr(raft.progress()[9])


def test_quorum_index_of_nothing_is_zero() -> None:
    assert quorum_index([]) == 0
    assert quorum_index([5, 3, 1]) == 3


def test_repr_names_role_and_indexes() -> None:
    raft = make(1)
    assert "follower" in repr(raft) and "term=0" in repr(raft)
