#!/usr/bin/env python3
"""Restart time of a node against its log size: `scripts/bench_recovery.py [--sizes 10000,100000,1000000]`.

For each size N, writes a data directory holding N entries of 16 bytes (term
1) through the node's own storage adapter (``Durable``), once as a bare log
and once with a snapshot at N whose log keeps the last 10,000 entries (the
default ``SnapshotPolicy.keep_entries``). Then, in a fresh process each time,
starts a one-node cluster ``Node`` on that directory (in-memory network) and
times it from ``Node(...)`` until ``started`` (storage opened, log read,
state machine restored, core rebuilt). Prints a table; ``--json FILE``
writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import ensure_traft  # noqa: E402

ensure_traft()

import trio  # noqa: E402

import net  # noqa: E402
from traft.core import (  # noqa: E402
    Entry,
    EntryType,
    HardState,
    Membership,
    NodeConfig,
    Ready,
    SnapshotMeta,  # noqa: E402
)
from traft.node.config import ClusterConfig, Member  # noqa: E402
from traft.node.durable import Durable  # noqa: E402
from traft.node.members import member_context  # noqa: E402
from traft.node.node import Node  # noqa: E402

KEEP = 10_000


def config() -> ClusterConfig:
    member = Member(1, ("127.0.0.1", 1), ("127.0.0.1", 2))
    return ClusterConfig(cluster_id="recovery", members={1: member})


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def apply(self, index: int, command: bytes) -> int:
        self.value += 1
        return self.value

    def snapshot(self) -> Any:
        yield str(self.value).encode()

    def restore(self, chunks: Any) -> None:
        self.value = int(b"".join(chunks) or b"0")


def build(path: Path, n: int, snapshot: bool) -> None:
    durable = Durable(path)
    try:
        durable.persist(Ready(hard_state=HardState(1, 1)))
        batch = 50_000
        for lo in range(1, n + 1, batch):
            hi = min(lo + batch, n + 1)
            entries = [Entry(1, i, i, EntryType.NORMAL, b"x" * 16) for i in range(lo, hi)]
            durable.persist(Ready(entries=entries))
        if snapshot:
            c = config().members[1]
            membership = Membership((NodeConfig(1, True, member_context(c.peer, c.http)),))
            durable.save_snapshot(SnapshotMeta(n, 1, membership), [str(n).encode()])
            durable.persist(Ready(compact_upto=n - KEEP))
    finally:
        durable.close()


def time_start(path: str) -> float:
    """Runs in the child: seconds from Node(...) to started."""

    async def main() -> float:
        network = net.MemoryNetwork(cluster_id=net.cluster_id_from("recovery"))
        start = time.perf_counter()
        node = Node(1, config(), path, Counter(), endpoint=network.endpoint(1))
        async with node:
            elapsed = time.perf_counter() - start
            assert node.raft is not None
            assert node.raft.current_index >= 1
        return elapsed

    return trio.run(main)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_start(args.child)))
        return 0
    results = []
    print(f"{'entries':>9} {'snapshot':>9} {'restart s (best of ' + str(args.repeat) + ')':>24}")
    with tempfile.TemporaryDirectory(prefix="traft-recovery-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            for snapshot in (False, True):
                path = Path(tmp) / f"{n}-{snapshot}"
                t0 = time.perf_counter()
                build(path, n, snapshot)
                built = time.perf_counter() - t0
                times = []
                for _ in range(args.repeat):
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", str(path)],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    times.append(json.loads(out.splitlines()[-1]))
                best = min(times)
                results.append(
                    {
                        "entries": n,
                        "snapshot": snapshot,
                        "restart_s": best,
                        "all_s": times,
                        "build_s": built,
                        "loadavg": os.getloadavg()[0],
                    }
                )
                print(f"{n:>9,} {'yes' if snapshot else 'no':>9} {best:>24.3f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
