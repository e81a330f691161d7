"""Reads on followers (ReadIndex forwarded, thesis §6.4) and lease reads (§6.4.1)."""

from __future__ import annotations

import pytest

from traft.core import (
    AppendEntries,
    AppendEntriesResponse,
    Config,
    LeaderChanged,
    LeaderNotReady,
    NotLeader,
    Raft,
    ReadIndex,
    ReadIndexResponse,
    ReadLost,
    ReadReady,
)

from .helpers import drain, elect, elect_and_commit, heartbeat, make, sent
from .net import Net

T = 1000


def reads_of(net: Net, node_id: int, since_ms: int = 0) -> list[object]:
    return [
        e
        for t, n, e in net.events
        if n == node_id and t >= since_ms and isinstance(e, ReadReady | ReadLost)
    ]


def test_follower_read_gets_the_leaders_commit_index() -> None:
    """§6.4: "followers could also help offload the processing of read-only
    queries ... the follower could issue a request to the leader that just
    asked for a current readIndex"."""
    net = Net()
    leader = net.elect()
    for k in range(5):
        net[leader].recv_entry(b"w%d" % k)
    net.step()
    follower = min(i for i in net.rafts if i != leader)
    start = net.now_ms
    net[follower].read_index("r1")
    net.step()
    net.step()
    assert reads_of(net, follower, start) == [ReadReady("r1", net[leader].commit_index)]


def test_follower_reads_join_the_leaders_heartbeat_round() -> None:
    """Every read waiting, the leader's own and forwarded ones, is confirmed by
    one heartbeat round."""
    raft = make(1)
    elect_and_commit(raft)
    seq = raft._role.seq  # type: ignore[union-attr]  # the leader role's heartbeat round
    raft.read_index("own")
    raft.recv(2, ReadIndex(term=raft.term, read_id=11))
    raft.recv(3, ReadIndex(term=raft.term, read_id=12))
    rd = drain(raft)
    beats = sent(rd, kind=AppendEntries)
    assert len(beats) == 2 and all(isinstance(m, AppendEntries) and m.seq == seq + 1 for m in beats)
    raft.recv(
        2,
        AppendEntriesResponse(
            term=raft.term, success=True, current_index=1, commit_index=1, seq=seq + 1
        ),
    )
    rd = drain(raft)
    assert rd.events == [ReadReady("own", 1)]
    assert sent(rd, to=2) == [ReadIndexResponse(term=raft.term, read_id=11, index=1, success=True)]
    assert sent(rd, to=3) == [ReadIndexResponse(term=raft.term, read_id=12, index=1, success=True)]


def test_follower_without_a_leader_raises_not_leader_none() -> None:
    raft = make(2)
    with pytest.raises(NotLeader) as info:
        raft.read_index("r")
    assert info.value.leader_id is None


def test_new_leader_refuses_forwarded_reads_until_ready() -> None:
    """§6.4 step 1: a leader that has not committed an entry of its term does
    not know the commit index; the follower's read is lost, to be retried."""
    raft = make(1)
    elect(raft)
    with pytest.raises(LeaderNotReady):
        raft.read_index("own")
    raft.recv(2, ReadIndex(term=raft.term, read_id=5))
    assert sent(drain(raft), to=2) == [
        ReadIndexResponse(term=raft.term, read_id=5, index=0, success=False)
    ]


def follower_with_read() -> tuple[Raft, int]:
    raft = make(2)
    raft.recv(1, heartbeat(3))
    drain(raft)
    raft.read_index("r")
    (ask,) = sent(drain(raft), to=1)
    assert isinstance(ask, ReadIndex) and ask.term == 3
    return raft, ask.read_id


def test_forwarded_read_answered_refused_or_duplicated() -> None:
    raft, read_id = follower_with_read()
    raft.recv(1, ReadIndexResponse(term=3, read_id=read_id, index=7, success=True))
    raft.recv(1, ReadIndexResponse(term=3, read_id=read_id, index=7, success=True))
    assert drain(raft).events == [ReadReady("r", 7)]
    raft, read_id = follower_with_read()
    raft.recv(1, ReadIndexResponse(term=3, read_id=read_id, index=0, success=False))
    assert drain(raft).events == [ReadLost("r")]


def test_forwarded_read_lost_when_the_leader_changes() -> None:
    raft, _ = follower_with_read()
    raft.recv(3, heartbeat(4, leader=3))
    assert ReadLost("r") in drain(raft).events


def test_forwarded_read_lost_without_an_answer_within_an_election_timeout() -> None:
    raft, _ = follower_with_read()
    for _ in range(9):
        raft.periodic(100)
        raft.recv(1, heartbeat(3))
        assert ReadLost("r") not in drain(raft).events
    raft.periodic(100)
    assert ReadLost("r") in drain(raft).events


# -- lease reads (§6.4.1) ------------------------------------------------------------


def test_lease_config_is_validated() -> None:
    with pytest.raises(ValueError, match="requires check_quorum"):
        Config(lease_reads=True, check_quorum=False)
    with pytest.raises(ValueError, match="election_timeout_ms > lease_drift_ms"):
        Config(lease_reads=True, election_timeout_ms=300, request_timeout_ms=50, lease_drift_ms=300)
    assert Config(lease_reads=True, lease_drift_ms=150).lease_ms == 850


def test_lease_reads_are_answered_without_a_round() -> None:
    """§6.4.1: "the leader would use the normal heartbeat mechanism to maintain
    a lease ... it would then reply to read-only queries without any
    additional communication"."""
    net = Net(lease_reads=True)
    leader = net.elect()
    net.run(300)
    raft = net[leader]
    raft.read_index("lease")
    rd = raft.ready()
    raft.advance(rd)
    assert rd.events == [ReadReady("lease", raft.commit_index)] and not rd.messages
    follower = min(i for i in net.rafts if i != leader)
    net[follower].read_index("fwd")
    net.pump()
    assert reads_of(net, follower)[-1] == ReadReady("fwd", raft.commit_index)


def test_cut_off_leader_stops_lease_reads_before_anyone_else_can_be_elected() -> None:
    """§6.4.1: the lease must end before "a new leader could be elected" —
    which the others' stickiness (§4.2.3) delays for an election timeout
    after they last heard from the leader."""
    net = Net(lease_reads=True, lease_drift_ms=100)
    leader = net.elect()
    net.run(1000)
    cut_at = net.now_ms
    net.isolated.add(leader)
    last_lease_read = None
    n = 0
    while net.now_ms < cut_at + 5 * T:
        net.step()
        n += 1
        raft = net[leader]
        if raft.is_leader and raft.log.term_at(raft.commit_index) == raft.term:
            raft.read_index(n)
            rd = raft.ready()
            raft.advance(rd)
            if ReadReady(n, raft.commit_index) in rd.events:
                last_lease_read = net.now_ms
    elected = [t for t, node_id in _elections(net) if t > cut_at and node_id != leader]
    assert elected, "the majority elects a new leader"
    assert last_lease_read is not None and last_lease_read > cut_at  # the lease was used
    assert last_lease_read < min(elected)
    # And by a margin: the lease is at most election_timeout - drift past the
    # last round a majority answered.
    assert min(elected) - last_lease_read >= 100


def _elections(net: Net) -> list[tuple[int, int]]:
    return [
        (t, node_id)
        for t, node_id, e in net.events
        if isinstance(e, LeaderChanged) and e.leader_id == node_id
    ]
