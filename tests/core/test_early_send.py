"""Thesis §10.2.1: the leader may send AppendEntries before its own fsync ends."""

from __future__ import annotations

from tests.core.helpers import elect_and_commit, make, sent
from traft.core import AppendEntries, AppendEntriesResponse


def test_leader_counts_its_own_copy_only_once_durable() -> None:
    """ "The leader can write to its disk in parallel with replicating to the followers
    ... the leader may even commit an entry before it has been written to its own
    disk, if a majority of followers have written it" (thesis §10.2.1): its own
    copy counts only once durable."""
    raft = make(1, (1, 2, 3))
    elect_and_commit(raft)
    index = raft.recv_entry(b"x").index
    rd = raft.ready()  # the entry to persist and the AppendEntries that may leave early
    assert rd.entries and rd.hard_state is None and rd.truncate_from is None
    assert sent(rd, to=2, kind=AppendEntries)
    ack = AppendEntriesResponse(
        term=raft.term, success=True, current_index=index, commit_index=index - 1, seq=0
    )
    raft.recv(2, ack)
    assert raft.commit_index == index - 1  # one durable copy of three: not yet
    raft.advance(rd)
    assert raft.commit_index == index  # the leader's copy is durable now: two of three


def test_a_majority_of_followers_commits_without_the_leaders_disk() -> None:
    raft = make(1, (1, 2, 3))
    elect_and_commit(raft)
    index = raft.recv_entry(b"x").index
    rd = raft.ready()
    for peer in (2, 3):
        raft.recv(
            peer,
            AppendEntriesResponse(
                term=raft.term, success=True, current_index=index, commit_index=0, seq=0
            ),
        )
    assert raft.commit_index == index
    raft.advance(rd)


def test_an_ack_before_the_ready_commits_nothing_until_advance() -> None:
    """The leader's own copy counts from the ``advance()`` of the Ready that carried
    it, not from the proposal (the entry is in memory only) nor from ``ready()``
    (the driver may still be writing it, thesis §10.2.1)."""
    raft = make(1, (1, 2, 3, 4, 5))
    elect_and_commit(raft)
    index = raft.recv_entry(b"x").index
    ack = AppendEntriesResponse(
        term=raft.term, success=True, current_index=index, commit_index=index - 1, seq=0
    )
    # Two followers of four acknowledge (as if the entry had reached them by
    # another path): with the leader's copy that would be three of five.
    raft.recv(2, ack)
    raft.recv(3, ack)
    assert raft.commit_index == index - 1  # proposed, not even handed out
    rd = raft.ready()
    assert [e.index for e in rd.entries] == [index]
    assert raft.commit_index == index - 1  # handed out, not yet durable
    raft.advance(rd)
    assert raft.commit_index == index  # durable: three of five
