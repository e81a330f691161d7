#!/usr/bin/env python3
"""traft serve against etcd over HTTP, side by side: `scripts/bench_http.py [--quick]`.

What it does, in one run:

1. Checks for ``wrk`` and ``etcd`` (Debian's ``wrk`` and ``etcd-server``
   packages) and, when one is missing, says so and installs it with
   ``apt-get update && apt-get install -y ...`` (root only; otherwise it
   stops and prints the command).
2. Starts two 3-node clusters on loopback, each node fsyncing to a fresh
   directory under the same temporary folder: ``traft serve``
   (``LocalCluster``, as ``scripts/cluster`` does) and etcd (the Debian
   build, default settings).
3. For each workload and each number of connections, runs the same ``wrk``
   load (``-t2``, one connection per request in flight, keep-alive) against
   each cluster's leader, one system after the other (the order alternates
   row by row so drift hurts both alike), and records requests/s, p50, p90,
   p99, socket errors and non-2xx answers (for traft, broken down by
   status from its ``/metrics``: 503s during an election are documented),
   and the CPU time the cluster's three processes used per request (from
   ``/proc``; it includes their idle work, such as ticks).

The workloads, with the same keys and values on both sides:

=========  ====================================  ======================================
workload   traft                                 etcd (v3 JSON gateway, base64 keys)
=========  ====================================  ======================================
put        ``PUT /kv/k{i}`` body ``value-{i}``   ``POST /v3/kv/put`` ``{key, value}``
           (i cycles over 1000 keys)
get        ``GET /kv/k{i}`` (100 keys, preloaded) ``POST /v3/kv/range`` ``{key}``
           linearizable (ReadIndex)              linearizable (etcd's default)
ticket     ``POST /ticket``: a unique, increasing ``POST /v3/kv/put`` to one key
           number                                ``ticket``: each answer carries a
                                                 unique, increasing revision
=========  ====================================  ======================================

Prints a progress line per measurement and a summary table at the end with
the ratio traft/etcd per row (>1: traft is faster; for latencies the ratio
is traft's p50 over etcd's). Records the load average (``uptime``) at the
start and beside every measurement: on a busy machine the numbers are
noise, so run it on a quiet one (load average below 1).

Options: ``--quick`` (3 s per measurement, 1 and 64 connections),
``--seconds``, ``--connections``, ``--workloads``, ``--json PATH``,
``--plot PATH`` (needs matplotlib: ``pip install -e '.[plot]'``),
``--profile DIR`` (py-spy records traft's leader during every traft
measurement at 64 connections; ``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import ensure_traft  # noqa: E402

ensure_traft()

from traft.kv.localcluster import LOOPBACK, LocalCluster, free_ports  # noqa: E402

PUT_KEYS = 1000
GET_KEYS = 100
WORKLOADS = ("put", "get", "ticket")
SYSTEMS = ("etcd", "traft")

# --- wrk scripts ----------------------------------------------------------------

WRK_DONE = r"""
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, "
    .. "\"non2xx\": %d, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, "
    .. "\"max_ms\": %.3f}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def _lua_string(data: bytes) -> str:
    """A Lua literal for ``data`` (every byte as a decimal escape); nil when empty."""
    return '"' + "".join(f"\\{b}" for b in data) + '"' if data else "nil"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def wrk_script(system: str, workload: str) -> str:
    """A wrk Lua script cycling through precomputed requests (no Lua work per request)."""
    requests: list[tuple[str, str, bytes]] = []  # method, path, body
    if workload == "put":
        for i in range(PUT_KEYS):
            key, value = f"k{i}", f"value-{i}"
            if system == "traft":
                requests.append(("PUT", f"/kv/{key}", value.encode()))
            else:
                body = json.dumps({"key": _b64(key), "value": _b64(value)})
                requests.append(("POST", "/v3/kv/put", body.encode()))
    elif workload == "get":
        for i in range(GET_KEYS):
            key = f"k{i}"
            if system == "traft":
                requests.append(("GET", f"/kv/{key}", b""))
            else:
                body = json.dumps({"key": _b64(key)})
                requests.append(("POST", "/v3/kv/range", body.encode()))
    elif system == "traft":
        requests.append(("POST", "/ticket", b""))
    else:
        body = json.dumps({"key": _b64("ticket"), "value": ""})
        requests.append(("POST", "/v3/kv/put", body.encode()))
    rows = ",\n".join(
        f'  wrk.format("{m}", "{p}", {{["Content-Type"] = "application/json"}}, {_lua_string(b)})'
        if system == "etcd"
        else f'  wrk.format("{m}", "{p}", nil, {_lua_string(b)})'
        for m, p, b in requests
    )
    return (
        "local counter = 0\n"
        "local reqs\n"
        "init = function(args)\n  reqs = {\n" + rows + "\n  }\n"
        "  counter = math.random(#reqs)\nend\n"
        "request = function()\n  counter = counter % #reqs + 1\n  return reqs[counter]\nend\n"
        + WRK_DONE
    )


