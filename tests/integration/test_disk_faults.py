"""Disk faults on a stopped node of a real cluster, and the operator's way back.

Each case damages a copy of a stopped node's data directory (docs/storage-format.md
says what opening repairs and what it refuses) and starts ``traft serve`` on it:

- a torn tail (the last segment cut short) is repaired: the node starts, rejoins
  and converges with the others;
- anything else (a flipped byte inside a segment, a damaged ``meta``, ``log/state``
  or snapshot, a deleted snapshot the log needs) makes ``traft serve`` exit with
  status 1 before it binds any address, naming the file and the damage: it never
  serves or votes with a damaged log.

Then the procedure of docs/operations.md ("Recovering a damaged node"): remove the
damaged node, wipe its directory, add it back as a new member.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from traft.kv.localcluster import LocalCluster
from traft.node.config import SnapshotPolicy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WRITES = 130  # with snapshots every 50 entries: two snapshots and a log tail


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-node cluster that took WRITES puts, all nodes stopped cleanly."""
    root = tmp_path_factory.mktemp("disk") / "c"
    cluster = LocalCluster.create(
        root, 3, snapshot=SnapshotPolicy(entries=50, bytes=2**20, keep_entries=10)
    )
    cluster.start_all()
    try:
        cluster.wait_for_leader(30)
        client = cluster.client(retry_for=30)
        for i in range(WRITES):
            reply = client.request("PUT", f"/kv/k{i}", f"v{i}".encode(), idempotency_key=f"i{i}")
            assert reply.status == 200
        cluster.wait_converged(timeout=30)
    finally:
        cluster.stop_all()
    yield cluster


def last_segment(d: Path) -> Path:
    return sorted((d / "log").glob("*.seg"))[-1]


def latest_snapshot(d: Path) -> Path:
    return sorted((d / "snap").glob("*.snap"))[-1]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def serve(
    cluster: LocalCluster, node_id: int, data: Path, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``traft serve`` on ``data``; it must exit by itself within ``timeout`` seconds."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "traft.cli",
            "serve",
            "--config",
            str(cluster.config_path),
            "--id",
            str(node_id),
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


REFUSED: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (damage, file named in the error, what the error says)
    "byte flipped in a segment": (
        lambda d: flip(last_segment(d), last_segment(d).stat().st_size // 2),
        ".seg",
        "bad CRC",
    ),
    "meta damaged": (lambda d: flip(d / "meta", 18), "meta", "bad CRC in meta"),
    "log/state damaged": (lambda d: flip(d / "log" / "state", 17), "state", "bad CRC"),
    "snapshot header damaged": (
        lambda d: flip(latest_snapshot(d), 20),
        ".snap",
        "snapshot header",
    ),
    "snapshot data damaged": (
        lambda d: flip(latest_snapshot(d), latest_snapshot(d).stat().st_size // 2),
        ".snap",
        "bad CRC in snapshot chunk",
    ),
    "latest snapshot deleted": (
        lambda d: latest_snapshot(d).unlink(),
        "log",
        "no snapshot covers the gap",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_damage_is_refused(stopped: LocalCluster, tmp_path: Path, case: str) -> None:
    damage, named, what = REFUSED[case]
    data = tmp_path / "n3"
    shutil.copytree(stopped.data_dir(3), data)
    damage(data)
    result = serve(stopped, 3, data)
    assert result.returncode == 1, result.stderr[-2000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("traft serve: error: CorruptLogError: "), error
    assert str(data) in error and named in error and what in error, error
    assert "serving the HTTP API" not in result.stderr
    assert "candidate" not in result.stderr  # it never campaigned
    # traft log verify names the same damage, without changing anything.
    verify = subprocess.run(
        [sys.executable, "-m", "traft.cli", "log", "verify", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 1, verify.stdout + verify.stderr


def test_deleted_newest_segment_is_refused(stopped: LocalCluster, tmp_path: Path) -> None:
    data = tmp_path / "n3"
    shutil.copytree(stopped.data_dir(3), data)
    last_segment(data).unlink()
    try:
        result = serve(stopped, 3, data, timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("traft serve started on a log missing its newest segment")
    assert result.returncode == 1
    assert "newest segment" in result.stdout + result.stderr


def test_torn_tail_is_repaired_and_the_node_rejoins(stopped: LocalCluster) -> None:
    cluster = stopped
    segment = last_segment(cluster.data_dir(3))
    os.truncate(segment, segment.stat().st_size - 5)  # the last record torn
    cluster.start_all()
    try:
        cluster.wait_for_leader(30)
        digests = cluster.wait_converged(timeout=60)
        assert len(set(digests.values())) == 1 and len(digests) == 3
        reply = cluster.client(retry_for=30).request("GET", f"/kv/k{WRITES - 1}")
        assert reply.status == 200 and reply.body == f"v{WRITES - 1}".encode()
    finally:
        cluster.stop_all()
    log = cluster.log_path(3).read_text()
    assert "serving the HTTP API" in log.split("starting:")[-1]


def test_recovering_a_damaged_node_by_wipe_and_re_add(stopped: LocalCluster) -> None:
    """docs/operations.md, "Recovering a damaged node", step by step."""
    cluster = stopped
    flip(last_segment(cluster.data_dir(2)), last_segment(cluster.data_dir(2)).stat().st_size // 2)
    cluster.start(1)
    cluster.start(3)
    try:
        cluster.start(2)
        assert cluster.wait_exit(2, 30), "the damaged node kept running"
        assert cluster.exit_status(2) == 1
        cluster.wait_for_leader(30, among={1, 3})

        def traft(*argv: str) -> str:
            result = subprocess.run(
                [sys.executable, "-m", "traft.cli", *argv, "--config", str(cluster.config_path)],
                capture_output=True,
                text=True,
                timeout=90,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout

        # 1. Remove the damaged node from the cluster (the others have a quorum).
        traft("member", "remove", "2")
        # 2. Wipe its data directory (keep a copy for a post-mortem, here: none).
        shutil.rmtree(cluster.data_dir(2))
        # 3. Add it back under a new id, with join = true in cluster.toml.
        member = cluster.add_to_config(4)
        cluster.start(4)
        cluster.wait_up(30, ids=[4])
        traft(
            "member",
            "add",
            "4",
            f"{member.peer[0]}:{member.peer[1]}",
            f"{member.http[0]}:{member.http[1]}",
        )
        digests = cluster.wait_converged(ids=[1, 3, 4], timeout=60)
        assert len(set(digests.values())) == 1
        reply = cluster.client(retry_for=30).request("GET", "/kv/k0")
        assert reply.status == 200 and reply.body == b"v0"
        status = cluster.client().get_status(cluster.url(4))
        assert sorted(m["id"] for m in status["members"]) == [1, 3, 4]
    finally:
        cluster.stop_all()
