#!/usr/bin/env python3
"""Lease reads against ReadIndex reads, side by side: `scripts/bench_reads.py [--seconds 5]`.

Starts a 3-node ``traft serve`` cluster on loopback twice, once as it is by
default (every read confirmed by a heartbeat round: ReadIndex, thesis §6.4)
and once with ``traft serve --lease-reads`` (the leader answers while its
lease lasts, §6.4.1), preloads ``--keys`` keys, and runs the same ``wrk``
load of ``GET /kv/k{i}`` (keep-alive, ``--connections`` connections, two
threads at most) against the leader, and against a follower (which asks the leader
for a read index, then answers itself). Prints requests/s and p50/p99 per
row, and the load average beside each: on a busy machine the absolute
numbers are noise, the ratio less so. Needs ``wrk`` (Debian: ``apt-get
install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import ensure_traft  # noqa: E402

ensure_traft()

from traft.kv.client import new_idempotency_key  # noqa: E402
from traft.kv.localcluster import LocalCluster  # noqa: E402

LUA = """
local i = 0
request = function()
  i = (i + 1) % {keys}
  return wrk.format("GET", "/kv/k" .. i)
end
"""


def wrk(url: str, seconds: float, connections: int, script: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "loadavg": os.getloadavg()[0],
    }


def measure(
    lease: bool, seconds: float, connections: int, keys: int, tmp: Path
) -> dict[str, dict[str, Any]]:
    root = tmp / ("lease" if lease else "readindex")
    cluster = LocalCluster.create(
        root, 3, serve_args=["--lease-reads"] if lease else [], cluster_id=root.name
    )
    cluster.start_all()
    try:
        cluster.wait_up(60)
        leader = cluster.wait_for_leader(30)
        client = cluster.client(retry_for=30)
        for i in range(keys):
            client.request(
                "PUT", f"/kv/k{i}", b"value-%d" % i, idempotency_key=new_idempotency_key()
            )
        follower = next(i for i in cluster.ids if i != leader)
        cluster.wait_caught_up(follower, 30)
        script = tmp / "get.lua"
        script.write_text(LUA.replace("{keys}", str(keys)))
        rows = {}
        for where, node_id in (("leader", leader), ("follower", follower)):
            rows[where] = wrk(cluster.url(node_id), seconds, connections, script)
            r = rows[where]
            print(
                f"  {'lease' if lease else 'ReadIndex':9} on the {where:8}: "
                f"{r['rps']:8.0f} req/s, p50 {r['p50_ms']:6.2f} ms, p99 {r['p99_ms']:6.2f} ms, "
                f"non-2xx {r['non_2xx']}; load average {r['loadavg']:.1f}",
                flush=True,
            )
        return rows
    finally:
        cluster.stop_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement (5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--keys", type=int, default=100, help="keys read in turn (100)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    print(
        f"GET /kv/k0..k{args.keys - 1}, {args.connections} connections, "
        f"{args.seconds:g} s per row; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="traft-reads-") as tmp:
        result = {
            "readindex": measure(False, args.seconds, args.connections, args.keys, Path(tmp)),
            "lease": measure(True, args.seconds, args.connections, args.keys, Path(tmp)),
        }
    ri, lease = result["readindex"]["leader"], result["lease"]["leader"]
    print(
        f"summary (leader): lease reads {lease['rps']:.0f} req/s p50 {lease['p50_ms']:.2f} ms; "
        f"ReadIndex {ri['rps']:.0f} req/s p50 {ri['p50_ms']:.2f} ms; "
        f"ratio {lease['rps'] / ri['rps']:.2f}x req/s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
