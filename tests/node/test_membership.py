"""Membership of running nodes on the less-travelled paths (issue 10, bugs 1, 4, 5).

Real :class:`~traft.node.node.Node`s on ``net.MemoryNetwork`` (with a fault
injector for partitions) under trio's autojump clock.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import net
from tests.kv.asgi import call
from tests.node.test_node import Harness, cluster_config
from traft.core import Config, EntryType, Membership, NodeConfig, Raft
from traft.kv.http import KVApp
from traft.kv.state import KVStore
from traft.node.errors import MemberChangeError, NoLeaderError, ProposalLost, ProposalTimeout
from traft.node.members import MemberChanges
from traft.node.node import Node
from traft.node.waiters import MemberChange, covered_by_snapshot


@asynccontextmanager
async def faulty_harness(tmp: Path, n: int = 3, **kw: Any) -> AsyncIterator[Harness]:
    """The node tests' harness on a network that can be partitioned (``h.network.faults``)."""
    async with trio.open_nursery() as nursery:
        h = Harness(tmp, cluster_config(n, **kw), nursery)
        h.network = net.MemoryNetwork(
            cluster_id=net.cluster_id_from("test"), faults=net.FaultInjector(random.Random(0))
        )
        try:
            yield h
        finally:
            nursery.cancel_scope.cancel()


def faults(h: Harness) -> net.FaultInjector:
    assert h.network.faults is not None
    return h.network.faults


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


class Outcome:
    """What a background call returned or raised, and when."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.at = 0.0

    async def run(self, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            self.result = await call()
        except Exception as exc:
            self.error = exc
        self.at = trio.current_time()
        self.done.set()


async def isolated_leader_then_snapshot_catch_up(
    h: Harness, start_call: Callable[[Node, int], Callable[[], Awaitable[Any]]]
) -> tuple[Node, int, Outcome, float]:
    """Three nodes; the leader starts a call while cut off from the others,
    who elect a new leader, commit 60 entries (snapshotting every 20) and
    heal; the old leader catches up by snapshot. Returns the old leader, the
    follower the call named, the call's outcome and the time of the heal."""
    for i in (1, 2, 3):
        await h.start(i)
    await h.submit(b"1")
    old = await h.leader()
    others = [i for i in (1, 2, 3) if i != old.id]
    victim = others[0]
    faults(h).partition([old.id], others)
    outcome = Outcome()
    h.nursery.start_soon(outcome.run, start_call(old, victim))
    await trio.sleep(0.1)
    assert old.raft is not None and old.raft.current_index > old.raft.commit_index

    def new_leader() -> Node | None:
        leaders = [h.nodes[i] for i in others if h.nodes[i].raft and h.nodes[i].raft.is_leader]
        return leaders[0] if leaders else None

    await until(lambda: new_leader() is not None)
    leader = new_leader()
    assert leader is not None
    for _ in range(60):
        await leader.submit(b"1")
    assert leader.raft is not None and leader.raft.first_index > old.raft.current_index
    healed = trio.current_time()
    faults(h).heal()
    await until(lambda: old.counters.snapshots_installed >= 1)
    with trio.fail_after(60):
        await outcome.done.wait()
    return old, victim, outcome, healed


# -- bug 1: a lost membership change is not reported done ---------------------------


