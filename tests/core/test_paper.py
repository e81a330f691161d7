"""The rules of the Raft paper's Figure 2 and §5.4, one test each.

Each test quotes the sentence it checks (Ongaro & Ousterhout 2014). The
paper's elections have no pre-vote (thesis §9.6, tests/core/test_prevote.py):
the election tests here turn it off.
"""

from __future__ import annotations

from traft.core import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    NotLeader,
    RequestVote,
    RequestVoteResponse,
    Role,
)
from traft.sim import Cluster

from .helpers import drain, elect, make, sent


def entry(term: int, index: int, data: bytes = b"x") -> Entry:
    return Entry(term, index, index * 1000 + term, EntryType.NORMAL, data)


def ae(
    term: int, prev: int, prev_term: int, entries: list[Entry], commit: int = 0, leader: int = 2
) -> AppendEntries:
    return AppendEntries(
        term=term,
        leader_id=leader,
        prev_log_index=prev,
        prev_log_term=prev_term,
        entries=tuple(entries),
        leader_commit=commit,
        seq=1,
    )


# -- Rules for all servers ------------------------------------------------------


def test_apply_committed_entries_in_order_exactly_once() -> None:
    """'If commitIndex > lastApplied: increment lastApplied, apply log[lastApplied]'."""
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [entry(1, 1), entry(1, 2), entry(1, 3)], commit=2))
    rd = drain(raft)
    assert [e.index for e in rd.committed] == [1, 2]
    raft.recv(2, ae(1, 3, 1, [], commit=3))
    rd = drain(raft)
    assert [e.index for e in rd.committed] == [3]
    raft.recv(2, ae(1, 3, 1, [], commit=3))
    assert drain(raft).committed == []
    assert raft.last_applied == 3


def test_higher_term_in_any_message_converts_to_follower() -> None:
    """'If RPC request or response contains term T > currentTerm: set currentTerm = T, convert to follower'."""
    raft = make(1)
    elect(raft)
    raft.recv(
        3, AppendEntriesResponse(term=7, success=False, current_index=0, commit_index=0, seq=0)
    )
    assert raft.role is Role.FOLLOWER
    assert raft.term == 7
    assert raft.voted_for is None


# -- Followers -------------------------------------------------------------------


def test_follower_election_timeout_starts_election() -> None:
    """'If election timeout elapses without receiving AppendEntries ... convert to candidate'."""
    raft = make(1, pre_vote=False)
    raft.periodic(999)
    assert raft.role is Role.FOLLOWER
    raft.periodic(1001)
    assert raft.role is Role.CANDIDATE


def test_append_entries_from_leader_resets_election_timer() -> None:
    """Followers remain followers as long as they receive valid RPCs from a leader (§5.2)."""
    raft = make(1)
    for _ in range(30):
        raft.periodic(900)
        raft.recv(2, ae(1, 0, 0, []))
        drain(raft)
    assert raft.role is Role.FOLLOWER
    assert raft.leader_id == 2


def test_election_timeout_is_randomised_in_t_to_2t() -> None:
    """'election timeouts are chosen randomly from a fixed interval' ([T, 2T) here)."""
    timeouts = set()
    for seed in range(40):
        raft = make(1, seed=seed, pre_vote=False)
        elapsed = 0
        while raft.role is Role.FOLLOWER:
            raft.periodic(1)
            elapsed += 1
        assert 1000 <= elapsed < 2000
        timeouts.add(elapsed)
    assert len(timeouts) > 10


# -- Candidates ------------------------------------------------------------------


def test_candidate_increments_term_votes_for_self_and_requests_votes() -> None:
    """'On conversion to candidate: increment currentTerm, vote for self, ... send RequestVote RPCs to all other servers'."""
    raft = make(1, ids=(1, 2, 3), pre_vote=False)
    raft.periodic(2000)
    rd = drain(raft)
    assert raft.term == 1 and raft.voted_for == 1
    assert rd.hard_state is not None and rd.hard_state.voted_for == 1
    votes = sent(rd, kind=RequestVote)
    assert sorted(dst for dst, m in rd.messages if isinstance(m, RequestVote)) == [2, 3]
    assert all(isinstance(m, RequestVote) and m.term == 1 for m in votes)


