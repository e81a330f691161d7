"""Known failures of Raft libraries, one test each (see docs/regressions.md)."""

from __future__ import annotations

import random

import pytest

from traft.core import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    HardState,
    LeaderNotReady,
    Membership,
    NodeConfig,
    OneVotingChangeOnly,
    PreVote,
    PreVoteResponse,
    Raft,
    ReadReady,
    RemovedSelf,
    RequestVote,
    RequestVoteResponse,
    SendSnapshot,
    SnapshotMeta,
)
from traft.core.progress import ProgressState
from traft.sim import Cluster

from .helpers import drain, elect, elect_and_commit, make, sent
from .test_paper import ae, entry

MEMBERS = Membership((NodeConfig(1, True), NodeConfig(2, True), NodeConfig(3, True)))


def test_r01_append_with_prev_zero_after_compaction_does_not_reappend() -> None:
    raft = make(1)
    assert raft.begin_load_snapshot(1, 5, MEMBERS, leader_term=1, leader_id=2)
    raft.end_load_snapshot()
    drain(raft)
    raft.recv(2, ae(1, 0, 0, [entry(1, i) for i in range(1, 9)], commit=8))
    rd = drain(raft)
    assert [e.index for e in rd.entries] == [6, 7, 8]
    assert raft.first_index == 6 and raft.current_index == 8
    (resp,) = sent(rd, to=2)
    assert isinstance(resp, AppendEntriesResponse) and resp.success and resp.current_index == 8


def test_r02_failed_sends_to_one_peer_do_not_stop_another() -> None:
    c = Cluster([1, 2, 3], seed=21)
    leader = c.elect()
    dead, alive = [i for i in (1, 2, 3) if i != leader]
    c.network.block(leader, dead)  # every send to this peer fails
    for _ in range(10):
        c.propose(b"x")
    c.run(300)
    assert c[alive].commit_index == c[leader].current_index
    assert c[leader].commit_index == c[leader].current_index


def test_r03_removed_node_learns_of_removal_even_if_first_sends_were_lost() -> None:
    c = Cluster([1, 2, 3], seed=22)
    leader = c.elect()
    victim = [i for i in (1, 2, 3) if i != leader][0]
    c.network.block(leader, victim)
    c[leader].propose_membership(EntryType.REMOVE_NODE, victim)
    c.run(500)
    assert victim not in c[leader].voters()
    assert not c.servers[victim].removed
    c.network.heal()
    c.run(1000)
    assert c.servers[victim].removed
    assert any(isinstance(e, RemovedSelf) for e in c.servers[victim].events)


def test_r04_term_and_vote_are_persisted_together() -> None:
    raft = make(1, check_quorum=False, pre_vote=False)
    raft.recv(2, RequestVote(term=3, candidate_id=2, last_log_index=0, last_log_term=0))
    rd = drain(raft)
    assert rd.hard_state == HardState(3, 2)
    raft.periodic(5000)
    rd = drain(raft)
    assert rd.hard_state == HardState(4, 1)


def test_r05_stale_append_response_never_moves_indexes_backwards() -> None:
    raft = make(1)
    elect(raft)
    raft.recv_entries([b"a", b"b", b"c"])
    drain(raft)
    raft.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=4, commit_index=0, seq=1)
    )
    pr = raft.progress()[2]
    assert (pr.match_index, pr.next_index) == (4, 5)
    raft.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=2, commit_index=0, seq=1)
    )
    raft.recv(
        2, AppendEntriesResponse(term=1, success=False, current_index=1, commit_index=0, seq=0)
    )
    pr = raft.progress()[2]
    assert (pr.match_index, pr.next_index) == (4, 5)


def test_r06_commit_counts_voting_nodes_only() -> None:
    c = Cluster([1, 2, 3], seed=23, auto_promote=False)
    leader = c.elect()
    for n in (4, 5):
        c.add_server(n)
        c[leader].propose_membership(EntryType.ADD_NONVOTING_NODE, n)
        c.run(50)
    assert c[leader].voters() == [1, 2, 3]
    for n in (4, 5):
        c.crash(n)
    down = [i for i in (1, 2, 3) if i != leader][0]
    c.crash(down)
    _, index = c.propose(b"x")
    c.run(300)
    assert c[leader].commit_index >= index


