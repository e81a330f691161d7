"""Helpers for driving single cores by hand in tests."""

from __future__ import annotations

import random

from traft.core import AppendEntries, Config, Message, Raft, Ready

CONFIG = Config(election_timeout_ms=1000, request_timeout_ms=100)


def make(
    node_id: int = 1, ids: tuple[int, ...] = (1, 2, 3), seed: int = 0, **config: object
) -> Raft:
    """A fresh server whose voting members are ``ids``."""
    cfg = Config(**{"election_timeout_ms": 1000, "request_timeout_ms": 100, **config})  # type: ignore[arg-type]
    raft = Raft(node_id, cfg, random.Random(seed))
    for i in ids:
        raft.add_node(i, is_self=i == node_id)
    return raft


def drain(raft: Raft) -> Ready:
    """Take one Ready and acknowledge it as fully persisted."""
    rd = raft.ready()
    raft.advance(rd)
    return rd


def sent(rd: Ready, to: int | None = None, kind: type | None = None) -> list[Message]:
    return [
        m
        for dst, m in rd.messages
        if (to is None or dst == to) and (kind is None or isinstance(m, kind))
    ]


def elect(raft: Raft) -> Ready:
    """Make ``raft`` leader by timing out and granting every (pre-)vote; returns the Ready."""
    from traft.core import PreVoteResponse, RequestVoteResponse, Role

    raft.periodic(2 * raft.config.election_timeout_ms)
    drain(raft)
    if raft.config.pre_vote and raft.role is Role.FOLLOWER:
        for peer in raft.voters():
            if peer != raft.id:
                raft.recv(peer, PreVoteResponse(term=raft.term + 1, vote_granted=True))
        drain(raft)
    for peer in raft.voters():
        if peer != raft.id:
            raft.recv(peer, RequestVoteResponse(term=raft.term, vote_granted=True))
    assert raft.role is Role.LEADER
    return drain(raft)


def elect_and_commit(raft: Raft) -> Ready:
    """Make ``raft`` leader and commit its no-op (every peer acknowledges it)."""
    elect(raft)
    for peer in raft.voters():
        if peer != raft.id:
            ack(raft, peer)
    assert raft.commit_index == raft.current_index
    return drain(raft)


def heartbeat(term: int, leader: int = 1) -> AppendEntries:
    """An empty AppendEntries from ``leader`` in ``term`` (prev index 0, commit 0)."""
    return AppendEntries(
        term=term,
        leader_id=leader,
        prev_log_index=0,
        prev_log_term=0,
        entries=(),
        leader_commit=0,
        seq=1,
    )


def ack(raft: Raft, peer: int) -> None:
    """``peer`` reports it holds the leader's whole log."""
    from traft.core import AppendEntriesResponse

    raft.recv(
        peer,
        AppendEntriesResponse(
            term=raft.term,
            success=True,
            current_index=raft.current_index,
            commit_index=0,
            seq=0,
        ),
    )
