"""Graceful shutdown of real ``traft serve`` processes: repeated signals, hand-over
of leadership on SIGTERM, rolling restarts through scripts/cluster.

Each test starts its own 3-node cluster and stops it, whatever happens; logs
are printed on failure.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from traft.kv.localcluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster.create(tmp_path / "cluster", 3)
    c.start_all()
    try:
        yield c
    finally:
        for node_id in c.ids:
            c.signal(node_id, signal.SIGCONT)
        c.stop_all(timeout=5)
        for node_id in c._known_ids():
            log = c.log_path(node_id)
            if log.exists():
                print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def wait_for_line(cluster: LocalCluster, node_id: int, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in cluster.log_path(node_id).read_text():
        assert time.monotonic() < deadline, f"node {node_id} never logged {text!r}"
        time.sleep(0.01)


def test_two_sigterms_5_ms_apart_stop_a_node_cleanly(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader(30)
    follower = next(i for i in cluster.ids if i != leader)
    cluster.signal(follower, signal.SIGTERM)
    time.sleep(0.005)
    cluster.signal(follower, signal.SIGTERM)
    assert cluster.wait_exit(follower, 10)
    assert cluster.exit_status(follower) == 0
    log = cluster.log_path(follower).read_text()
    assert "received SIGTERM; stopping" in log and log.rstrip().endswith("stopped")


def test_a_repeated_sigterm_during_the_hand_over_is_logged_and_ignored(
    cluster: LocalCluster,
) -> None:
    leader = cluster.wait_for_leader(30)
    followers = [i for i in cluster.ids if i != leader]
    for f in followers:  # the hand-over cannot finish: the shutdown lasts a while
        cluster.signal(f, signal.SIGSTOP)
    cluster.signal(leader, signal.SIGTERM)
    wait_for_line(cluster, leader, "handing over leadership before stopping")
    cluster.signal(leader, signal.SIGTERM)
    wait_for_line(cluster, leader, "received SIGTERM; already stopping")
    assert cluster.wait_exit(leader, 10)
    assert cluster.exit_status(leader) == 0
    assert cluster.log_path(leader).read_text().rstrip().endswith("stopped")


def test_a_second_sigint_forces_the_exit(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader(30)
    for f in (i for i in cluster.ids if i != leader):
        cluster.signal(f, signal.SIGSTOP)
    cluster.signal(leader, signal.SIGINT)
    wait_for_line(cluster, leader, "handing over leadership before stopping")
    cluster.signal(leader, signal.SIGINT)
    assert cluster.wait_exit(leader, 5)
    assert cluster.exit_status(leader) == 130
    assert "received SIGINT again; forcing exit" in cluster.log_path(leader).read_text()


def test_sigterm_on_the_leader_hands_leadership_over_before_it_exits(
    cluster: LocalCluster,
) -> None:
    leader = cluster.wait_for_leader(30)
    term = cluster.statuses()[leader]["term"]
    cluster.signal(leader, signal.SIGTERM)
    assert cluster.wait_exit(leader, 10)
    assert cluster.exit_status(leader) == 0
    log = cluster.log_path(leader).read_text()
    assert "leadership handed over to node" in log
    new = int(log.split("leadership handed over to node ")[1].split()[0])
    survivors = {i for i in cluster.ids if i != leader}
    assert cluster.wait_for_leader(5, among=survivors) == new
    # TimeoutNow: the target campaigns at once, and wins in the next term.
    assert cluster.statuses()[new]["term"] == term + 1


def test_rolling_restart_of_the_cluster_script(cluster: LocalCluster) -> None:
    first = cluster.wait_for_leader(30)
    result = subprocess.run(
        [sys.executable, "scripts/cluster", "restart", "--rolling", "--dir", str(cluster.root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("  node ")]
    assert len(lines) == 3 and f"node {first} (leader)" in lines[-1]
    assert all("stopped cleanly" in line for line in lines), result.stdout
    # The pid files name the new processes: the fixture stops them.
    assert all(cluster.pid(i) is not None for i in cluster.ids)


@pytest.mark.timeout(150)
def test_a_short_rolling_restart_under_load_fails_no_request(tmp_path: Path) -> None:
    out = tmp_path / "rolling.json"
    result = subprocess.run(
        [sys.executable, "scripts/bench_rolling.py", "--rounds", "1", "--writers", "2"]
        + ["--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=140,
    )
    assert out.exists(), result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert figures["restarts"] == 3 and figures["leader_restarts"] == 1
    assert figures["failed_requests"] == 0, figures["failures"]
    assert figures["unclean_stops"] == []
    assert figures["acknowledged_writes"] > 0


def test_traft_leader_transfer_moves_leadership(cluster: LocalCluster) -> None:
    first = cluster.wait_for_leader(30)
    target = max(i for i in cluster.ids if i != first)
    command = [sys.executable, "-m", "traft.cli", "leader", "transfer"]
    where = ["--config", str(cluster.config_path)]
    result = subprocess.run(
        [*command, str(target), *where], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"leadership moved from node {first} to node {target}"
    assert cluster.wait_for_leader(10) == target
    result = subprocess.run([*command, *where], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"from node {target} to node" in result.stdout
    assert cluster.wait_for_leader(10) != target


def sigterm_caught(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (Linux: SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_sigterm_as_soon_as_traft_serve_catches_it_stops_it_cleanly(tmp_path: Path) -> None:
    # traft serve catches SIGTERM first thing, before it loads its
    # configuration and imports the node: a SIGTERM from then on is acted on
    # once the node has started, never the default action (status -15).
    cluster = LocalCluster.create(tmp_path / "cluster", 1)
    pid = cluster.start(1)
    try:
        deadline = time.monotonic() + 30
        while not sigterm_caught(pid):
            assert time.monotonic() < deadline and cluster.pid(1) is not None
            time.sleep(0.0005)
        assert cluster.signal(1, signal.SIGTERM)
        # Caught before the node was even built (it logs "starting" then).
        assert "starting:" not in cluster.log_path(1).read_text()
        assert cluster.wait_exit(1, 30)
        log = cluster.log_path(1).read_text()
        assert cluster.exit_status(1) == 0, log
        assert "received SIGTERM; stopping" in log and log.rstrip().endswith("stopped"), log
    finally:
        cluster.stop_all(timeout=5)
