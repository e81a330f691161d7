#!/usr/bin/env python3
"""Throughput and latency of real traft nodes: 3 processes, UDP on loopback, fsync on.

Each process runs a :class:`traft.node.node.Node` with a counter state
machine. The load runs inside the leader process (as PySyncObj's own
benchmarks do): ``--window`` operations in flight, each a replicated counter
increment through ``Node.submit``. Prints ops/s and latency percentiles per
window, and the CPU time of every process.

    python scripts/bench_node.py [--windows 1,1000,5000,20000] [--seconds 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import trio

from traft.node.config import ClusterConfig, Member, SnapshotPolicy, Timing
from traft.node.errors import NodeError
from traft.node.node import Node


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def apply(self, index: int, command: bytes) -> int:
        self.value += 1
        return self.value

    def snapshot(self) -> Iterable[bytes]:
        yield str(self.value).encode()

    def restore(self, chunks: Iterable[bytes]) -> None:
        self.value = int(b"".join(chunks) or b"0")


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(int(p / 100 * len(values)), len(values) - 1)]


async def load(node: Node, window: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = trio.current_time() + seconds

    async def worker() -> None:
        nonlocal errors
        while trio.current_time() < deadline:
            start = time.perf_counter()
            try:
                await node.submit(b"+1", timeout=10)
            except NodeError:
                errors += 1
                await trio.sleep(0.01)
                continue
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(window):
            nursery.start_soon(worker)
    elapsed = time.perf_counter() - start
    return {
        "window": window,
        "ops": len(latencies),
        "ops_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "errors": errors,
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_node(
    node_id: int, config: ClusterConfig, data_dir: str, plan: dict[str, Any], results: Any
) -> None:
    async def main() -> None:
        node = Node(node_id, config, Path(data_dir) / f"n{node_id}", Counter())
        async with node:
            with trio.move_on_after(plan["startup_s"]):
                while not (node.raft is not None and node.raft.is_leader):
                    if node.raft is not None and node.raft.leader_id not in (None, node_id):
                        break
                    await trio.sleep(0.05)
            assert node.raft is not None
            if node.raft.is_leader:
                await trio.sleep(0.5)
                for window in plan["windows"]:
                    cpu0 = cpu_seconds()
                    result = await load(node, window, plan["seconds"])
                    result["cpu_s"] = cpu_seconds() - cpu0
                    results.put(("result", node_id, result))
                results.put(("done", node_id, None))
            # Followers report CPU per phase on request.
            while True:
                await trio.sleep(0.5)
                results.put(("cpu", node_id, cpu_seconds()))

    trio.run(main)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", default="1,1000,5000,20000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]

    ports = free_ports(6)
    members = {
        i: Member(i, ("127.0.0.1", ports[i - 1]), ("127.0.0.1", ports[i + 2])) for i in (1, 2, 3)
    }
    config = ClusterConfig(
        cluster_id="bench",
        members=members,
        timing=Timing(tick_ms=10, election_timeout_ms=500, heartbeat_ms=50),
        snapshot=SnapshotPolicy(entries=200_000, keep_entries=20_000),
    )
    plan = {"windows": windows, "seconds": args.seconds, "startup_s": 10.0}
    ctx = mp.get_context("spawn")
    results: Any = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="traft-bench-") as tmp:
        procs = [
            ctx.Process(target=run_node, args=(i, config, tmp, plan, results), daemon=True)
            for i in (1, 2, 3)
        ]
        for p in procs:
            p.start()
        out: list[dict[str, Any]] = []
        cpu: dict[int, float] = {}
        deadline = time.time() + 30 + len(windows) * (args.seconds + 10)
        print(
            f"traft: 3 nodes on loopback UDP, fsync on, windows {windows}, {args.seconds:g} s each"
        )
        cpu_marks: list[dict[int, float]] = []
        while time.time() < deadline:
            kind, node_id, payload = results.get(timeout=deadline - time.time())
            if kind == "cpu":
                cpu[node_id] = payload
            elif kind == "result":
                cpu_marks.append(dict(cpu))
                payload["leader"] = node_id
                out.append(payload)
                print(
                    f"  window {payload['window']:>6}: {payload['ops_per_s']:>9,.0f} ops/s  "
                    f"p50 {payload['p50_ms']:7.2f} ms  p99 {payload['p99_ms']:7.2f} ms  "
                    f"max {payload['max_ms']:7.1f} ms  leader cpu {payload['cpu_s']:.1f} s  errors {payload['errors']}",
                    flush=True,
                )
            elif kind == "done":
                break
        for p in procs:
            p.kill()
    if args.json:
        Path(args.json).write_text(json.dumps({"traft": out}, indent=2))
    print(
        f"\nsummary: {len(out)} windows measured"
        + (f", written to {args.json}" if args.json else "")
    )
    return 0 if len(out) == len(windows) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
