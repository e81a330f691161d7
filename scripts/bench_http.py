#!/usr/bin/env python3
"""The HTTP path under load: `scripts/bench_http.py [--concurrency 1,16,64,256] [--seconds 10]`.

Starts a 3-node ``traft serve`` cluster on loopback (``LocalCluster``, as
``scripts/cluster`` does, fsync on), then loads the leader's ``POST /ticket``
and ``PUT /kv/{key}`` from a separate process: ``wrk`` when it is installed
(``apt-get install wrk``), otherwise a small trio client with keep-alive
connections. Prints requests/s and latency percentiles per concurrency;
``--json FILE`` writes them.
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

from traft.kv.localcluster import LocalCluster  # noqa: E402

WRK_PUT = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("PUT", "/kv/k" .. (counter % 1000), nil, "value-" .. counter)
end
"""

WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %d, \\"errors\\": %d, \\"non2xx\\": %d, "
    .. "\\"p50_ms\\": %.3f, \\"p90_ms\\": %.3f, \\"p99_ms\\": %.3f, \\"max_ms\\": %.3f}\\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def run_wrk(url: str, method: str, concurrency: int, seconds: float) -> dict[str, Any]:
    script = WRK_DONE + (WRK_PUT if method == "PUT" else 'wrk.method = "POST"\n')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        path = "/" if method == "PUT" else "/ticket"
        out = subprocess.run(
            [
                "wrk",
                f"-t{min(2, concurrency)}",
                f"-c{concurrency}",
                f"-d{seconds:g}s",
                "--timeout",
                "10s",
                "-s",
                f.name,
                url + path,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    result: dict[str, Any] = json.loads(line[5:])
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(match.group(1)) if match else float("nan")
    return result


def run_python(url: str, method: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """The fallback load generator: trio, one keep-alive connection per worker."""
    import time

    import trio

    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0

    async def worker(k: int) -> None:
        nonlocal errors
        stream = await trio.open_tcp_stream(host, int(port))
        deadline = time.perf_counter() + seconds
        n = 0
        buf = b""
        while time.perf_counter() < deadline:
            n += 1
            if method == "PUT":
                body = b"value-%d" % n
                head = f"PUT /kv/k{(k * 7919 + n) % 1000} HTTP/1.1\r\n"
            else:
                body = b""
                head = "POST /ticket HTTP/1.1\r\n"
            request = (
                head + f"Host: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            start = time.perf_counter()
            await stream.send_all(request)
            while b"\r\n\r\n" not in buf:
                buf += await stream.receive_some(65536)
            header, _, buf = buf.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", header).group(1))  # type: ignore[union-attr]
            while len(buf) < length:
                buf += await stream.receive_some(65536)
            buf = buf[length:]
            if not header.startswith(b"HTTP/1.1 200"):
                errors += 1
            latencies.append(time.perf_counter() - start)
        await stream.aclose()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for k in range(concurrency):
                nursery.start_soon(worker, k)

    trio.run(main)
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(int(p / 100 * n), n - 1)] * 1000

    return {
        "requests": n,
        "errors": errors,
        "non2xx": errors,
        "rps": n / seconds,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,16,64,256")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    load = run_wrk if client == "wrk" else run_python
    results: dict[str, list[dict[str, Any]]] = {"ticket": [], "put": []}
    with tempfile.TemporaryDirectory(prefix="traft-http-bench-") as tmp:
        cluster = LocalCluster.create(Path(tmp) / "cluster", 3)
        cluster.start_all()
        try:
            cluster.wait_up(30)
            leader = cluster.wait_for_leader(15)
            url = cluster.url(leader)
            print(f"3 traft serve nodes, leader {leader} at {url}; client: {client}", flush=True)
            print(
                f"{'endpoint':<12} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} "
                f"{'p99 ms':>8} {'max ms':>8} {'errors':>7}",
                flush=True,
            )
            for name, method in (("ticket", "POST"), ("put", "PUT")):
                for c in levels:
                    r = load(url, method, c, args.seconds)
                    r["concurrency"] = c
                    r["loadavg"] = os.getloadavg()[0]
                    results[name].append(r)
                    label = "POST /ticket" if name == "ticket" else "PUT /kv/k"
                    print(
                        f"{label:<12} {c:>5} {r['rps']:>9,.0f} {r['p50_ms']:>8.2f} "
                        f"{r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.1f} "
                        f"{r['errors'] + r['non2xx']:>7}",
                        flush=True,
                    )
        finally:
            cluster.stop_all()
    if args.json:
        Path(args.json).write_text(json.dumps({"client": client, **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