async def test_removal_lost_to_a_new_leader_is_not_reported_done(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with faulty_harness(tmp_path, snapshot_entries=20) as h:

        def remove(old: Node, victim: int) -> Callable[[], Awaitable[None]]:
            return lambda: old.remove_member(victim, timeout=120)

        old, victim, outcome, _ = await isolated_leader_then_snapshot_catch_up(h, remove)
        assert isinstance(outcome.error, ProposalLost), outcome.error
        assert f"node {victim} is still a member" in str(outcome.error)
        for node in h.nodes.values():
            assert node.raft is not None and victim in node.raft.voters()


async def test_proposal_covered_by_an_installed_snapshot_fails_at_once(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with faulty_harness(tmp_path, snapshot_entries=20) as h:

        def submit(old: Node, victim: int) -> Callable[[], Awaitable[int]]:
            return lambda: old.submit(b"1000", timeout=120)

        old, _, outcome, healed = await isolated_leader_then_snapshot_catch_up(h, submit)
        # Never a success; failed as soon as the snapshot settled it, not at the deadline.
        assert isinstance(outcome.error, ProposalLost | ProposalTimeout), outcome.error
        assert "snapshot" in str(outcome.error)
        assert outcome.at - healed < 10
        await until(lambda: {m.total for m in h.machines.values()} == {61})


# -- bug 4: a removed id cannot be added again -----------------------------------------


async def test_readding_a_removed_id_is_refused_end_to_end(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with faulty_harness(tmp_path, n=4, join=[4]) as h:
        for i in (1, 2, 3, 4):
            await h.start(i)
        leader = await h.leader()
        await leader.add_member(4, ("127.0.0.1", 7004), ("127.0.0.1", 8004))
        await leader.remove_member(4)
        with trio.fail_after(5):
            await h.nodes[4].removed.wait()
        await h.submit(b"1")
        await trio.sleep(1)
        leader = await h.leader()
        assert leader.raft is not None
        before = leader.raft.membership()
        assert before.removed == frozenset({4})
        index = leader.raft.current_index

        with pytest.raises(MemberChangeError, match="node 4 was removed.*new id"):
            await leader.add_member(4, ("127.0.0.1", 7004), ("127.0.0.1", 8004))
        app = KVApp(leader, KVStore())
        body = json.dumps({"id": 4, "peer": "127.0.0.1:7004", "http": "127.0.0.1:8004"})
        r = await call(app, "POST", "/members", body.encode())
        assert r.status == 409
        assert "node 4 was removed" in r.json()["error"] and "new id" in r.json()["error"]

        await trio.sleep(1)
        assert leader.raft.current_index == index
        for i in (1, 2, 3):
            raft = h.nodes[i].raft
            assert raft is not None and raft.membership() == before
            assert raft.voters() == [1, 2, 3]


# -- bug 5: a removal learnt through a snapshot stops the node ---------------------------


async def test_node_removed_while_away_learns_it_from_a_snapshot(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with faulty_harness(tmp_path, snapshot_entries=20) as h:
        for i in (1, 2, 3):
            await h.start(i)
        await h.submit(b"1")
        leader = await h.leader()
        away = next(i for i in (1, 2, 3) if i != leader.id)
        h.kill(away)
        await leader.remove_member(away)
        for _ in range(60):
            await h.submit(b"1")
        assert leader.raft is not None and leader.raft.first_index > 10
        node = await h.start(away)
        with trio.fail_after(30):
            await node.removed.wait()
        assert node.counters.snapshots_installed == 1
        assert node.raft is not None and not node.raft.is_member()


def test_a_proposal_covered_by_a_snapshot_is_never_a_success() -> None:
    # One leader per term, which never drops its own entries: a snapshot
    # ending in the proposal's term holds it; one ending in an older term
    # cannot; after a newer term nobody here can tell.
    assert isinstance(covered_by_snapshot(3, 2), ProposalLost)
    committed = covered_by_snapshot(3, 3)
    assert isinstance(committed, ProposalTimeout) and "committed" in str(committed)
    unknown = covered_by_snapshot(3, 4)
    assert isinstance(unknown, ProposalTimeout) and "outcome unknown" in str(unknown)


@pytest.mark.parametrize(
    ("kind", "node_id", "term", "fate"),
    [
        (EntryType.REMOVE_NODE, 3, 1, True),  # among the removed ids
        (EntryType.REMOVE_NODE, 2, 1, ProposalLost),  # still a member
        (EntryType.ADD_NONVOTING_NODE, 4, 1, True),  # a member
        (EntryType.ADD_NONVOTING_NODE, 3, 1, True),  # added, since removed
        (EntryType.ADD_NONVOTING_NODE, 5, 1, ProposalLost),
        (EntryType.ADD_NODE, 1, 1, True),
        (EntryType.ADD_NODE, 4, 1, ProposalLost),  # does not vote
        # The configuration cannot tell (a snapshot without removed ids): the terms.
        (EntryType.REMOVE_NODE, 9, 2, True),
        (EntryType.REMOVE_NODE, 9, 3, ProposalLost),
        (EntryType.REMOVE_NODE, 9, 1, ProposalTimeout),
    ],
)
def test_a_membership_change_covered_by_a_snapshot_is_judged_by_its_configuration(
    kind: EntryType, node_id: int, term: int, fate: bool | type[Exception]
) -> None:
    raft = Raft(1, Config(), random.Random(1))
    members = Membership(
        (NodeConfig(1, True), NodeConfig(2, True), NodeConfig(4, False)), frozenset({3})
    )
    assert raft.begin_load_snapshot(2, 10, members, leader_term=2)
    raft.end_load_snapshot()
    changes = MemberChanges(NoLeaderError)
    change = MemberChange(kind, node_id, b"", False)
    change.index, change.term = 5, term
    got = changes._entry_fate(raft, 10, change)
    if fate is True:
        assert got is True
    else:
        assert isinstance(fate, type) and isinstance(got, fate)


async def test_traft_member_add_of_a_removed_id_exits_1_with_the_way_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Real time (the CLI runs in a thread): a founding node and a joiner.
    from traft import cli
    from traft.kv.server import serve_http

    with trio.fail_after(60):
        async with faulty_harness(tmp_path, n=2, join=[2]) as h:
            for i in (1, 2):
                await h.start(i)
            leader = await h.leader()
            assert leader.id == 1
            await leader.add_member(2, ("127.0.0.1", 7002), ("127.0.0.1", 8002))
            await leader.remove_member(2)
            shutdown = trio.Event()
            app = KVApp(leader, KVStore())
            host, port = await h.nursery.start(
                functools.partial(serve_http, app, "127.0.0.1", 0, shutdown=shutdown)
            )
            argv = ["member", "add", "2", "127.0.0.1:7002", "127.0.0.1:8002"]
            argv += ["--url", f"http://{host}:{port}", "--retry-for", "5"]
            status = await trio.to_thread.run_sync(cli.main, argv)
            shutdown.set()
            err = capsys.readouterr().err
            assert status == 1
            assert "409" in err and "node 2 was removed" in err and "new id" in err
            assert leader.raft is not None and leader.raft.voters() == [1]


# -- leadership lost between an addition's two entries (whole-node sim, seed 50) ------


async def test_addition_whose_leader_falls_before_the_promotion_is_not_a_failure(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    # The non-voting entry commits, then the leader is cut off before node 4
    # has caught up; the next leader promotes node 4. The call must not fail
    # as if nothing happened (NoLeaderError): it waits for the promotion.
    async with faulty_harness(tmp_path, n=4, join=[4]) as h:
        for i in (1, 2, 3):
            await h.start(i)
        await h.submit(b"1")
        old = await h.leader()
        assert old.raft is not None
        outcome = Outcome()
        h.nursery.start_soon(
            outcome.run,
            lambda: old.add_member(4, ("127.0.0.1", 7004), ("127.0.0.1", 8004), timeout=120),
        )
        raft = old.raft
        await until(lambda: raft.node(4) is not None and raft.commit_index == raft.current_index)
        others = [i for i in (1, 2, 3) if i != old.id]
        faults(h).partition([old.id], others)
        await until(lambda: any(h.nodes[i].raft and h.nodes[i].raft.is_leader for i in others))
        await until(lambda: not raft.is_leader)
        assert not outcome.done.is_set(), outcome.error
        await h.start(4)
        faults(h).heal()
        with trio.fail_after(60):
            await outcome.done.wait()
        assert outcome.error is None, outcome.error
        for node in h.nodes.values():
            assert node.raft is not None and node.raft.voters() == [1, 2, 3, 4]
