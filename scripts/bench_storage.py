#!/usr/bin/env python3
"""Benchmark the storage package against the targets of issue 3.

Theory of operation: four measurements, each in a fresh directory under
``--dir`` (a temporary directory on the same disk by default), printed as
they go and summarised in a table at the end:

1. batched appends of 100-byte records in batches of 1,000, no sync: payload
   MB/s (target >= 100), timing only ``append`` (records are built outside
   the timed region, as a caller would have them already);
2. synced batches of 100 records: ``append`` + ``sync`` per batch, batches/s
   (target >= 3,000, or close to the disk's fsync rate). Yardsticks: the
   disk's rate for a bare append + ``fdatasync`` of 100 bytes, and of one
   batch's bytes measured in rounds alternating with the log's (medians are
   reported: the disk is shared and its speed drifts); and the same run on
   tmpfs, the code's own ceiling when an fsync costs nothing;
3. opening the 1,000,000-record log written in (1), warm cache (target <= 2 s);
4. memory of an open log (tracemalloc), for 100-byte and 1,000-byte records
   at the same count: the index costs the same whatever the data size.

Usage: ``python scripts/bench_storage.py [--records N] [--dir DIR] [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc

from storage import Record, SegmentLog

RECORD_BYTES = 100


def say(message: str = "", end: str = "\n") -> None:
    print(message, end=end, flush=True)


def progress(done: int, total: int, started: float) -> None:
    if total >= 10 and done % max(1, total // 10) == 0:
        say(f" {100 * done // total}%", end="")
    if done == total:
        say(f"  ({time.perf_counter() - started:.2f} s)")


def raw_fsync_rate(base: str, size: int, count: int) -> float:
    """The yardstick: appends of ``size`` bytes, each followed by ``fdatasync``, per second."""
    path = os.path.join(base, f"raw-{size}.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    data = os.urandom(size)
    try:
        for k in range(20):  # warm up
            os.pwrite(fd, data, k * size)
            os.fdatasync(fd)
        started = time.perf_counter()
        for k in range(20, 20 + count):
            os.pwrite(fd, data, k * size)
            os.fdatasync(fd)
        return count / (time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(path)


def batches(first: int, count: int, size: int, data: bytes) -> list[list[Record]]:
    out = []
    index = first
    for _ in range(count):
        out.append([Record(i, 1 + i // 100_000, 0, data) for i in range(index, index + size)])
        index += size
    return out


def append_throughput(path: str, records: int) -> tuple[float, float, float]:
    """Returns (payload MB/s before sync, on-disk MB/s, seconds of the final sync)."""
    data = os.urandom(RECORD_BYTES)
    batch = 1000
    elapsed = 0.0
    say(f"   appending {records:,} records of {RECORD_BYTES} bytes in batches of {batch}:", end="")
    started = time.perf_counter()
    with SegmentLog.open(path) as log:
        total = records // batch
        for k in range(total):
            (chunk,) = batches(1 + k * batch, 1, batch, data)
            t0 = time.perf_counter()
            log.append(chunk)
            elapsed += time.perf_counter() - t0
            progress(k + 1, total, started)
        t0 = time.perf_counter()
        log.sync()
        sync_s = time.perf_counter() - t0
        disk = log.disk_bytes
    payload = records * RECORD_BYTES
    return payload / elapsed / 1e6, disk / elapsed / 1e6, sync_s


def synced_batches(
    base: str, path: str, count: int, rounds: int
) -> tuple[list[float], list[float], float, int]:
    """Append + sync of 100-record batches, in ``rounds`` rounds of ``count // rounds``.

    Each round is followed by the yardstick, a bare append + ``fdatasync`` of
    the same bytes, so both see the disk in the same mood (it is shared, and
    its speed drifts). Returns the per-round rates of both, the CPU ms per
    batch, and the bytes per batch.
    """
    data = os.urandom(RECORD_BYTES)
    per_round = max(1, count // rounds)
    log_rates: list[float] = []
    raw_rates: list[float] = []
    cpu = 0.0
    say(
        f"   {rounds} rounds of {per_round:,} batches (append + sync each) then as many bare fdatasyncs:"
    )
    with SegmentLog.open(path) as log:
        index = 1
        warm = batches(index, 20, 100, data)
        index += 2000
        for b in warm:
            log.append(b)
            log.sync()
        batch_bytes = log.disk_bytes // 20
        for r in range(rounds):
            work = batches(index, per_round, 100, data)  # built before the clock starts
            index += 100 * per_round
            started, cpu0 = time.perf_counter(), time.process_time()
            for b in work:
                log.append(b)
                log.sync()
            log_rates.append(per_round / (time.perf_counter() - started))
            cpu += time.process_time() - cpu0
            raw_rates.append(raw_fsync_rate(base, batch_bytes, per_round))
            say(f"   round {r + 1}: log {log_rates[-1]:,.0f}/s, disk {raw_rates[-1]:,.0f}/s")
    return log_rates, raw_rates, 1000 * cpu / (per_round * rounds), batch_bytes


def open_time(path: str, repeats: int) -> tuple[float, float, int]:
    times = []
    last = 0
    say(f"   opening it {repeats} times:", end="")
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        log = SegmentLog.open(path)
        times.append(time.perf_counter() - started)
        last = log.last_index
        log.close()
        say(f" {times[-1]:.3f}s", end="")
    say()
    return min(times), statistics.median(times), last


def open_memory(path: str) -> tuple[int, int]:
    """(bytes held by the open log, peak bytes while opening), per tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        log = SegmentLog.open(path)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    log.close()
    return current, peak


