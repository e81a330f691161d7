"""Real ``traft serve`` processes on loopback: election, redirects, kill -9, catch-up, membership.

Each test starts its own cluster (free ports on 127.0.0.1, a folder under
tmp_path) and stops it, whatever happens. Logs are printed on failure.
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from traft.kv.client import Client, new_idempotency_key
from traft.kv.localcluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(40)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster.create(tmp_path / "cluster", 3)
    c.start_all()
    try:
        # wait_for_leader asks only the nodes that answer: a node whose process
        # starts late (a loaded machine) could still be down when a test picks it.
        c.wait_up(30)
        yield c
    finally:
        c.stop_all(timeout=5)
        for node_id in c._known_ids():
            log = c.log_path(node_id)
            if log.exists():
                print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def put(client: Client, key: str, value: bytes) -> int:
    reply = client.request("PUT", f"/kv/{key}", value, idempotency_key=new_idempotency_key())
    assert reply.status == 200, reply
    return int(reply.json()["index"])


def test_leader_election(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader(15)
    statuses = cluster.statuses()
    assert [s["role"] for s in statuses.values()].count("leader") == 1
    assert statuses[leader]["role"] == "leader"
    assert len({s["term"] for s in statuses.values()}) == 1
    assert {s["leader_url"] for s in statuses.values()} == {cluster.url(leader)}


def test_write_through_a_follower_redirect(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader(15)
    follower = next(i for i in cluster.ids if i != leader)
    host, port = cluster.config.members[follower].http
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("PUT", "/kv/some%20key?prev=x", body=b"v")
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 307
    assert response.getheader("location") == cluster.url(leader) + "/kv/some%20key?prev=x"
    client = Client([cluster.url(follower)], retry_for=10)
    index = put(client, "k", b"through a follower")
    assert client.leader == cluster.url(leader)
    other = next(i for i in cluster.ids if i not in (leader, follower))
    assert Client([cluster.url(other)]).request("GET", "/kv/k").body == b"through a follower"
    assert index > 0


def test_kill_the_leader_and_fail_over(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader(15)
    client = cluster.client(retry_for=15)
    put(client, "before", b"1")
    cluster.kill(leader)
    start = time.monotonic()
    survivors = [i for i in cluster.ids if i != leader]
    put(Client([cluster.url(i) for i in survivors], retry_for=15), "after", b"2")
    assert time.monotonic() - start < 5
    new = cluster.wait_for_leader(10, among=set(survivors))
    assert new != leader
    reader = Client([cluster.url(new)])
    assert reader.request("GET", "/kv/before").body == b"1"
    assert reader.request("GET", "/kv/after").body == b"2"


def test_restart_and_catch_up(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader(15)
    follower = next(i for i in cluster.ids if i != leader)
    client = cluster.client(retry_for=15)
    put(client, "a", b"1")
    cluster.kill(follower)
    for i in range(50):
        put(client, f"while-down/{i}", b"x")
    ticket = client.request("POST", "/ticket", b"", idempotency_key="t1").json()["ticket"]
    cluster.start(follower)
    digests = cluster.wait_converged(timeout=20)
    assert len(set(digests.values())) == 1
    status = cluster.statuses()[follower]
    assert status["kv"]["keys"] == 51 and status["kv"]["last_ticket"] == ticket
    assert status["role"] == "follower"


def test_member_add_and_remove(cluster: LocalCluster) -> None:
    cluster.wait_for_leader(15)
    client = cluster.client(retry_for=15, timeout=40)
    put(client, "x", b"before the join")
    new = cluster.add_to_config(4)
    cluster.start(4)
    body = f'{{"id": 4, "peer": "127.0.0.1:{new.peer[1]}", "http": "127.0.0.1:{new.http[1]}"}}'
    reply = client.request("POST", "/members", body.encode())
    assert reply.status == 200, reply
    members = {m["id"]: m for m in reply.json()["members"]}
    assert members[4]["voting"] is True
    digests = cluster.wait_converged([1, 2, 3, 4], timeout=20)
    assert len(set(digests.values())) == 1
    assert Client([cluster.url(4)]).request("GET", "/kv/x").body == b"before the join"
    # Adding it again is refused; removing it stops its process with a clear message.
    again = client.request("POST", "/members", body.encode())
    assert again.status == 409
    reply = client.request("DELETE", "/members/4")
    assert reply.status == 200 and 4 not in {m["id"] for m in reply.json()["members"]}
    assert cluster.wait_exit(4, 15)
    assert cluster.exit_status(4) == 0
    assert "was removed from the cluster" in cluster.log_path(4).read_text()
    put(client, "y", b"three nodes again")


# Moments of a node's start-up, each marked by a line of its log (None: right
# after the process was spawned, before Python has installed any handler).
START_UP_MOMENTS = {
    "at-spawn": None,
    "storage-opened": "restored term",
    "node-running": "node 1: leader is",
    "serving": "serving the HTTP API",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("moment", [*START_UP_MOMENTS, "answering"])
def test_sigterm_at_any_moment_of_start_up_stops_cleanly(tmp_path: Path, moment: str) -> None:
    """Issue 10 bug 13: the node announced readiness before it installed its
    SIGTERM handler, so a SIGTERM in between killed it by the default action
    (exit status -15). Each case waits for its moment (an event, not a
    delay), sends SIGTERM at once, and wants a clean stop."""
    cluster = LocalCluster.create(tmp_path / "cluster", 1)
    cluster.start(1)
    log_path = cluster.log_path(1)
    try:
        marker = START_UP_MOMENTS.get(moment)
        if moment == "answering":
            cluster.wait_up(60)
        elif marker is not None:
            deadline = time.monotonic() + 60
            while marker not in log_path.read_text():
                assert time.monotonic() < deadline, f"never logged {marker!r}"
                assert cluster.pid(1) is not None, log_path.read_text()
                time.sleep(0.001)  # polling for the moment, not timing anything
        assert cluster.signal(1, signal.SIGTERM)
        assert cluster.wait_exit(1, 30)
        status = cluster.exit_status(1)
        log = log_path.read_text()
        assert "Traceback" not in log, log
        if moment == "at-spawn":
            # Until the interpreter has loaded traft, SIGTERM's default action
            # ends the process: nothing was opened yet, nothing to clean up.
            assert status in (0, -signal.SIGTERM), log
        else:
            assert status == 0, f"exit status {status}\n{log}"
            assert "received SIGTERM; stopping" in log, log
    finally:
        cluster.stop_all(timeout=5)


def test_sigterm_stops_cleanly(cluster: LocalCluster) -> None:
    cluster.wait_for_leader(15)
    cluster.signal(1, signal.SIGTERM)
    assert cluster.wait_exit(1, 10)
    assert cluster.exit_status(1) == 0
    log = cluster.log_path(1).read_text()
    assert "received SIGTERM; stopping" in log and "Traceback" not in log


@pytest.mark.timeout(90)
def test_a_second_serve_on_the_same_data_dir_exits_1_naming_the_holder(tmp_path: Path) -> None:
    """Issue 10 bug 7: started twice on one --data-dir (other ports), both
    processes served and acknowledged different writes at the same index."""
    first = LocalCluster.create(tmp_path / "first", 1)
    other_ports = LocalCluster.create(tmp_path / "second", 1)  # node 1 again, other ports
    first.start(1)
    try:
        first.wait_up(30)
        holder = first.pid(1)
        data_dir = first.data_dir(1)
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "traft.cli",
                "serve",
                "--config",
                str(other_ports.config_path),
                "--id",
                "1",
                "--data-dir",
                str(data_dir),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1, second.stderr
        errors = [line for line in second.stderr.splitlines() if "traft serve: error:" in line]
        assert len(errors) == 1, second.stderr
        assert str(data_dir) in errors[0] and f"pid {holder}" in errors[0], errors[0]
        assert "Traceback" not in second.stderr
        assert 1 in first.statuses(), "the first node must keep serving"
    finally:
        first.stop_all(timeout=5)
        print(first.log_path(1).read_text()[-3000:])
