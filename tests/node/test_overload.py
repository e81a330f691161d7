"""Offered load beyond what the cluster commits: the leader's backlog stays bounded.

Many client tasks call ``submit`` in a loop, far more than the bound lets
in, for several election timeouts of virtual time (datagrams take 10 ms,
so commits take virtual time too). The leader admits proposals only while
the entries it has not applied plus the proposals listed for the core fit
in ``max_unapplied``; the others wait for room. So the backlog never
exceeds the bound, admitted proposals are answered instead of timing out
behind a backlog, commits go on in every window of time (goodput never
drops to 0), the followers keep hearing the leader (no election), and every
acknowledged increment is applied on every node.
"""

from __future__ import annotations

import random
from pathlib import Path

import trio

import net
from tests.node.test_node import harness
from traft.node.errors import NodeError, Overloaded, ProposalTimeout

CLIENTS = 60
BOUND = 20
WINDOW = 0.1  # seconds of virtual time per goodput sample


async def test_the_backlog_stays_bounded_and_commits_go_on_under_overload(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        faults = net.FaultInjector(random.Random(1))
        faults.set(delay_ms=(10, 10))
        h.network = net.MemoryNetwork(cluster_id=net.cluster_id_from("test"), faults=faults)
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        assert leader.raft is not None
        leader._proposals.max_unapplied = BOUND
        term = leader.raft.term
        elections = {i: n.counters.elections for i, n in h.nodes.items()}
        seconds = 4 * h.config.timing.election_timeout_ms / 1000
        windows = int(seconds / WINDOW)
        acked = [0] * (windows + 1)
        start = trio.current_time()
        timed_out = 0

        async def client() -> None:
            nonlocal timed_out
            while True:
                try:
                    await leader.submit(b"1", timeout=1.0)
                except Overloaded:
                    pass  # never proposed: no room within its deadline (allowed)
                except ProposalTimeout:
                    timed_out += 1  # admitted, and not answered in time
                except NodeError:
                    await trio.sleep(0.01)
                else:
                    acked[int((trio.current_time() - start) / WINDOW)] += 1

        async with trio.open_nursery() as clients:
            for _ in range(CLIENTS):
                clients.start_soon(client)
            await trio.sleep(windows * WINDOW)
            clients.cancel_scope.cancel()

        assert leader._proposals.peak_unapplied <= BOUND
        assert timed_out == 0
        assert all(n > 0 for n in acked[:windows]), acked  # goodput in every window
        assert leader.raft.term == term and leader.raft.is_leader
        assert {i: n.counters.elections for i, n in h.nodes.items()} == elections
        # Every acknowledged increment reaches every state machine.
        commit = leader.raft.commit_index
        with trio.fail_after(5):
            while min(n.metrics_status().applied_index for n in h.nodes.values()) < commit:
                await trio.sleep(0.05)
        counts = {m.count for m in h.machines.values()}
        assert len(counts) == 1 and counts.pop() >= sum(acked)


async def test_a_cluster_stopped_under_overload_restarts_and_catches_up(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        faults = net.FaultInjector(random.Random(2))
        faults.set(delay_ms=(10, 10))
        h.network = net.MemoryNetwork(cluster_id=net.cluster_id_from("test"), faults=faults)
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        leader._proposals.max_unapplied = BOUND
        acked = 0

        async def client() -> None:
            nonlocal acked
            while True:
                try:
                    await leader.submit(b"1", timeout=1.0)
                except NodeError:
                    await trio.sleep(0.01)
                else:
                    acked += 1

        async with trio.open_nursery() as clients:
            for _ in range(CLIENTS):
                clients.start_soon(client)
            await trio.sleep(1.0)
            # Stop every node with the backlog full, clients still waiting.
            for i in (1, 2, 3):
                h.kill(i)
            clients.cancel_scope.cancel()
        assert acked > 0
        await trio.sleep(0.1)  # the killed nodes finish stopping (and unlock their directories)
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        assert leader.raft is not None
        end = leader.raft.current_index
        with trio.fail_after(5):
            while min(n.metrics_status().applied_index for n in h.nodes.values()) < end:
                await trio.sleep(0.05)
        assert min(m.count for m in h.machines.values()) >= acked
