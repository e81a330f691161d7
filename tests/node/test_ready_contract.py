"""The node keeps the Ready contract of traft.core.ready: persist, then send,
except a leader's AppendEntries, which may leave before its own fsync (thesis
§10.2.1) when the Ready neither changes the term or vote nor truncates."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from traft.core import Raft, Ready, Role
from traft.core.messages import AppendEntries
from traft.node.durable import Durable
from traft.node.node import Node
from traft.wire import WireMessage

from .test_node import harness


async def test_nothing_of_a_ready_is_sent_before_its_persist_returns(
    tmp_path: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 10, bug 11: traft/core/ready.py and traft/core/leader.py disagreed on
    # whether the leader may send before its fsync ends. The contract is now one
    # statement: only a leader's AppendEntries of a Ready without a hard-state
    # change or truncation may leave before the persist; votes, responses and
    # anything of a Ready that moves the term or vote wait for it.
    not_durable: set[int] = set()  # ids of messages whose Ready is not persisted yet
    may_leave_early: set[int] = set()  # of those, the ones the exception covers
    sent = {"ready": 0, "early": 0, "early_allowed": 0}
    ready, persist, send = Raft.ready, Durable.persist, Node._send_wire

    def ready_recording(self: Raft) -> Ready:
        rd = ready(self)
        storage_work = (
            rd.hard_state is not None
            or rd.entries
            or rd.truncate_from is not None
            or rd.compact_upto is not None
        )
        if storage_work:
            not_durable.update(id(m) for _, m in rd.messages)
            if rd.hard_state is None and rd.truncate_from is None and self.role is Role.LEADER:
                may_leave_early.update(
                    id(m) for _, m in rd.messages if isinstance(m, AppendEntries)
                )
        return rd

    def persist_recording(self: Durable, rd: Ready) -> None:
        persist(self, rd)
        not_durable.difference_update(id(m) for _, m in rd.messages)
        may_leave_early.difference_update(id(m) for _, m in rd.messages)

    def send_checking(self: Node, to: int, msg: WireMessage) -> None:
        sent["ready"] += 1
        if id(msg) in not_durable:
            if id(msg) in may_leave_early:
                sent["early_allowed"] += 1
            else:
                sent["early"] += 1
        send(self, to, msg)

    monkeypatch.setattr(Raft, "ready", ready_recording)
    monkeypatch.setattr(Durable, "persist", persist_recording)
    monkeypatch.setattr(Node, "_send_wire", send_checking)
    async with harness(tmp_path) as h:
        for i in (1, 2, 3):
            await h.start(i)
        for k in range(20):
            await h.submit(b"%d" % k)
        leader = await h.leader()
        h.kill(leader.id)
        await h.submit(b"1")  # a new election: votes are persisted too
    assert sent["ready"] > 0
    assert sent["early"] == 0, "a vote, a response or a term change left before its persist"
    # The exception is exercised, not just allowed: the leader's AppendEntries
    # overlap its own fsync.
    assert sent["early_allowed"] > 0