def test_candidate_with_majority_of_votes_becomes_leader() -> None:
    """'If votes received from majority of servers: become leader'."""
    raft = make(1, ids=(1, 2, 3, 4, 5), pre_vote=False)
    raft.periodic(2000)
    drain(raft)
    raft.recv(2, RequestVoteResponse(term=1, vote_granted=True))
    assert raft.role is Role.CANDIDATE
    raft.recv(3, RequestVoteResponse(term=1, vote_granted=False))
    raft.recv(2, RequestVoteResponse(term=1, vote_granted=True))  # duplicate counts once
    assert raft.role is Role.CANDIDATE
    raft.recv(4, RequestVoteResponse(term=1, vote_granted=True))
    assert raft.role is Role.LEADER


def test_candidate_receiving_append_entries_from_new_leader_becomes_follower() -> None:
    """'If AppendEntries RPC received from new leader: convert to follower'."""
    raft = make(1, pre_vote=False)
    raft.periodic(2000)
    assert raft.role is Role.CANDIDATE
    raft.recv(2, ae(1, 0, 0, []))
    assert raft.role is Role.FOLLOWER and raft.leader_id == 2


def test_candidate_election_timeout_starts_new_election() -> None:
    """'If election timeout elapses: start new election'."""
    raft = make(1, pre_vote=False)
    raft.periodic(2000)
    assert raft.term == 1
    raft.periodic(2000)
    assert raft.role is Role.CANDIDATE and raft.term == 2


# -- Leaders ---------------------------------------------------------------------


def test_new_leader_sends_append_entries_with_a_no_op() -> None:
    """'Upon election: send initial empty AppendEntries RPCs (heartbeat)'; §8: a blank no-op entry."""
    raft = make(1)
    rd = elect(raft)
    assert [e.type for e in rd.entries] == [EntryType.NO_OP]
    to = sorted(dst for dst, m in rd.messages if isinstance(m, AppendEntries))
    assert to == [2, 3]


def test_leader_sends_heartbeats_during_idle_periods() -> None:
    """'repeat during idle periods to prevent election timeouts'."""
    raft = make(1)
    elect(raft)
    raft.periodic(100)
    rd = drain(raft)
    assert sorted(dst for dst, m in rd.messages if isinstance(m, AppendEntries)) == [2, 3]


def test_client_command_is_appended_to_local_log() -> None:
    """'If command received from client: append entry to local log'."""
    raft = make(1)
    elect(raft)
    resp = raft.recv_entry(b"cmd")
    rd = drain(raft)
    assert rd.entries[-1].data == b"cmd" and rd.entries[-1].index == resp.index


def test_follower_refuses_proposals_naming_the_leader() -> None:
    """Clients must be redirected to the leader (§8)."""
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, []))
    try:
        raft.recv_entry(b"x")
    except NotLeader as exc:
        assert exc.leader_id == 2
    else:
        raise AssertionError("follower accepted a proposal")


def test_leader_backs_up_next_index_on_inconsistency_and_retries() -> None:
    """'If AppendEntries fails because of log inconsistency: decrement nextIndex and retry'."""
    c = Cluster([1, 2, 3], seed=3)
    leader = c.elect()
    for _ in range(5):
        c.propose(b"a")
    c.run(200)
    follower = [i for i in (1, 2, 3) if i != leader][0]
    c.crash(follower)
    for _ in range(20):
        c.propose(b"b")
    c.run(200)
    c.restart(follower)
    c.run(500)
    assert c[follower].current_index == c[leader].current_index
    assert c.servers[follower].state == c.servers[leader].state


def test_commit_index_advances_by_majority_of_current_term() -> None:
    """'If there exists an N > commitIndex such that a majority of matchIndex[i] >= N, and log[N].term == currentTerm: set commitIndex = N'."""
    raft = make(1, ids=(1, 2, 3))
    elect(raft)
    raft.recv_entry(b"x")
    drain(raft)
    assert raft.commit_index == 0
    raft.recv(
        2, AppendEntriesResponse(term=1, success=True, current_index=2, commit_index=0, seq=0)
    )
    assert raft.commit_index == 2