def write_log(path: str, records: int, size: int) -> None:
    data = os.urandom(size)
    with SegmentLog.open(path) as log:
        for chunk in batches(1, records // 1000, 1000, data):
            log.append(chunk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="log size for (1) and (3)")
    parser.add_argument("--synced", type=int, default=5_000, help="synced batches for (2)")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    args = parser.parse_args(argv)
    if args.quick:
        args.records //= 10
        args.synced //= 10
    base = tempfile.mkdtemp(prefix="bench-storage-", dir=args.dir)
    results: list[tuple[str, str, str, bool]] = []

    def record(name: str, target: str, value: str, ok: bool) -> None:
        results.append((name, target, value, ok))

    try:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        say(
            f"storage benchmark in {base} (python {sys.version.split()[0]}, "
            f"{os.cpu_count()} CPUs, load average {load:.2f})"
        )
        say("1. batched append, no sync")
        log_path = os.path.join(base, "big")
        mb_s, disk_mb_s, sync_s = append_throughput(log_path, args.records)
        say(
            f"   {mb_s:,.1f} MB/s of payload ({disk_mb_s:,.1f} MB/s written); "
            f"final sync {sync_s:.3f} s"
        )
        record("batched append, 100 B records", ">= 100 MB/s", f"{mb_s:,.1f} MB/s", mb_s >= 100)

        say("2. synced batches, against the disk's own fsync rate")
        n = args.synced
        raw_small = raw_fsync_rate(base, RECORD_BYTES, n // 5)
        say(f"   disk: {raw_small:,.0f} fsyncs/s for 100-byte appends")
        log_rates, raw_rates, cpu_ms, batch_bytes = synced_batches(
            base, os.path.join(base, "synced"), n, 5
        )
        rate, raw_batch = statistics.median(log_rates), statistics.median(raw_rates)
        say(
            f"   median: log {rate:,.0f} batches/s = {rate * 100:,.0f} records/s "
            f"({cpu_ms:.3f} ms CPU/batch); disk {raw_batch:,.0f}/s for {batch_bytes:,}-byte "
            f"appends: the log reaches {rate / raw_batch:.0%} of it"
        )
        record("disk: append 100 B + fdatasync", "-", f"{raw_small:,.0f}/s", True)
        record(f"disk: append {batch_bytes:,} B + fdatasync", "-", f"{raw_batch:,.0f}/s", True)
        record(
            "synced batches of 100 records",
            ">= 3,000/s",
            f"{rate:,.0f}/s ({rate / raw_batch:.0%} of disk)",
            rate >= 3000,
        )
        shm = "/dev/shm"
        if os.path.isdir(shm) and args.dir is None:
            say("   the same on tmpfs, where fsync costs nothing (the code's own ceiling):")
            shm_base = tempfile.mkdtemp(prefix="bench-storage-", dir=shm)
            try:
                ceiling = statistics.median(
                    synced_batches(shm_base, os.path.join(shm_base, "s"), n, 1)[0]
                )
            finally:
                shutil.rmtree(shm_base, ignore_errors=True)
            say(f"   tmpfs: {ceiling:,.0f} batches/s")
            record("synced batches on tmpfs (ceiling)", "-", f"{ceiling:,.0f}/s", True)

        say(f"3. open a log of {args.records:,} records")
        best, median, last = open_time(log_path, 3)
        assert last == args.records, last
        say(f"   best {best:.3f} s, median {median:.3f} s")
        record(
            f"open {args.records:,} records", "<= 2 s", f"{median:.3f} s (median of 3)", median <= 2
        )

        say("4. memory of an open log (tracemalloc)")
        current, peak = open_memory(log_path)
        per = current / args.records
        say(
            f"   {args.records:,} x {RECORD_BYTES} B: {current / 1e6:.2f} MB held ({per:.1f} B/record), peak {peak / 1e6:.2f} MB"
        )
        count = max(1000, args.records // 10)
        sizes = {}
        for size in (100, 1000):
            path = os.path.join(base, f"mem{size}")
            say(f"   writing {count:,} records of {size} B ...", end="")
            write_log(path, count, size)
            sizes[size] = open_memory(path)[0]
            say(f" open log holds {sizes[size] / 1e6:.3f} MB")
            shutil.rmtree(path)
        growth = sizes[1000] / sizes[100]
        record(
            "open log memory",
            "no growth with data",
            f"{per:.1f} B/record; x{growth:.2f} for 10x data",
            growth < 1.2,
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)

    say()
    say("Summary")
    width = max(len(r[0]) for r in results)
    say(f"  {'measure':<{width}}  {'target':<20}  {'measured':<34}  ok")
    for name, target, value, ok in results:
        say(f"  {name:<{width}}  {target:<20}  {value:<34}  {'yes' if ok else 'NO'}")
    return 0 if all(r[3] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
