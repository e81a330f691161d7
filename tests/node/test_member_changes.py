"""traft.node.members.MemberChanges alone, over a real single-node core (no node, no trio)."""

from __future__ import annotations

import random
from typing import Any

from traft.core import Config, EntryType, Membership, NodeConfig, Raft
from traft.node.errors import MemberChangeError, NodeError, NodeStopped, NoLeaderError
from traft.node.members import MemberChanges
from traft.node.waiters import MemberChange

Outcomes = list[tuple[Any, BaseException | None]]


def core(*, leader: bool = True) -> Raft:
    raft = Raft.restore(
        1,
        Config(),
        random.Random(1),
        term=0,
        voted_for=None,
        entries=[],
        snapshot=None,
        membership=Membership((NodeConfig(1, True),)),
    )
    if leader:
        raft.periodic(10 * Config().election_timeout_ms)  # a single voter elects itself
        settle(raft)
    return raft


def settle(raft: Raft) -> None:
    """Persist and apply everything at once (the node's Ready cycle, minus I/O)."""
    while raft.has_ready():
        raft.advance(raft.ready())


def change(kind: EntryType, node_id: int, outcomes: Outcomes, *, promote: bool) -> MemberChange:
    waiter = MemberChange(kind, node_id, b"", promote)
    waiter.callback = lambda result, error: outcomes.append((result, error))
    return waiter


def not_leader() -> NodeError:
    return NoLeaderError()


def test_a_change_is_answered_once_its_own_entry_is_applied() -> None:
    raft = core()
    changes = MemberChanges(not_leader)
    outcomes: Outcomes = []
    changes.start(raft, change(EntryType.ADD_NONVOTING_NODE, 2, outcomes, promote=False))
    assert changes
    changes.check(raft, raft.last_applied)  # appended, not yet applied
    assert outcomes == [] and changes
    settle(raft)
    changes.check(raft, raft.last_applied)
    assert outcomes == [(None, None)] and not changes


def test_changes_the_core_refuses_fail_at_once() -> None:
    changes = MemberChanges(not_leader)
    outcomes: Outcomes = []
    changes.start(core(leader=False), change(EntryType.REMOVE_NODE, 2, outcomes, promote=False))
    changes.start(core(), change(EntryType.ADD_NONVOTING_NODE, 1, outcomes, promote=False))
    assert isinstance(outcomes[0][1], NoLeaderError)
    assert isinstance(outcomes[1][1], MemberChangeError)  # node 1 is a member already
    assert not changes


def test_an_addition_waits_for_its_promotion_to_commit() -> None:
    raft = core()
    changes = MemberChanges(not_leader)
    outcomes: Outcomes = []
    changes.start(raft, change(EntryType.ADD_NONVOTING_NODE, 2, outcomes, promote=True))
    settle(raft)
    changes.check(raft, raft.last_applied)
    assert outcomes == []  # added, not yet voting
    changes.caught_up(raft, 2)  # NodeHasSufficientLogs: ADD_NODE is proposed
    node = raft.node(2)
    assert node is not None and node.voting and raft.voting_change_in_progress()
    settle(raft)
    changes.check(raft, raft.last_applied)
    assert outcomes == []  # the promotion needs node 2's own answer to commit
    changes.fail_all(NodeStopped("stopped"))
    assert len(outcomes) == 1 and isinstance(outcomes[0][1], NodeStopped)
