#!/usr/bin/env python3
"""Failover under load: `scripts/bench_failover.py [--kills 20] [--json FILE] [--plot PNG]`.

A 3-node ``traft serve`` cluster on loopback (``LocalCluster``, default
timing: elections drawn from [300, 600) ms) takes a steady load of
``PUT /kv/load-*`` from two client threads. Then, ``--kills`` times: find
the leader, SIGKILL it, and probe every live node with ``PUT /kv/probe``
(0.5 s timeout, no redirects, a round every 5 ms) until one answers 200:
the time from the kill to that answer is the failover time. The killed node
is restarted and the cluster left to settle before the next kill. Prints
each time, the percentiles, and writes a CDF plot.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import ensure_traft  # noqa: E402

ensure_traft()

from traft.kv.client import ClientError  # noqa: E402
from traft.kv.localcluster import ClusterError, LocalCluster  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def put_once(url: str, key: str, value: bytes, timeout: float) -> int:
    """One PUT without redirects or retries; its status (0 when unreachable)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("PUT", f"/kv/{key}", body=value)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--json", help="write the times to this file")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "bench-failover.png"))
    args = parser.parse_args()
    times: list[float] = []
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="traft-failover-") as tmp:
        cluster = LocalCluster.create(Path(tmp) / "cluster", 3)
        cluster.start_all()
        load_ok = [0]

        def loader(k: int) -> None:
            client = cluster.client(timeout=2.0, retry_for=5.0)
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    client.request("PUT", f"/kv/load-{k}-{n % 100}", b"v%d" % n)
                    load_ok[0] += 1
                except ClientError:
                    pass

        threads = [threading.Thread(target=loader, args=(k,), daemon=True) for k in range(2)]
        try:
            cluster.wait_up(30)
            cluster.wait_for_leader(15)
            for t in threads:
                t.start()
            time.sleep(1.0)
            print(f"3 traft serve nodes; {args.kills} kills of the leader under load", flush=True)
            for k in range(args.kills):
                leader = cluster.wait_for_leader(15)
                others = [cluster.url(i) for i in cluster.ids if i != leader]
                cluster.signal(leader, signal.SIGKILL)
                start = time.monotonic()
                done = False
                while not done:
                    for url in others:
                        if put_once(url, "probe", b"%d" % k, 0.5) == 200:
                            done = True
                            break
                    else:
                        time.sleep(0.005)
                    if time.monotonic() - start > 30:
                        raise ClusterError("no write succeeded within 30 s of the kill")
                elapsed = time.monotonic() - start
                times.append(elapsed)
                print(
                    f"  kill {k + 1:>2}: node {leader}, a write succeeded after "
                    f"{elapsed * 1000:7.0f} ms",
                    flush=True,
                )
                cluster.wait_exit(leader, 10)
                cluster.start(leader)
                cluster.wait_up(30)
                time.sleep(1.0)
        finally:
            stop.set()
            cluster.stop_all()
    times.sort()
    n = len(times)

    def pct(p: float) -> float:
        return times[min(int(p / 100 * n), n - 1)] * 1000

    print(
        f"failover ms: p50 {pct(50):.0f}, p90 {pct(90):.0f}, p99 {pct(99):.0f}, "
        f"max {times[-1] * 1000:.0f}; load writes acknowledged {load_ok[0]}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    result: dict[str, Any] = {
        "times_ms": [t * 1000 for t in times],
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": times[-1] * 1000,
        "election_timeout_ms": [300, 600],
        "loadavg": os.getloadavg()[0],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.step([t * 1000 for t in times], [(i + 1) / n for i in range(n)], where="post")
    ax.axvline(1200, color="red", linestyle="--", label="target: 2 x max election timeout")
    ax.set_xlabel("ms from SIGKILL of the leader to the next successful write")
    ax.set_ylabel("fraction of kills")
    ax.set_title(f"Failover CDF, {n} kills of the leader under load")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=100)
    print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
