#!/usr/bin/env python3
"""`make demo`: a real 3-node traft cluster on this machine, in about 15 seconds.

Starts three `traft serve` processes on free loopback ports, runs a short
workload through the HTTP API (puts, a compare-and-set, tickets, a retried
write), kills the leader with SIGKILL, shows a new leader taking over,
restarts the old one and shows it catching up, prints a summary and stops
everything it started (the temporary folder is removed unless --keep).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import ensure_traft  # noqa: E402

ensure_traft()

from traft.cli import traft_command  # noqa: E402
from traft.kv.cli.status import collect, table  # noqa: E402
from traft.kv.client import Client, new_idempotency_key  # noqa: E402
from traft.kv.localcluster import LocalCluster  # noqa: E402

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - T0:5.1f} s] {message}", flush=True)


def show_table(cluster: LocalCluster) -> None:
    print()
    for line in table(collect(cluster.client(), timeout=1.0)).splitlines():
        print("    " + line)
    print()


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the cluster's folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="traft-demo-"))
    cluster = LocalCluster.create(root, 3, cluster_id="demo")
    summary: list[str] = []
    try:
        say(f"starting 3 nodes; cluster.toml, data and logs in {root}")
        cluster.start_all()
        cluster.wait_up(30)
        leader = cluster.wait_for_leader(20)
        say(f"node {leader} was elected leader")
        show_table(cluster)

        # A client that knows only node 1: it follows redirects to the leader.
        client = Client([cluster.url(1)], retry_for=30)
        say(f"workload through {cluster.url(1)} (a 307 leads to the leader when it is not)")
        start = time.monotonic()
        for i in range(100):
            client.request(
                "PUT", f"/kv/user/{i}", f"name-{i}".encode(), idempotency_key=new_idempotency_key()
            )
        elapsed = time.monotonic() - start
        say(
            f"  100 puts acknowledged in {elapsed:.2f} s (one at a time, each fsynced by a majority)"
        )
        tickets = [
            client.request("POST", "/ticket", b"", idempotency_key=new_idempotency_key()).json()[
                "ticket"
            ]
            for _ in range(5)
        ]
        say(f"  5 tickets: {tickets}")
        r = client.request(
            "PUT", "/kv/user/1?prev=wrong", b"x", idempotency_key=new_idempotency_key()
        )
        say(f"  compare-and-set with a wrong prev: {r.status} {r.error}")
        r = client.request(
            "PUT", "/kv/user/1?prev=name-1", b"renamed", idempotency_key=new_idempotency_key()
        )
        say(f"  compare-and-set with the right prev: {r.status} {r.json()}")
        key = new_idempotency_key()
        first = client.request("POST", "/ticket", b"", idempotency_key=key).json()
        again = client.request("POST", "/ticket", b"", idempotency_key=key).json()
        say(
            f"  a ticket request retried with the same Idempotency-Key: {first} then {again} (applied once)"
        )
        summary.append(f"writes: 100 puts in {elapsed:.2f} s, 7 tickets, compare-and-set 412/200")

        old = cluster.wait_for_leader(5)
        say(f"killing the leader, node {old}, with SIGKILL")
        cluster.kill(old)
        start = time.monotonic()
        survivors = [i for i in cluster.ids if i != old]
        writer = Client([cluster.url(i) for i in survivors], retry_for=30)
        r = writer.request(
            "PUT", "/kv/after-failover", b"yes", idempotency_key=new_idempotency_key()
        )
        failover = time.monotonic() - start
        new = cluster.wait_for_leader(10, among=set(survivors))
        say(
            f"node {new} took over: the first write after the kill was acknowledged {failover:.2f} s later"
        )
        for i in range(100, 150):
            writer.request(
                "PUT", f"/kv/user/{i}", f"name-{i}".encode(), idempotency_key=new_idempotency_key()
            )
        say(f"  50 more puts while node {old} is down")
        show_table(cluster)
        summary.append(
            f"failover: node {old} killed, node {new} leader, first write after {failover:.2f} s"
        )

        say(f"restarting node {old}")
        start = time.monotonic()
        cluster.start(old)
        digests = cluster.wait_converged(timeout=30)
        catch_up = time.monotonic() - start
        say(
            f"node {old} is back as a follower and caught up in {catch_up:.2f} s: all three hold the same state"
        )
        show_table(cluster)
        r = Client([cluster.url(old)]).request("GET", "/kv/after-failover")
        say(
            f"the key written while node {old} was down, asked of node {old}: {r.status} {r.body!r}"
        )
        summary.append(f"catch-up: node {old} restarted and converged in {catch_up:.2f} s")
        summary.append(f"state digest on every node: {next(iter(digests.values()))[:16]}...")
    except Exception as exc:
        print(f"demo failed: {exc}; the node logs are in {root}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        say("stopping the cluster")
        cluster.stop_all()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print("summary")
    for line in summary:
        print(f"  {line}")
    print()
    print(
        f"next: scripts/cluster start, then {traft_command()} status / put / get "
        "--config <the printed path>"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
