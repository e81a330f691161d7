#!/usr/bin/env python3
"""One PySyncObj node of ``scripts/bench`` (run under the PySyncObj virtualenv).

The same protocol as ``bench_traft_node.py``: JSON lines ``up``, ``leader``,
``start``, ``result`` on stdout. The load keeps ``--window`` calls of a
``@replicated`` counter increment in flight: each completion callback (run
on PySyncObj's own thread) records the latency and issues the next call.
``--value-size`` makes each call carry that many bytes (large entries).
``--journal`` gives PySyncObj a ``journalFile`` (it writes the log there but
never fsyncs it); otherwise its defaults (in-memory log, batching on).

    python scripts/bench_pysyncobj_node.py --id 1 --ports P1,P2,P3 --dir D --window 1000 --seconds 15 [--journal]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated


class Counter(SyncObj):  # type: ignore[misc]
    def __init__(self, me: str, others: list[str], conf: SyncObjConf) -> None:
        super().__init__(me, others, conf)
        self.value = 0

    @replicated  # type: ignore[misc]
    def incr(self, value: bytes = b"") -> int:
        self.value += 1
        return self.value


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--ports", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--journal", action="store_true")
    parser.add_argument("--value-size", type=int, default=0, help="bytes carried by each call")
    parser.add_argument("--gc-threshold", type=int, default=0)
    args = parser.parse_args()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 10, 10)
    ports = [int(p) for p in args.ports.split(",")[:3]]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    me = addrs[args.id - 1]
    others = [a for a in addrs if a != me]
    kwargs: dict[str, Any] = {}
    if args.journal:
        os.makedirs(args.dir, exist_ok=True)
        kwargs["journalFile"] = os.path.join(args.dir, f"journal{args.id}")
    counter = Counter(me, others, SyncObjConf(**kwargs))
    emit(event="up", pid=os.getpid(), id=args.id)
    while not counter._isLeader():
        time.sleep(0.02)
    emit(event="leader", id=args.id)
    time.sleep(0.5)

    clock = time.perf_counter
    latencies: list[float] = []
    errors = 0
    deadline = clock() + args.seconds
    outstanding = args.window
    done = threading.Event()
    lock = threading.Lock()

    def issue() -> None:
        start = clock()

        def callback(result: Any, error: int) -> None:
            nonlocal errors, outstanding
            now = clock()
            if error == FAIL_REASON.SUCCESS:
                latencies.append(now - start)
            else:
                errors += 1
            if now < deadline:
                issue()
            else:
                with lock:
                    outstanding -= 1
                    if outstanding == 0:
                        done.set()

        if value:
            counter.incr(value, callback=callback)
        else:
            counter.incr(callback=callback)

    value = os.urandom(args.value_size) if args.value_size else b""
    emit(event="start", window=args.window)
    start = clock()
    for _ in range(args.window):
        issue()
    done.wait(args.seconds + 30)
    elapsed = clock() - start
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(int(p / 100 * n), n - 1)] * 1000 if n else float("nan")

    emit(
        event="result",
        window=args.window,
        ops=n,
        seconds=elapsed,
        ops_per_s=n / elapsed,
        p50_ms=pct(50),
        p99_ms=pct(99),
        max_ms=latencies[-1] * 1000 if n else float("nan"),
        errors=errors,
    )
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
