"""A node joins a cluster whose founding members have all been replaced.

Regression (found by scripts/nemesis, 5 nodes, 600 s): a joining node knew the
addresses of the founding members only (``join = false`` in its cluster.toml).
Once every founding member had been replaced, it heard the leader's
AppendEntries and snapshot chunks but had no route to answer them, so it never
caught up (the leader gave up on its snapshot again and again).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from traft.kv.client import Client
from traft.kv.localcluster import LocalCluster
from traft.node.config import SnapshotPolicy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def add(cluster: LocalCluster, node_id: int) -> None:
    member = cluster.add_to_config(node_id)
    cluster.start(node_id)
    cluster.wait_up(30, ids=[node_id])
    body = (
        f'{{"id": {node_id}, "peer": "127.0.0.1:{member.peer[1]}", '
        f'"http": "127.0.0.1:{member.http[1]}"}}'
    )
    client = cluster.client(retry_for=60, timeout=10)  # every node of cluster.toml
    reply = client.request("POST", "/members", body.encode(), timeout=40)
    assert reply.status == 200, (reply.status, reply.body)


def remove(cluster: LocalCluster, node_id: int) -> None:
    client = cluster.client(retry_for=60, timeout=10)
    reply = client.request("DELETE", f"/members/{node_id}", timeout=40)
    assert reply.status == 200, (reply.status, reply.body)
    assert cluster.wait_exit(node_id, 20)


def test_join_after_every_founding_member_was_replaced(tmp_path: Path) -> None:
    cluster = LocalCluster.create(
        tmp_path / "c", 3, snapshot=SnapshotPolicy(entries=20, bytes=2**20, keep_entries=5)
    )
    cluster.start_all()
    try:
        cluster.wait_for_leader(30)
        add(cluster, 4)
        add(cluster, 5)
        for founder in (1, 2, 3):
            remove(cluster, founder)
        client = cluster.client(retry_for=60, timeout=10)
        for i in range(60):  # snapshots and compaction: a new node needs a snapshot
            reply = client.request("PUT", f"/kv/k{i}", b"v", idempotency_key=f"k{i}")
            assert reply.status == 200
        add(cluster, 6)
        digests = cluster.wait_converged(ids=[4, 5, 6], timeout=60)
        assert len(set(digests.values())) == 1
        assert Client([cluster.url(6)]).request("GET", "/kv/k59").body == b"v"
    finally:
        cluster.stop_all()