# -- AppendEntries receiver ----------------------------------------------------


def test_append_entries_reply_false_if_term_lower() -> None:
    """AppendEntries receiver 1: 'Reply false if term < currentTerm'."""
    raft = make(1)
    raft.recv(2, ae(3, 0, 0, []))
    drain(raft)
    raft.recv(3, ae(2, 0, 0, [entry(2, 1)], leader=3))
    rd = drain(raft)
    (resp,) = sent(rd, to=3)
    assert isinstance(resp, AppendEntriesResponse) and not resp.success and resp.term == 3
    assert raft.current_index == 0


def test_append_entries_reply_false_if_prev_entry_missing_or_mismatched() -> None:
    """AppendEntries receiver 2: 'Reply false if log doesn't contain an entry at prevLogIndex whose term matches prevLogTerm'."""
    raft = make(1)
    raft.recv(2, ae(2, 0, 0, [entry(1, 1)]))
    drain(raft)
    raft.recv(2, ae(2, 5, 2, [entry(2, 6)]))
    (resp,) = sent(drain(raft), to=2)
    assert isinstance(resp, AppendEntriesResponse) and not resp.success and resp.current_index == 1
    raft.recv(2, ae(2, 1, 2, [entry(2, 2)]))
    (resp,) = sent(drain(raft), to=2)
    assert isinstance(resp, AppendEntriesResponse) and not resp.success
    assert raft.current_index == 1


def test_conflicting_entry_deletes_it_and_all_that_follow() -> None:
    """AppendEntries receiver 3: 'If an existing entry conflicts with a new one, delete the existing entry and all that follow it'."""
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [entry(1, 1), entry(1, 2), entry(1, 3)], leader=2))
    drain(raft)
    raft.recv(3, ae(2, 1, 1, [entry(2, 2)], leader=3))
    rd = drain(raft)
    assert rd.truncate_from == 2
    assert raft.current_index == 2 and raft.log.term_at(2) == 2


def test_append_any_new_entries_not_already_in_log() -> None:
    """AppendEntries receiver 4: 'Append any new entries not already in the log'."""
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [entry(1, 1), entry(1, 2)]))
    drain(raft)
    raft.recv(2, ae(1, 0, 0, [entry(1, 1), entry(1, 2), entry(1, 3)]))
    rd = drain(raft)
    assert rd.truncate_from is None
    assert [e.index for e in rd.entries] == [3]


def test_commit_is_min_of_leader_commit_and_last_new_entry() -> None:
    """AppendEntries receiver 5: 'set commitIndex = min(leaderCommit, index of last new entry)'."""
    raft = make(1)
    raft.recv(2, ae(1, 0, 0, [entry(1, 1), entry(1, 2)], commit=10))
    assert raft.commit_index == 2


# -- RequestVote receiver --------------------------------------------------------


def test_request_vote_reply_false_if_term_lower() -> None:
    """RequestVote receiver 1: 'Reply false if term < currentTerm'."""
    raft = make(1)
    raft.recv(2, ae(5, 0, 0, []))
    drain(raft)
    raft.recv(3, RequestVote(term=4, candidate_id=3, last_log_index=9, last_log_term=4))
    (resp,) = sent(drain(raft), to=3)
    assert isinstance(resp, RequestVoteResponse) and not resp.vote_granted and resp.term == 5


def test_request_vote_granted_once_per_term() -> None:
    """RequestVote receiver 2: 'If votedFor is null or candidateId ... grant vote'."""
    raft = make(1, check_quorum=False)
    raft.recv(2, RequestVote(term=1, candidate_id=2, last_log_index=0, last_log_term=0))
    (r2,) = sent(drain(raft), to=2)
    raft.recv(3, RequestVote(term=1, candidate_id=3, last_log_index=0, last_log_term=0))
    (r3,) = sent(drain(raft), to=3)
    assert isinstance(r2, RequestVoteResponse) and r2.vote_granted
    assert isinstance(r3, RequestVoteResponse) and not r3.vote_granted


