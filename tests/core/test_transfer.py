"""Leadership transfer (Ongaro's thesis §3.10), as traft/core/transfer.py describes it."""

from __future__ import annotations

import pytest

from traft.core import (
    AppendEntriesResponse,
    EntryType,
    NotLeader,
    RaftError,
    RequestVote,
    Role,
    TimeoutNow,
    TransferAborted,
    TransferError,
    TransferFinished,
    TransferInProgress,
    TransferStarted,
)

from .helpers import drain, elect_and_commit, heartbeat, make, sent
from .net import Net

T = 1000


def transfer_events(net: Net, node_id: int) -> list[object]:
    kinds = (TransferStarted, TransferFinished, TransferAborted)
    return [e for _, n, e in net.events if n == node_id and isinstance(e, kinds)]


def test_transfer_succeeds_within_an_election_timeout() -> None:
    """§3.10: "the prior leader ... sends it a TimeoutNow request. This request
    causes the target server to start a new election immediately"."""
    net = Net()
    old = net.elect()
    net.run(500)
    target = max(i for i in net.rafts if i != old)
    term = net[old].term
    started = net.now_ms
    net[old].transfer_leadership(target)
    assert net[old].transfer_target == target
    net.run(300)
    assert net.leader() == target and net[target].term == term + 1
    assert net[old].role is Role.FOLLOWER and net[old].transfer_target is None
    assert transfer_events(net, old) == [TransferStarted(target), TransferFinished(target)]
    # Only the target campaigned, and it said why; no other election happened.
    votes = [m for t, src, _, m in net.sent if t >= started and isinstance(m, RequestVote)]
    assert votes and all(m.candidate_id == target and m.leader_transfer for m in votes)
    assert net.leaders_elected(since_ms=started) == [(term + 1, target)]


def test_transfer_wins_votes_despite_leader_stickiness() -> None:
    """Election rule 6: voters that heard from the leader a moment ago grant a
    transfer vote (§4.2.3 would make them ignore an ordinary one)."""
    voter = make(3)
    voter.recv(1, heartbeat(1))
    drain(voter)
    voter.recv(2, RequestVote(term=2, candidate_id=2, last_log_index=0, last_log_term=0))
    assert voter.term == 1 and not drain(voter).messages
    voter.recv(
        2,
        RequestVote(
            term=2, candidate_id=2, last_log_index=0, last_log_term=0, leader_transfer=True
        ),
    )
    assert voter.term == 2 and voter.voted_for == 2


def test_transfer_errors() -> None:
    follower = make(2)
    with pytest.raises(NotLeader):
        follower.transfer_leadership(3)
    raft = make(1, ids=(1, 2, 3))
    elect_and_commit(raft)
    raft.add_non_voting_node(4)
    cases = {
        1: "node 1 is already the leader",
        9: "node 9 is not a member of the cluster",
        4: "node 4 is a non-voting member; only a voter can lead",
    }
    for target, message in cases.items():
        with pytest.raises(TransferError, match=message):
            raft.transfer_leadership(target)
    raft.transfer_leadership(2)
    with pytest.raises(TransferError, match="transfer to node 2 is already in progress"):
        raft.transfer_leadership(3)
    assert issubclass(TransferError, RaftError)


