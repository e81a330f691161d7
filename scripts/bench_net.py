#!/usr/bin/env python3
"""Throughput of the net package: envelope codec, and loopback UDP in one process.

Three measurements, each with and without a cluster key:

1. codec: ``encode`` then ``decode`` of one ``--payload``-byte datagram, in a
   tight loop; reports datagrams per second (one encode plus one decode each).
2. pipelined echo: endpoint 1 keeps ``--window`` datagrams in flight to
   endpoint 2, which echoes each back; reports round trips per second and
   datagrams per second (two per round trip: what a Raft leader and follower
   exchange as AppendEntries and responses). Datagrams lost to full buffers
   are detected by a timeout, counted and replaced.
3. ping-pong latency: one datagram in flight; median and 99th percentile
   round-trip time.

    python scripts/bench_net.py [--count 100000] [--payload 200] [--window 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import trio

from net import EnvelopeCodec, UdpEndpoint

KEY = b"bench key of 32 bytes, 256 bits!"
CLUSTER_ID = 1


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_codec(count: int, payload: bytes, key: bytes | None) -> float:
    codec = EnvelopeCodec(CLUSTER_ID, key=key)
    encode, decode = codec.encode, codec.decode
    start = time.perf_counter()
    for _ in range(count):
        decode(encode(7, payload))
    return count / (time.perf_counter() - start)


async def echo(endpoint: UdpEndpoint) -> None:
    send = endpoint.send
    async for datagram in endpoint.receive_channel:
        send(datagram.sender_id, datagram.payload)


async def pipelined(
    count: int, payload: bytes, window: int, key: bytes | None, report: Callable[[int], None]
) -> tuple[float, int, dict[str, int], dict[str, int]]:
    """Round trips per second with ``window`` in flight; also lost count and stats."""
    one = UdpEndpoint(1, cluster_id=CLUSTER_ID, key=key)
    two = UdpEndpoint(2, cluster_id=CLUSTER_ID, key=key)
    async with trio.open_nursery() as nursery:
        one.set_peer(2, await nursery.start(two.serve))
        two.set_peer(1, await nursery.start(one.serve))
        nursery.start_soon(echo, two)
        sent = received = lost = 0
        in_flight = 0
        step = max(count // 4, 1)
        start = time.perf_counter()
        while received < count:
            while in_flight < window and sent < count:
                one.send(2, payload)
                sent += 1
                in_flight += 1
            with trio.move_on_after(0.5) as timeout:
                await one.receive_channel.receive()
            if timeout.cancelled_caught:
                lost += in_flight  # replace what vanished (full socket buffers)
                received += in_flight
                in_flight = 0
                continue
            replies = 1
            while True:  # take whatever else has arrived, without a wait each
                try:
                    one.receive_channel.receive_nowait()
                except trio.WouldBlock:
                    break
                replies += 1
            for _ in range(replies):
                received += 1
                if received % step == 0:
                    report(received)
            in_flight -= replies
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return count / elapsed, lost, one.stats, two.stats


async def ping_pong(count: int, payload: bytes, key: bytes | None) -> list[float]:
    """Round-trip times in microseconds, one datagram in flight."""
    one = UdpEndpoint(1, cluster_id=CLUSTER_ID, key=key)
    two = UdpEndpoint(2, cluster_id=CLUSTER_ID, key=key)
    samples = []
    async with trio.open_nursery() as nursery:
        one.set_peer(2, await nursery.start(two.serve))
        two.set_peer(1, await nursery.start(one.serve))
        nursery.start_soon(echo, two)
        with trio.fail_after(60):
            for _ in range(count):
                start = time.perf_counter_ns()
                one.send(2, payload)
                await one.receive_channel.receive()
                samples.append((time.perf_counter_ns() - start) / 1000)
        nursery.cancel_scope.cancel()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="datagrams per measurement")
    parser.add_argument("--payload", type=int, default=200, help="payload bytes")
    parser.add_argument("--window", type=int, default=64, help="datagrams in flight (echo)")
    args = parser.parse_args()
    payload = b"p" * args.payload
    latency_count = max(args.count // 10, 100)
    rows = []
    for label, key in (("no key", None), ("HMAC key", KEY)):
        progress(f"[{label}] codec: {args.count} encode+decode ...")
        codec_rate = bench_codec(args.count, payload, key)
        progress(f"[{label}] codec: {codec_rate:,.0f} datagrams/s")

        progress(f"[{label}] echo: {args.count} round trips, window {args.window} ...")
        echo_rate, lost, out_stats, in_stats = trio.run(
            pipelined,
            args.count,
            payload,
            args.window,
            key,
            lambda n, label=label: progress(f"[{label}] echo: {n} round trips done"),
        )
        progress(f"[{label}] echo: {echo_rate:,.0f} round trips/s, {lost} lost")

        progress(f"[{label}] ping-pong: {latency_count} round trips ...")
        samples = trio.run(ping_pong, latency_count, payload, key)
        p50 = statistics.median(samples)
        p99 = statistics.quantiles(samples, n=100)[98]
        progress(f"[{label}] ping-pong: median {p50:.0f} us, p99 {p99:.0f} us")
        dropped = {
            k: v
            for stats in (out_stats, in_stats)
            for k, v in stats.items()
            if "dropped" in k and v
        }
        rows.append((label, codec_rate, echo_rate, lost, p50, p99, dropped))

    print()
    print(
        f"net benchmark: payload {args.payload} B, {args.count} datagrams per measurement, "
        f"echo window {args.window}, Python {sys.version.split()[0]}, trio {trio.__version__}"
    )
    header = (
        f"{'':10} {'codec pairs/s':>13} {'echo RT/s':>10} {'echo dg/s':>10} "
        f"{'lost':>5} {'RTT p50':>8} {'RTT p99':>8}"
    )
    print(header)
    print("-" * len(header))
    for label, codec_rate, echo_rate, lost, p50, p99, dropped in rows:
        print(
            f"{label:10} {codec_rate:13,.0f} {echo_rate:10,.0f} {2 * echo_rate:10,.0f} "
            f"{lost:5} {p50:6.0f}us {p99:6.0f}us"
        )
        if dropped:
            print(f"{'':10} drops counted: {dropped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