def run_wrk(url: str, script: str, connections: int, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{min(2, connections)}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
                "--timeout",
                "10s",
                "-s",
                f.name,
                url,
            ],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        raise SystemExit(
            f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}"
        )
    line = next(x for x in out.stdout.splitlines() if x.startswith("JSON "))
    result: dict[str, Any] = json.loads(line[5:])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


# --- tools --------------------------------------------------------------------------


def ensure_tools() -> None:
    """Install wrk and etcd-server from Debian when missing, saying so."""
    missing = [
        pkg for tool, pkg in (("wrk", "wrk"), ("etcd", "etcd-server")) if not shutil.which(tool)
    ]
    if not missing:
        return
    command = ["apt-get", "install", "-y", *missing]
    print(f"{', '.join(missing)} not found: installing with apt-get ({' '.join(command)})")
    if os.geteuid() != 0:
        sys.exit(f"not root: run `apt-get update && {' '.join(command)}` first")
    subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    for tool in ("wrk", "etcd"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is still not on PATH after apt-get install")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes ``pids`` have used (Linux ``/proc``; 0 elsewhere).

    Under load, CPU per request is what a request's latency grows with: a
    process that has used more CPU waits longer for one after each wake-up
    (docs/benchmarks.md, "Where a single PUT's time goes").
    """
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 2.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


# --- etcd ---------------------------------------------------------------------------


class EtcdCluster:
    """Three etcd members on loopback, started as child processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.client_ports = free_ports(3, socket.SOCK_STREAM)
        self.peer_ports = free_ports(3, socket.SOCK_STREAM)
        self.procs: list[subprocess.Popen[bytes]] = []

    def url(self, i: int) -> str:
        return f"http://{LOOPBACK}:{self.client_ports[i]}"

    def start(self) -> None:
        initial = ",".join(f"e{i}=http://{LOOPBACK}:{self.peer_ports[i]}" for i in range(3))
        for i in range(3):
            data = self.root / f"e{i}"
            log = open(self.root / f"e{i}.log", "wb")  # noqa: SIM115 (closed with the process)
            self.procs.append(
                subprocess.Popen(
                    [
                        "etcd",
                        "--name", f"e{i}",
                        "--data-dir", str(data),
                        "--listen-client-urls", self.url(i),
                        "--advertise-client-urls", self.url(i),
                        "--listen-peer-urls", f"http://{LOOPBACK}:{self.peer_ports[i]}",
                        "--initial-advertise-peer-urls", f"http://{LOOPBACK}:{self.peer_ports[i]}",
                        "--initial-cluster", initial,
                        "--initial-cluster-state", "new",
                        "--initial-cluster-token", f"bench-{os.getpid()}",
                        "--log-level", "warn",
                        "--logger", "zap",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )  # fmt: skip

    def leader_url(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(3):
                try:
                    status = http_json(self.url(i) + "/v3/maintenance/status", {})
                except OSError:
                    continue
                if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                    return self.url(i)
            time.sleep(0.2)
        raise SystemExit(f"etcd elected no leader in {timeout:g} s; see {self.root}/e*.log")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- traft --------------------------------------------------------------------------


def traft_statuses(url: str) -> dict[str, float]:
    """traft_http_requests_total by status code, from the leader's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for match in re.finditer(r"^traft_http_requests_total\{([^}]*)\} (\S+)$", text, re.M):
        status = re.search(r'status="(\d+)"', match.group(1))
        if status:
            counts[status.group(1)] = counts.get(status.group(1), 0) + float(match.group(2))
    return counts


@contextmanager
def profiling(pid: int, path: Path | None, seconds: float) -> Iterator[None]:
    if path is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("no profile: py-spy is not installed (.venv/bin/pip install py-spy)")
        yield
        return
    proc = subprocess.Popen(
        [spy, "record", "-p", str(pid), "-d", str(max(1, int(seconds) - 1)), "-o", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        try:
            proc.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()


def preload(system: str, url: str) -> None:
    """Write the keys the get workload reads."""
    for i in range(GET_KEYS):
        key, value = f"k{i}", f"value-{i}"
        if system == "traft":
            request = urllib.request.Request(f"{url}/kv/{key}", data=value.encode(), method="PUT")
            urllib.request.urlopen(request, timeout=5).close()
        else:
            http_json(url + "/v3/kv/put", {"key": _b64(key), "value": _b64(value)}, timeout=5)


# --- the run ------------------------------------------------------------------------


def bad(r: dict[str, Any]) -> bool:
    return bool(r["non2xx"] or r["errors"])


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def print_summary(rows: list[dict[str, Any]]) -> None:
    print()
    print("summary (ratio = traft/etcd: req/s above 1 and p50 below 1 favour traft)")
    header = (
        f"{'workload':<8} {'conns':>5} | {'etcd req/s':>10} {'p50':>7} {'p99':>7} | "
        f"{'traft req/s':>11} {'p50':>7} {'p99':>7} | {'req/s x':>7} {'p50 x':>6} | "
        f"{'cpu us/req e/t':>14} | {'non-2xx e/t':>11} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        e, t = row.get("etcd"), row.get("traft")
        if e is None or t is None:
            continue
        print(
            f"{row['workload']:<8} {row['connections']:>5} | {e['rps']:>10,.0f} "
            f"{e['p50_ms']:>7.2f} {e['p99_ms']:>7.2f} | {t['rps']:>11,.0f} {t['p50_ms']:>7.2f} "
            f"{t['p99_ms']:>7.2f} | {ratio(t['rps'], e['rps']):>7.2f} "
            f"{ratio(t['p50_ms'], e['p50_ms']):>6.2f} | "
            f"{e.get('cpu_us_per_request', float('nan')):>6.0f}/{t.get('cpu_us_per_request', float('nan')):<7.0f} | "
            f"{e['non2xx'] + e['errors']:>5}/{t['non2xx'] + t['errors']:<5} {t['loadavg']:>5.2f}"
            + ("  <- failures: the row's figures include them" if bad(e) or bad(t) else "")
        )
    print(
        "(latencies in ms; cpu us/req e/t: CPU time of each cluster's three processes per "
        "request, etcd/traft; non-2xx e/t: answers other than 2xx (traft's include 3xx, from "
        "its /metrics) plus socket errors, etcd/traft)"
    )
    for row in rows:
        t = row.get("traft") or {}
        if t.get("statuses_non2xx"):
            print(
                f"traft {row['workload']} at {row['connections']} connections answered: "
                + ", ".join(f"{n:g} x {s}" for s, n in sorted(t["statuses_non2xx"].items()))
            )


def plot(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no plot: matplotlib is missing (pip install -e '.[plot]'); skipped {path}")
        return
    rows = results["rows"]
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in rows)]
    fig, axes = plt.subplots(2, len(workloads), figsize=(4.5 * len(workloads), 7), squeeze=False)
    for col, workload in enumerate(workloads):
        mine = [r for r in rows if r["workload"] == workload]
        conns = [r["connections"] for r in mine]
        for system, style in (("etcd", "s--"), ("traft", "o-")):
            rps = [r[system]["rps"] if system in r else float("nan") for r in mine]
            p50 = [r[system]["p50_ms"] if system in r else float("nan") for r in mine]
            axes[0][col].plot(conns, rps, style, label=system)
            axes[1][col].plot(conns, p50, style, label=system)
        axes[0][col].set_title(f"{workload}: requests/s")
        axes[1][col].set_title(f"{workload}: p50 latency (ms)")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log", base=2)
            ax.set_xticks(conns, [str(c) for c in conns])
            ax.set_xlabel("connections")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.suptitle(f"traft serve vs etcd, 3 nodes each, wrk; load at start {results['load_start']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 s per measurement at 1 and 64 connections"
    )
    parser.add_argument(
        "--seconds", type=float, help="seconds per measurement (default 10; 3 with --quick)"
    )
    parser.add_argument(
        "--connections",
        "--concurrency",
        help="comma-separated (default 1,16,64,256; 1,64 with --quick)",
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="default put,get,ticket")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="default etcd,traft")
    parser.add_argument(
        "--warmup", type=float, help="seconds of unmeasured load first (default 2; 1 with --quick)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write all results here")
    parser.add_argument(
        "--plot", type=Path, metavar="PATH", help="write a PNG plot here (needs matplotlib)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy SVGs of traft's leader at 64 connections",
    )
    args = parser.parse_args()
    seconds = args.seconds or (3 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    levels = [
        int(c) for c in (args.connections or ("1,64" if args.quick else "1,16,64,256")).split(",")
    ]
    workloads = [w for w in args.workloads.split(",") if w]
    systems = [s for s in args.systems.split(",") if s]
    if set(workloads) - set(WORKLOADS) or set(systems) - set(SYSTEMS):
        parser.error(f"workloads are {', '.join(WORKLOADS)}; systems are {', '.join(SYSTEMS)}")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    ensure_tools()
    etcd_version = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout
    load_start = loadavg()
    print(f"load average at start: {load_start} (uptime: {subprocess.getoutput('uptime').strip()})")
    if os.getloadavg()[0] >= 1:
        print("warning: the machine is busy (load >= 1); the figures will be noisy")
    print(
        f"{len(workloads)} workloads x {len(levels)} connection counts x {len(systems)} systems, "
        f"{seconds:g} s each after {warmup:g} s of warm-up: about "
        f"{len(workloads) * len(levels) * len(systems) * (seconds + warmup + 1) / 60:.0f} min",
        flush=True,
    )
    results: dict[str, Any] = {
        "load_start": load_start,
        "seconds": seconds,
        "etcd_version": etcd_version.splitlines()[0] if etcd_version else "?",
        "cpus": os.cpu_count(),
        "rows": [],
    }
    with tempfile.TemporaryDirectory(prefix="traft-bench-http-") as tmp:
        root = Path(tmp)
        etcd = EtcdCluster(root / "etcd") if "etcd" in systems else None
        traft = LocalCluster.create(root / "traft", 3) if "traft" in systems else None
        try:
            urls: dict[str, str] = {}
            if etcd is not None:
                (root / "etcd").mkdir()
                etcd.start()
            if traft is not None:
                traft.start_all()
            if etcd is not None:
                urls["etcd"] = etcd.leader_url()
            leader = 0
            if traft is not None:
                traft.wait_up(30)
                leader = traft.wait_for_leader(15)
                urls["traft"] = traft.url(leader)
            print("leaders: " + ", ".join(f"{s} {u}" for s, u in urls.items()), flush=True)
            for system, url in urls.items():
                preload(system, url)
            n = 0
            for workload in workloads:
                for conns in levels:
                    row: dict[str, Any] = {"workload": workload, "connections": conns}
                    order = systems if n % 2 == 0 else systems[::-1]
                    n += 1
                    for system in order:
                        # Under heavy load an election may move the leader:
                        # find it again before every measurement (a traft
                        # follower answers 307, which wrk counts as success).
                        if system == "traft" and traft is not None:
                            leader = traft.wait_for_leader(15)
                            urls["traft"] = traft.url(leader)
                        elif etcd is not None:
                            urls["etcd"] = etcd.leader_url()
                        url = urls[system]
                        script = wrk_script(system, workload)
                        if warmup > 0:
                            run_wrk(url, script, conns, warmup)
                        before = traft_statuses(url) if system == "traft" else {}
                        profile = None
                        if system == "traft" and args.profile and conns == 64:
                            profile = args.profile / f"traft-{workload}-{conns}.svg"
                        pid = traft.pid(leader) if traft is not None else None
                        if system == "traft" and traft is not None:
                            pids = [p for p in map(traft.pid, traft.ids) if p is not None]
                        else:
                            pids = [proc.pid for proc in etcd.procs] if etcd is not None else []
                        cpu_before = cpu_seconds(pids)
                        with profiling(pid or 0, profile if pid else None, seconds):
                            r = run_wrk(url, script, conns, seconds)
                        r["loadavg"] = os.getloadavg()[0]
                        r["cpu_us_per_request"] = (
                            (cpu_seconds(pids) - cpu_before) * 1e6 / r["requests"]
                            if r["requests"]
                            else float("nan")
                        )
                        if system == "traft":
                            after = traft_statuses(url)
                            r["statuses_non2xx"] = {
                                s: after.get(s, 0) - before.get(s, 0)
                                for s in after
                                if not s.startswith("2") and after.get(s, 0) > before.get(s, 0)
                            }
                            # wrk counts only >= 400; the node counts 3xx too.
                            r["non2xx"] = max(r["non2xx"], int(sum(r["statuses_non2xx"].values())))
                        row[system] = r
                        print(
                            f"{workload:<6} {conns:>4} conns {system:<5}: {r['rps']:>9,.0f} req/s  "
                            f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                            f"cpu/req {r['cpu_us_per_request']:5.0f} us  "
                            f"non-2xx {r['non2xx']}  errors {r['errors']}  load {r['loadavg']:.2f}",
                            flush=True,
                        )
                    if "etcd" in row and "traft" in row:
                        row["ratio_rps"] = ratio(row["traft"]["rps"], row["etcd"]["rps"])
                        row["ratio_p50"] = ratio(row["traft"]["p50_ms"], row["etcd"]["p50_ms"])
                    results["rows"].append(row)
        finally:
            if traft is not None:
                traft.stop_all()
            if etcd is not None:
                etcd.stop()
    results["load_end"] = loadavg()
    print_summary(results["rows"])
    print(f"load average at start {load_start}, at the end {results['load_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.json}")
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