def test_r07_request_vote_uses_snapshot_term_when_log_is_empty() -> None:
    raft = make(1)
    assert raft.begin_load_snapshot(4, 10, MEMBERS, leader_term=4, leader_id=2)
    raft.end_load_snapshot()
    drain(raft)
    raft.periodic(5000)
    rd = drain(raft)
    pre_votes = [m for _, m in rd.messages if isinstance(m, PreVote)]
    assert pre_votes and all(v.last_log_index == 10 and v.last_log_term == 4 for v in pre_votes)
    for peer in (2, 3):
        raft.recv(peer, PreVoteResponse(term=raft.term + 1, vote_granted=True))
    rd = drain(raft)
    votes = [m for _, m in rd.messages if isinstance(m, RequestVote)]
    assert votes and all(v.last_log_index == 10 and v.last_log_term == 4 for v in votes)


def test_r08_leader_finds_follower_that_compacted_ahead_of_it() -> None:
    # The follower loaded a snapshot at 10 (from an earlier leader); the new
    # leader has the full log and probes from its end.
    follower = make(2)
    assert follower.begin_load_snapshot(1, 10, MEMBERS, leader_term=1, leader_id=3)
    follower.end_load_snapshot()
    drain(follower)
    follower.recv(1, ae(2, 12, 2, [], leader=1))
    (resp,) = sent(drain(follower), to=1)
    assert isinstance(resp, AppendEntriesResponse) and not resp.success
    assert resp.current_index == 10
    follower.recv(1, ae(2, 10, 1, [entry(2, 11), entry(2, 12)], commit=12, leader=1))
    (resp,) = sent(drain(follower), to=1)
    assert isinstance(resp, AppendEntriesResponse) and resp.success and resp.current_index == 12
    assert follower.commit_index == 12


def test_r09_new_leader_serves_no_read_before_its_no_op_commits() -> None:
    raft = make(1)
    elect(raft)
    with pytest.raises(LeaderNotReady):
        raft.read_index("r1")
    raft.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=1, commit_index=0, seq=1)
    )
    raft.read_index("r1")
    rd = drain(raft)
    assert not [e for e in rd.events if isinstance(e, ReadReady)]
    seq = max(m.seq for _, m in rd.messages if hasattr(m, "seq"))
    raft.recv(
        3, AppendEntriesResponse(term=1, success=True, current_index=1, commit_index=1, seq=seq)
    )
    rd = drain(raft)
    assert ReadReady("r1", 1) in rd.events


def test_r10_remove_then_readd_of_same_node_cannot_race() -> None:
    raft = make(1, ids=(1, 2, 3, 4))
    elect_and_commit(raft)
    raft.propose_membership(EntryType.REMOVE_NODE, 4)
    with pytest.raises(OneVotingChangeOnly):
        raft.propose_membership(EntryType.ADD_NONVOTING_NODE, 4)


def test_r11_duplicated_request_vote_is_granted_again() -> None:
    raft = make(1, check_quorum=False)
    rv = RequestVote(term=2, candidate_id=3, last_log_index=0, last_log_term=0)
    raft.recv(3, rv)
    raft.recv(3, rv)
    rd = drain(raft)
    grants = [m for m in sent(rd, to=3) if isinstance(m, RequestVoteResponse)]
    assert [g.vote_granted for g in grants] == [True, True]


def test_r12_follower_commit_bounded_by_what_the_request_vouched_for() -> None:
    # The follower holds stale entries 2..3 of term 1; a heartbeat that only
    # vouches for index 1 must not commit them, whatever the leader's commit.
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [entry(1, 1), entry(1, 2), entry(1, 3)], leader=2))
    drain(raft)
    raft.recv(3, ae(2, 1, 1, [], commit=5, leader=3))
    assert raft.commit_index == 1


def test_r13_leader_counts_itself_only_once_durable() -> None:
    raft = make(1)
    elect(raft)
    raft.recv_entry(b"x")
    rd = raft.ready()  # entries handed out but not yet persisted
    raft.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=2, commit_index=0, seq=1)
    )
    raft.advance(rd)
    assert raft.commit_index == 2  # the follower and, now durable, the leader
    raft2 = make(1, ids=(1, 2, 3, 4, 5))
    elect(raft2)
    raft2.recv_entry(b"x")
    rd = raft2.ready()
    raft2.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=2, commit_index=0, seq=1)
    )
    raft2.recv(
        3, AppendEntriesResponse(term=1, success=True, current_index=1, commit_index=0, seq=1)
    )
    assert raft2.commit_index == 1  # index 2 is on 2 of 5 until the leader's fsync
    raft2.advance(rd)
    assert raft2.commit_index == 1


