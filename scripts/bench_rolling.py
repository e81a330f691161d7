#!/usr/bin/env python3
"""Rolling restarts under load: `scripts/bench_rolling.py [--rounds 3] [--writers 4] [--json FILE]`.

A 3-node ``traft serve`` cluster on loopback (``LocalCluster``, default
timing: election timeout T = 300 ms, elections drawn from [T, 2T)) takes a
steady load of ``PUT /kv/roll-*`` from ``--writers`` client threads, each
write with its own Idempotency-Key and retried by the client (503 and
unreachable nodes, 307 followed) for up to 30 s. Then, ``--rounds`` times,
``LocalCluster.restart_rolling`` (what ``scripts/cluster restart --rolling``
does) restarts every node one by one: the followers first, then the leader,
whose SIGTERM hands leadership to a follower before it exits; each node
must answer and catch up before the next. One progress line per node.

Reported: the requests that failed (a ClientError or an answer other than
200: must be 0), and the longest gap between two consecutive acknowledged
writes while the restarts ran (must be below T). Exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import ensure_traft  # noqa: E402

ensure_traft()

from traft.kv.client import ClientError, new_idempotency_key  # noqa: E402
from traft.kv.localcluster import ClusterError, LocalCluster, RollingStep  # noqa: E402
from traft.node.config import Timing  # noqa: E402


class Load:
    """Writer threads; every acknowledgement time and every failure."""

    def __init__(self, cluster: LocalCluster, writers: int) -> None:
        self.cluster = cluster
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acks: list[float] = []
        self.failures: list[str] = []
        self.retries: list[tuple[float, int, str]] = []  # (when, writer, why)
        self.threads = [
            threading.Thread(target=self.writer, args=(k,), daemon=True) for k in range(writers)
        ]

    def writer(self, k: int) -> None:
        def on_retry(problem: str) -> None:
            with self.lock:
                self.retries.append((time.monotonic(), k, problem))

        client = self.cluster.client(timeout=2.0, retry_for=30.0, on_retry=on_retry)
        n = 0
        while not self.stop.is_set():
            n += 1
            key = new_idempotency_key()
            try:
                reply = client.request(
                    "PUT", f"/kv/roll-{k}-{n % 50}", b"v%d" % n, idempotency_key=key
                )
            except ClientError as exc:
                with self.lock:
                    self.failures.append(f"writer {k}: {exc}")
                continue
            now = time.monotonic()
            with self.lock:
                if reply.status == 200:
                    self.acks.append(now)
                else:
                    self.failures.append(f"writer {k}: {reply.status} {reply.error}")

    def longest_gap(self, start: float, end: float) -> tuple[float, float]:
        """The longest time without an acknowledged write in [start, end], and when it began."""
        with self.lock:
            times = sorted(t for t in self.acks if start <= t <= end)
        points = [start, *times, end]
        gap, at = 0.0, start
        for a, b in zip(points, points[1:], strict=False):
            if b - a > gap:
                gap, at = b - a, a
        return gap, at - start


def run(rounds: int, writers: int, nodes: int, timing: Timing) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="traft-rolling-") as tmp:
        cluster = LocalCluster.create(Path(tmp) / "cluster", nodes, timing=timing)
        cluster.start_all()
        load = Load(cluster, writers)
        steps: list[RollingStep] = []
        try:
            cluster.wait_up(30)
            cluster.wait_for_leader(15)
            for t in load.threads:
                t.start()
            time.sleep(1.0)
            print(
                f"{nodes} traft serve nodes, {writers} writers; {rounds} rolling restart(s); "
                f"election timeout {timing.election_timeout_ms} ms",
                flush=True,
            )
            start = time.monotonic()
            for r in range(rounds):

                def progress(step: RollingStep, r: int = r) -> None:
                    now = time.monotonic()
                    gap, _ = load.longest_gap(now - step.total_s, now)
                    print(
                        f"  round {r + 1} node {step.node_id} ({step.role:8}): "
                        f"{'clean' if step.clean else 'UNCLEAN'} stop in {step.stop_s * 1000:5.0f} ms, caught "
                        f"up after {step.total_s:5.2f} s, leader now {step.leader_after}; "
                        f"longest gap {gap * 1000:4.0f} ms; acks {len(load.acks)}, "
                        f"failures {len(load.failures)}",
                        flush=True,
                    )

                steps += cluster.restart_rolling(on_step=progress)
            end = time.monotonic()
            time.sleep(0.5)
        finally:
            load.stop.set()
            for t in load.threads:
                t.join(timeout=35)
            cluster.stop_all()
    gap, at = load.longest_gap(start, end)
    acked = sum(1 for t in load.acks if start <= t <= end)
    # What the writers met during the longest gap (the client's retries).
    in_gap = [
        f"+{(t - start - at) * 1000:.0f} ms writer {k}: {why}"
        for t, k, why in load.retries
        if start + at <= t <= start + at + gap
    ]
    return {
        "nodes": nodes,
        "writers": writers,
        "rounds": rounds,
        "restarts": len(steps),
        "leader_restarts": sum(1 for s in steps if s.role == "leader"),
        "unclean_stops": [s.node_id for s in steps if not s.clean],
        "failed_requests": len(load.failures),
        "failures": load.failures[:20],
        "acknowledged_writes": acked,
        "seconds": end - start,
        "longest_gap_ms": gap * 1000,
        "longest_gap_at_s": at,
        "retries_in_longest_gap": in_gap[:40],
        "retries": len(load.retries),
        "leader_stop_ms": [s.stop_s * 1000 for s in steps if s.role == "leader"],
        "election_timeout_ms": timing.election_timeout_ms,
        "loadavg": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rolling restarts (default 3)")
    parser.add_argument("--writers", type=int, default=4, help="writer threads (default 4)")
    parser.add_argument("-n", type=int, default=3, dest="nodes", help="nodes (default 3)")
    parser.add_argument("--json", help="write the result to this file")
    args = parser.parse_args(argv)
    timing = Timing()
    try:
        result = run(args.rounds, args.writers, args.nodes, timing)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ok = (
        result["failed_requests"] == 0
        and result["longest_gap_ms"] < timing.election_timeout_ms
        and not result["unclean_stops"]
    )
    print(
        f"summary: {result['restarts']} restarts ({result['leader_restarts']} of the leader) in "
        f"{result['seconds']:.1f} s; {result['acknowledged_writes']} writes acknowledged, "
        f"{result['failed_requests']} failed; longest gap without an acknowledged write "
        f"{result['longest_gap_ms']:.0f} ms (at {result['longest_gap_at_s']:.1f} s; election "
        f"timeout {timing.election_timeout_ms} ms); leader SIGTERM to exit "
        f"{', '.join(f'{ms:.0f}' for ms in result['leader_stop_ms'])} ms; "
        f"load average {result['loadavg']:.1f}; {'OK' if ok else 'FAILED'}"
    )
    for failure in result["failures"]:
        print(f"  failure: {failure}")
    if result["retries_in_longest_gap"]:
        print(f"  the writers' retries during the longest gap ({result['retries']} in all):")
        for line in result["retries_in_longest_gap"]:
            print(f"    {line}")
    if result["unclean_stops"]:
        print(f"  nodes that did not stop cleanly: {result['unclean_stops']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
