#!/usr/bin/env python3
"""The HTTP client, old and new: `scripts/bench_client.py [--nodes 1,3] [--seconds 5] [--rounds 2]`.

Starts a local ``traft serve`` cluster of each size (``LocalCluster`` on
loopback), finds the leader and sends it sequential requests, one at a time,
from one thread, for ``--seconds`` per variant, in ``--rounds`` interleaved
rounds (so a change in the machine's load hits every variant alike):

- ``new connection``: ``traft.kv.client.Client`` opening a new connection for
  every request and closing it after the answer (what the client did before
  it kept connections alive);
- ``keep-alive``: ``Client`` as it is;
- ``urllib3``, ``httpx``: a bare request loop through those libraries' pools,
  when they are installed (the candidates for the client; neither is a
  dependency of traft).

Each line: requests per second, median latency and the client's own CPU time
per request, for sequential ``PUT /kv/k{n}`` (each one committed: fsync on a
majority) and ``GET /kv/k0`` (linearizable read: no fsync).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import ensure_traft  # noqa: E402

ensure_traft()

from traft.kv.client import Client, Reply  # noqa: E402
from traft.kv.localcluster import LocalCluster  # noqa: E402

Send = Callable[[str, str, bytes | None], int]


class NewConnectionEachTime(Client):
    """The client as it was: one connection per request."""

    def _once(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Reply:
        try:
            return super()._once(method, url, body, headers, timeout)
        finally:
            self.close()


def variants(url: str) -> dict[str, Send]:
    old = NewConnectionEachTime([url], retry_for=5)
    new = Client([url], retry_for=5)
    out: dict[str, Send] = {
        "new connection": lambda m, p, b: old.request(m, p, b).status,
        "keep-alive": lambda m, p, b: new.request(m, p, b).status,
    }
    # The bare loops follow a 307 as the Client does (an election under load moves
    # the leader).
    try:
        import urllib3
    except ImportError:
        pass
    else:
        pool = urllib3.PoolManager(maxsize=1, retries=urllib3.Retry(total=3, redirect=3))
        out["urllib3"] = lambda m, p, b: pool.request(m, url + p, body=b, timeout=10).status
    try:
        import httpx
    except ImportError:
        pass
    else:
        hx = httpx.Client(base_url=url, timeout=10, follow_redirects=True)
        out["httpx"] = lambda m, p, b: hx.request(m, p, content=b).status_code
    return out


def measure(send: Send, method: str, seconds: float) -> tuple[float, float, float]:
    """(requests/s, median ms, client CPU µs per request)."""
    for i in range(20):  # warm up: connections, the node's caches
        send(method, f"/kv/k{i}", b"v" if method == "PUT" else None)
    latencies: list[float] = []
    cpu0 = time.process_time()
    start = now = time.perf_counter()
    end = start + seconds
    n = 0
    while now < end:
        body = b"value-%d" % n if method == "PUT" else None
        status = send(method, f"/kv/k{n % 1000}" if method == "PUT" else "/kv/k0", body)
        if status != 200:
            raise SystemExit(f"{method} answered {status}")
        after = time.perf_counter()
        latencies.append(after - now)
        now = after
        n += 1
    cpu = time.process_time() - cpu0
    return n / (now - start), statistics.median(latencies) * 1000, cpu / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1,3", help="cluster sizes (default 1,3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.2f}")
    for size in (int(x) for x in args.nodes.split(",")):
        root = Path(tempfile.mkdtemp(prefix="traft-bench-client-"))
        cluster = LocalCluster.create(root / "cluster", size)
        cluster.start_all()
        try:
            cluster.wait_up(30)
            leader = cluster.wait_for_leader(20)
            url = cluster.url(leader)
            sends = variants(url)
            results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
            for _ in range(args.rounds):
                for method in ("PUT", "GET"):
                    for name, send in sends.items():
                        results.setdefault((method, name), []).append(
                            measure(send, method, args.seconds)
                        )
            print(f"\n{size} node(s), leader {url}, sequential requests, one thread")
            print(f"  {'':4} {'client':15} {'req/s':>8} {'p50 ms':>8} {'CPU µs/req':>11}")
            for (method, name), rows in results.items():
                rate = statistics.mean(r[0] for r in rows)
                p50 = statistics.mean(r[1] for r in rows)
                cpu = statistics.mean(r[2] for r in rows)
                print(f"  {method:4} {name:15} {rate:8.0f} {p50:8.2f} {cpu:11.0f}")
        finally:
            cluster.stop_all()
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
