#!/usr/bin/env python3
"""Throughput of the pure core: a 3-node in-memory cluster, no I/O.

Batches of ``--batch`` proposals of 16 bytes go to the leader; every Ready is
"persisted" (nothing to do in memory), its messages delivered at once, its
committed entries applied (counted). Reports entries committed and applied
on all nodes per second.

    python scripts/bench_core.py [--seconds 10] [--batch 100] [--window 20]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import deque

from traft.core import Config, Raft, Role


def build(n: int) -> dict[int, Raft]:
    config = Config(election_timeout_ms=1000, request_timeout_ms=100)
    nodes = {}
    for i in range(1, n + 1):
        raft = Raft(i, config, random.Random(i))
        for j in range(1, n + 1):
            raft.add_node(j, is_self=i == j)
        nodes[i] = raft
    return nodes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--window", type=int, default=20, help="batches proposed per round")
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()

    nodes = build(args.nodes)
    applied = dict.fromkeys(nodes, 0)
    queue: deque[tuple[int, int, object]] = deque()

    def pump() -> None:
        busy = True
        while busy:
            busy = False
            for node_id, raft in nodes.items():
                if raft.has_ready():
                    busy = True
                    rd = raft.ready()
                    for to, msg in rd.messages:
                        queue.append((node_id, to, msg))
                    applied[node_id] += len(rd.committed)
                    raft.advance(rd)
            while queue:
                busy = True
                src, dst, msg = queue.popleft()
                nodes[dst].recv(src, msg)  # type: ignore[arg-type]

    nodes[1].campaign()
    pump()
    leader = nodes[1]
    assert leader.role is Role.LEADER
    payload = [b"0123456789abcdef"] * args.batch
    start = time.perf_counter()
    base = dict(applied)
    deadline = start + args.seconds
    last_report = start
    while True:
        for _ in range(args.window):
            leader.recv_entries(payload)
        pump()
        now = time.perf_counter()
        if now - last_report >= 1.0:
            done = min(applied[i] - base[i] for i in nodes)
            print(f"  {now - start:5.1f}s  {done / (now - start):>10,.0f} entries/s", flush=True)
            last_report = now
        if now >= deadline:
            break
    elapsed = time.perf_counter() - start
    done = min(applied[i] - base[i] for i in nodes)
    rate = done / elapsed
    print(
        f"\n{args.nodes} nodes, batches of {args.batch} x 16 B, {args.window} batches per round: "
        f"{done:,} entries committed and applied on every node in {elapsed:.1f} s "
        f"= {rate:,.0f} entries/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