def test_r14_restore_refuses_a_log_that_contradicts_its_snapshot() -> None:
    # Issue 10, bug 2: a crash between saving an installed snapshot (20, term 2)
    # and dropping the old tail left entries of term 1 after it; restore took
    # them, and the server then voted for candidates lacking the committed (20, 2).
    snap = SnapshotMeta(20, 2, MEMBERS)
    config = make(1).config

    def restore(entries: list[Entry], **kw: int) -> Raft:
        return Raft.restore(
            1,
            config,
            random.Random(0),
            term=2,
            voted_for=None,
            entries=entries,
            snapshot=snap,
            **kw,
        )

    with pytest.raises(ValueError, match="below"):
        restore([entry(1, 21), entry(1, 22)])
    with pytest.raises(ValueError, match="below"):
        restore([entry(1, 21)], base_index=20, base_term=2)
    with pytest.raises(ValueError, match="snapshot"):
        # Compacted below the snapshot (keep_entries): the entry at 20 disagrees.
        restore([entry(1, i) for i in range(16, 23)], base_index=15, base_term=1)
    with pytest.raises(ValueError):
        restore([entry(2, 21), entry(1, 22)])  # a term going backwards
    raft = restore([entry(2, 21), entry(3, 22)])
    assert (raft.current_index, raft.last_log_term) == (22, 3)
    raft = restore([entry(1, 19), entry(2, 20), entry(2, 21)], base_index=18, base_term=1)
    assert raft.log.term_at(20) == 2


class _SnapshotChase:
    """Leader 1, follower 2 faked (acknowledges everything), follower 3 a real core."""

    def __init__(self) -> None:
        self.leader = make(1, snapshot_resend_ms=1000)
        self.follower = make(3)
        self.follower_up = False
        self.snapshots_asked: list[SendSnapshot] = []

    def settle(self) -> None:
        leader, follower = self.leader, self.follower
        for _ in range(100):
            if not (leader.has_ready() or follower.has_ready()):
                return
            rd = drain(leader)
            self.snapshots_asked += [e for e in rd.events if isinstance(e, SendSnapshot)]
            for m in sent(rd, to=2, kind=AppendEntries):
                assert isinstance(m, AppendEntries)
                index = m.prev_log_index + len(m.entries)
                leader.recv(
                    2,
                    AppendEntriesResponse(
                        term=m.term, success=True, current_index=index, commit_index=0, seq=m.seq
                    ),
                )
            if self.follower_up:
                for m in sent(rd, to=3):
                    follower.recv(1, m)
                for m in sent(drain(follower), to=1):
                    leader.recv(3, m)
        raise AssertionError("did not settle")

    def heartbeats(self, n: int) -> None:
        for _ in range(n):
            self.leader.periodic(100)
            self.settle()

    def commit(self, n: int) -> None:
        self.leader.recv_entries([b"x"] * n)
        self.settle()
        assert self.leader.last_applied == self.leader.current_index


@pytest.mark.parametrize("resent", [False, True], ids=["in_flight", "resent_newer"])
def test_r16_follower_returns_to_replication_after_a_snapshot_install(resent: bool) -> None:
    # Issue 10, bug 3. While follower 3 loads snapshot 31, the leader snapshots
    # again (at 41, still holding 30..). In SNAPSHOT state the heartbeat probed
    # the leader's newest snapshot, not the one sent, and rejections were
    # ignored: the follower got snapshot after snapshot and never replicated.
    c = _SnapshotChase()
    leader, follower = c.leader, c.follower
    elect(leader)
    c.heartbeats(1)  # follower 2 answers the probe and replicates from here on
    c.commit(30)
    first = leader.begin_snapshot()
    leader.end_snapshot(keep_entries=5)
    assert (first.index, leader.first_index) == (31, 27)
    c.follower_up = True
    c.heartbeats(1)
    assert [(e.node_id, e.index) for e in c.snapshots_asked] == [(3, 31)]
    # The transfer of 31 takes a while; the leader goes on and snapshots again.
    c.commit(10)
    leader.begin_snapshot()
    leader.end_snapshot(keep_entries=12)
    assert leader.first_index == 30
    if resent:
        c.heartbeats(10)  # past snapshot_resend_ms: the leader asks again, for 41
        assert c.snapshots_asked[-1].index == 41
    asked = len(c.snapshots_asked)
    # Snapshot 31 arrives and is installed.
    assert follower.begin_load_snapshot(
        first.term, first.index, first.membership, leader_term=leader.term, leader_id=1
    )
    follower.end_load_snapshot()
    c.settle()
    c.heartbeats(15)
    assert len(c.snapshots_asked) == asked, "sent another snapshot after the install"
    assert leader.progress()[3].state is ProgressState.REPLICATE
    assert follower.current_index == leader.current_index == 41
    assert follower.commit_index == leader.commit_index