def test_proposals_refused_during_transfer_then_resumed_after_timeout_abort() -> None:
    """§3.10: "the prior leader stops accepting new client requests" and "if
    the transfer does not complete within an election timeout, the prior
    leader aborts the transfer and resumes accepting client requests"."""
    raft = make(1)
    elect_and_commit(raft)
    drain(raft)
    raft.transfer_leadership(2)
    assert drain(raft).events == [TransferStarted(2)]
    for propose in (
        lambda: raft.recv_entry(b"x"),
        lambda: raft.recv_entries([b"x"]),
        lambda: raft.recv_entries_batch([b"x"]),
        lambda: raft.propose_membership(EntryType.ADD_NONVOTING_NODE, 7),
    ):
        with pytest.raises(TransferInProgress) as info:
            propose()
        assert isinstance(info.value, NotLeader) and info.value.leader_id is None
        assert info.value.target == 2
    # Node 2 never answers; the leader keeps heartbeating to all (check-quorum
    # is kept by node 3's answers).
    for _ in range(T // 100 - 1):
        raft.periodic(100)
        raft.recv(
            3,
            AppendEntriesResponse(
                term=raft.term, success=True, current_index=1, commit_index=1, seq=0
            ),
        )
        assert not [e for e in drain(raft).events if isinstance(e, TransferAborted)]
    raft.periodic(100)
    assert drain(raft).events == [
        TransferAborted(2, f"not finished within the election timeout ({T} ms)")
    ]
    assert raft.transfer_target is None and raft.role is Role.LEADER
    raft.recv_entry(b"resumed")


def test_lagging_target_is_caught_up_before_timeout_now() -> None:
    """§3.10: "the prior leader fully updates the target server's log to match
    its own" — TimeoutNow goes only once the target's match index is the
    leader's last index."""
    net = Net()
    leader = net.elect()
    target = max(i for i in net.rafts if i != leader)
    net.isolated.add(target)
    for k in range(20):
        net[leader].recv_entry(b"w%d" % k)
        net.step()
    # 3 nodes: the leader and the other follower commit without the target.
    assert net[target].current_index < net[leader].current_index
    # Heal only the target's link at the moment of the transfer.
    net.isolated.clear()
    started = net.now_ms
    net[leader].transfer_leadership(target)
    last = net[leader].current_index
    net.run(400)
    timeouts = [(t, m) for t, src, dst, m in net.sent if t >= started and isinstance(m, TimeoutNow)]
    assert timeouts
    # Every TimeoutNow was sent at a time the target already had every entry.
    answers = [
        (t, m.current_index)
        for t, src, dst, m in net.sent
        if t >= started and src == target and isinstance(m, AppendEntriesResponse) and m.success
    ]
    first_caught_up = min(t for t, index in answers if index == last)
    assert all(t >= first_caught_up for t, _ in timeouts)
    assert net.leader() == target
    assert net[target].log.slice(1, last + 1) == net[leader].log.slice(1, last + 1)
    assert transfer_events(net, leader)[-1] == TransferFinished(target)


def test_transfer_aborted_when_leadership_is_lost() -> None:
    """A leader that steps down for another reason than its target's election
    (here check-quorum, thesis §6.2) gives the transfer up."""
    raft = make(1)
    elect_and_commit(raft)
    raft.periodic(T)  # the answers to the election count for this check-quorum round
    drain(raft)
    raft.transfer_leadership(2)
    drain(raft)
    raft.periodic(T)  # nobody answered for an election timeout
    rd = drain(raft)
    assert raft.role is Role.FOLLOWER
    assert TransferAborted(2, "leadership was lost") in rd.events
    # Leadership lost to the check-quorum before the transfer's own timeout.
    assert not [e for e in rd.events if isinstance(e, TransferAborted) and "timeout" in e.reason]


def test_transfer_aborted_when_another_server_becomes_leader() -> None:
    """The target campaigned (the leader stepped down for it) but lost; the
    prior leader hears from someone else as leader."""
    raft = make(1)
    elect_and_commit(raft)
    raft.transfer_leadership(2)
    drain(raft)
    term = raft.term
    raft.recv(
        2,
        RequestVote(
            term=term + 1,
            candidate_id=2,
            last_log_index=raft.current_index,
            last_log_term=term,
            leader_transfer=True,
        ),
    )
    assert raft.role is Role.FOLLOWER and raft.transfer_target == 2  # handed off, waiting
    drain(raft)
    raft.recv(3, heartbeat(term + 2, leader=3))
    assert TransferAborted(2, "node 3 became leader instead") in drain(raft).events
    assert raft.transfer_target is None


def test_transfer_aborted_when_the_target_stops_being_a_voter() -> None:
    """The target must stay a voting member. Through the log this cannot
    change under a transferring leader (membership proposals are refused, and
    a node whose removal is appended is no longer a member, so the transfer
    is refused up front); through the configuration API it can."""
    raft = make(1)
    elect_and_commit(raft)
    raft.propose_membership(EntryType.REMOVE_NODE, 3)
    drain(raft)
    with pytest.raises(TransferError, match="node 3 is not a member"):
        raft.transfer_leadership(3)
    other = make(1)
    elect_and_commit(other)
    other.transfer_leadership(2)
    drain(other)
    other.add_non_voting_node(2)
    assert drain(other).events == [TransferAborted(2, "node 2 is no longer a voting member")]
    assert other.transfer_target is None
    other.recv_entry(b"resumed")


def test_target_campaigns_at_once_on_timeout_now_without_pre_vote() -> None:
    """Election rule 6: TimeoutNow skips the pre-vote round."""
    target = make(2)
    target.recv(1, heartbeat(1))
    drain(target)
    target.recv(1, TimeoutNow(term=1, leader_id=1))
    rd = drain(target)
    assert target.role is Role.CANDIDATE and target.term == 2
    votes = sent(rd, kind=RequestVote)
    assert votes and all(isinstance(v, RequestVote) and v.leader_transfer for v in votes)
    # A stale TimeoutNow (an earlier term) is ignored.
    target.recv(1, TimeoutNow(term=1, leader_id=1))
    assert target.term == 2


def test_lease_is_given_up_for_the_term_once_a_transfer_starts() -> None:
    """The target's election bypasses stickiness, so the lease argument
    (thesis §6.4.1) no longer holds: reads go through heartbeat rounds."""
    net = Net(lease_reads=True)
    leader = net.elect()
    net.run(300)
    assert net[leader].lease_remaining_ms() > 0
    net.isolated.update(i for i in net.rafts if i != leader)
    net[leader].transfer_leadership(max(i for i in net.rafts if i != leader))
    assert net[leader].lease_remaining_ms() == 0
    net.run(T + 10)  # the transfer times out
    net.isolated.clear()
    net.run(300)
    if net.leader() == leader:
        assert net[leader].lease_remaining_ms() == 0
