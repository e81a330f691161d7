"""Client overload must not starve the peers: heartbeats and votes get through.

The leader is flooded with client calls (many tasks calling submit in a
loop, more than its client queue holds) for several election timeouts of
virtual time. Peer datagrams have their own queue, drained first, so the
followers keep hearing the leader and the leader keeps hearing a majority
(check-quorum): no election, the same term, the same leader.
"""

from __future__ import annotations

import random
from pathlib import Path

import trio

import net
from tests.node.test_node import harness
from traft.node.errors import NodeError

FLOODERS = 32


async def test_client_flood_does_not_starve_heartbeats_or_votes(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path) as h:
        faults = net.FaultInjector(random.Random(1))
        faults.set(delay_ms=(10, 10))  # virtual time passes while datagrams travel
        h.network = net.MemoryNetwork(cluster_id=net.cluster_id_from("test"), faults=faults)
        for i in (1, 2, 3):
            await h.start(i)
        leader = await h.leader()
        assert leader.raft is not None
        # Small client queues, so that the flood overflows them within a few calls.
        leader._proposals.max_unapplied = 8
        leader._inbox.client_capacity = 16
        term = leader.raft.term
        elections = {i: n.counters.elections for i, n in h.nodes.items()}
        election_timeout_s = h.config.timing.election_timeout_ms / 1000
        committed = 0
        refused = 0

        async def flood() -> None:
            nonlocal committed, refused
            while True:
                try:
                    await leader.submit(b"1", timeout=1.0)
                    committed += 1
                except NodeError:
                    refused += 1
                    await trio.sleep(0.01)

        async with trio.open_nursery() as clients:
            for _ in range(FLOODERS):
                clients.start_soon(flood)
            await trio.sleep(4 * election_timeout_s)
            clients.cancel_scope.cancel()

        assert committed > FLOODERS  # the flood did go through the leader
        assert leader.raft.term == term
        assert leader.raft.is_leader
        assert {i: n.counters.elections for i, n in h.nodes.items()} == elections
        assert leader.counters.inbox_overflow == 0
        assert refused == 0