def test_vote_denied_to_candidate_with_less_up_to_date_log() -> None:
    """§5.4.1: 'the voter denies its vote if its own log is more up-to-date than that of the candidate'."""
    raft = make(1, check_quorum=False)
    raft.recv(2, ae(2, 0, 0, [entry(1, 1), entry(2, 2)]))
    drain(raft)
    # Lower last term loses even with a longer log.
    raft.recv(3, RequestVote(term=3, candidate_id=3, last_log_index=9, last_log_term=1))
    (resp,) = sent(drain(raft), to=3)
    assert isinstance(resp, RequestVoteResponse) and not resp.vote_granted
    # Same last term but shorter log loses.
    raft.recv(3, RequestVote(term=4, candidate_id=3, last_log_index=1, last_log_term=2))
    (resp,) = sent(drain(raft), to=3)
    assert isinstance(resp, RequestVoteResponse) and not resp.vote_granted
    # At least as up-to-date wins.
    raft.recv(3, RequestVote(term=5, candidate_id=3, last_log_index=2, last_log_term=2))
    (resp,) = sent(drain(raft), to=3)
    assert isinstance(resp, RequestVoteResponse) and resp.vote_granted


def test_vote_and_term_are_persisted_before_the_response_is_sent() -> None:
    """'Updated on stable storage before responding to RPCs' (persistent state)."""
    raft = make(1, check_quorum=False)
    raft.recv(2, RequestVote(term=4, candidate_id=2, last_log_index=0, last_log_term=0))
    rd = drain(raft)
    assert rd.hard_state is not None
    assert (rd.hard_state.term, rd.hard_state.voted_for) == (4, 2)
    assert sent(rd, to=2)


# -- §5.4 ------------------------------------------------------------------------


def test_leader_never_commits_previous_term_entries_by_counting_replicas() -> None:
    """§5.4.2: 'Raft never commits log entries from previous terms by counting replicas' (Figure 8)."""
    raft = make(1, ids=(1, 2, 3), pre_vote=False)
    raft.recv(2, ae(2, 0, 0, [entry(2, 1)], leader=2))  # an entry of term 2, uncommitted
    drain(raft)
    raft.periodic(2000)
    drain(raft)
    raft.recv(3, RequestVoteResponse(term=3, vote_granted=True))
    assert raft.role is Role.LEADER
    drain(raft)
    # Follower 3 acknowledges only index 1 (the old-term entry), not the no-op.
    raft.recv(
        3, AppendEntriesResponse(term=3, success=True, current_index=1, commit_index=0, seq=0)
    )
    assert raft.commit_index == 0
    raft.recv(
        3, AppendEntriesResponse(term=3, success=True, current_index=2, commit_index=0, seq=0)
    )
    assert raft.commit_index == 2


def test_leader_completeness_in_simulated_failover() -> None:
    """§5.4: 'if a log entry is committed in a given term, then that entry will be present in the logs of the leaders for all higher-numbered terms'."""
    c = Cluster([1, 2, 3, 4, 5], seed=11)
    first = c.elect()
    committed = []
    for i in range(10):
        _, index = c.propose(b"v%d" % i)
        committed.append(index)
    c.run(300)
    assert c[first].commit_index >= committed[-1]
    snapshot = [c[first].log.get(i) for i in committed]
    c.crash(first)
    c.run(3000)
    second = c.leader()
    assert second is not None and second != first
    assert [c[second].log.get(i) for i in committed] == snapshot


def test_recv_entries_batch_numbers_entries_like_recv_entries() -> None:
    import random as _random

    from traft.core import Config, Raft

    def leader() -> Raft:
        raft = Raft(1, Config(), _random.Random(7))
        raft.add_node(1, is_self=True)
        raft.campaign()
        assert raft.is_leader
        return raft

    a, b = leader(), leader()
    responses = a.recv_entries([b"x", b"y", b"z"])
    term, first = b.recv_entries_batch([b"x", b"y", b"z"])
    assert [(r.term, r.index) for r in responses] == [(term, first + k) for k in range(3)]
    assert a.log.slice(first, first + 3) == b.log.slice(first, first + 3)
