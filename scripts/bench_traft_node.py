#!/usr/bin/env python3
"""One traft node of ``scripts/bench``: UDP on loopback, fsync on (the default).

Started three times by ``scripts/bench``. Every node prints one JSON line
``{"event": "up", "pid": ...}``; the node that wins the election then waits
half a second, keeps ``--window`` counter increments in flight through
``Node.submit`` for ``--seconds`` (each command ``--value-size`` bytes when
set, to measure large entries), and prints ``start`` and ``result`` lines
(ops/s, latency percentiles). The driver reads CPU of every process from
``/proc`` between those two lines.

    python scripts/bench_traft_node.py --id 1 --ports P1,P2,P3,H1,H2,H3 --dir D --window 1000 --seconds 15
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import trio

from traft.node.config import ClusterConfig, Member, SnapshotPolicy, Timing
from traft.node.errors import NodeError
from traft.node.node import Node


class Counter:
    """The replicated counter: every command adds one."""

    def __init__(self) -> None:
        self.value = 0

    def apply(self, index: int, command: bytes) -> int:
        self.value += 1
        return self.value

    def snapshot(self) -> Iterable[bytes]:
        yield str(self.value).encode()

    def restore(self, chunks: Iterable[bytes]) -> None:
        self.value = int(b"".join(chunks) or b"0")


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def summarize(latencies: list[float], elapsed: float, errors: int, window: int) -> dict[str, Any]:
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(int(p / 100 * n), n - 1)] * 1000 if n else float("nan")

    return {
        "window": window,
        "ops": n,
        "seconds": elapsed,
        "ops_per_s": n / elapsed,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if n else float("nan"),
        "errors": errors,
    }


async def load_tasks(
    node: Node, window: int, seconds: float, command: bytes = b"+1"
) -> dict[str, Any]:
    """``window`` trio tasks, each awaiting ``Node.submit`` in a loop."""
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    clock = time.perf_counter
    deadline = clock() + seconds

    async def worker() -> None:
        nonlocal errors
        submit = node.submit
        record = latencies.append
        while clock() < deadline:
            start = clock()
            try:
                await submit(command, timeout=10)
            except NodeError as exc:
                errors += 1
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
                await trio.sleep(0.5)  # no leader here: back off, do not spin
                continue
            record(clock() - start)

    start = clock()
    async with trio.open_nursery() as nursery:
        for _ in range(window):
            nursery.start_soon(worker)
    result = summarize(latencies, clock() - start, errors, window)
    result["error_kinds"] = kinds
    return result


async def load_callbacks(
    node: Node, window: int, seconds: float, command: bytes = b"+1"
) -> dict[str, Any]:
    """``window`` proposals kept in flight with ``Node.submit_nowait``.

    The same shape as the PySyncObj load: each completion callback records
    the latency and proposes the next increment.
    """
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    clock = time.perf_counter
    deadline = clock() + seconds
    outstanding = window
    finished = trio.Event()
    record = latencies.append
    submit_nowait = node.submit_nowait

    def issue() -> None:
        nonlocal outstanding
        start = clock()

        def callback(result: Any, error: BaseException | None) -> None:
            now = clock()
            if error is None:
                record(now - start)
            else:
                kinds[type(error).__name__] = kinds.get(type(error).__name__, 0) + 1
            if now < deadline and error is None:
                issue()
            else:
                done()

        try:
            submit_nowait(command, callback, timeout=10)
        except (NodeError, trio.WouldBlock) as exc:
            kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
            done()

    def done() -> None:
        nonlocal outstanding
        outstanding -= 1
        if outstanding == 0:
            finished.set()

    start = clock()
    for _ in range(window):
        issue()
    await finished.wait()
    result = summarize(latencies, clock() - start, sum(kinds.values()), window)
    result["error_kinds"] = kinds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--ports", required=True, help="3 peer ports then 3 http ports")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--value-size", type=int, default=0, help="bytes per command (0: a 2-byte increment)"
    )
    parser.add_argument(
        "--inline-fsync", action="store_true", help="persist_in_thread=False (for comparison)"
    )
    parser.add_argument(
        "--api",
        choices=("submit_nowait", "submit"),
        default="submit_nowait",
        help="callbacks (like the PySyncObj load) or a trio task per operation",
    )
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=0,
        help="gc.set_threshold(N, 10, 10) in the node processes (0: Python's default)",
    )
    args = parser.parse_args()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 10, 10)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ports = [int(p) for p in args.ports.split(",")]
    members = {
        i: Member(i, ("127.0.0.1", ports[i - 1]), ("127.0.0.1", ports[i + 2])) for i in (1, 2, 3)
    }
    config = ClusterConfig(
        cluster_id="bench",
        members=members,
        # Elections in [1000, 2000) ms: PySyncObj's defaults draw from [400, 1400).
        timing=Timing(tick_ms=10, election_timeout_ms=1000, heartbeat_ms=50),
        snapshot=SnapshotPolicy(entries=200_000, keep_entries=20_000),
    )

    async def run() -> None:
        node = Node(
            args.id,
            config,
            Path(args.dir) / f"n{args.id}",
            Counter(),
            persist_in_thread=not args.inline_fsync,
        )
        async with node:
            emit(event="up", pid=os.getpid(), id=args.id)
            while True:
                raft = node.raft
                assert raft is not None
                if raft.is_leader:
                    break
                await trio.sleep(0.02)
            emit(event="leader", id=args.id)
            await trio.sleep(0.5)
            emit(event="start", window=args.window)
            load = load_callbacks if args.api == "submit_nowait" else load_tasks
            command = os.urandom(args.value_size) if args.value_size else b"+1"
            result = await load(node, args.window, args.seconds, command)
            emit(event="result", **result)
            await trio.sleep_forever()

    trio.run(run)


if __name__ == "__main__":
    main()
