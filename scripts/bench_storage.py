#!/usr/bin/env python3
"""Benchmark the storage package against the targets of issue 3.

Theory of operation: four measurements, each in a fresh directory under
``--dir`` (a temporary directory on the same disk by default), printed as
they go and summarised in a table at the end:

1. batched appends of 100-byte records in batches of 1,000, no sync: payload
   MB/s (target >= 100), timing only ``append`` (records are built outside
   the timed region, as a caller would have them already);
2. synced batches of 100 records: ``append`` + ``sync`` per batch, batches/s
   (target >= 3,000, or close to the disk's fsync rate). The yardstick, a
   bare 100-byte append + ``fdatasync``, runs in alternating rounds with it
   so both see the same disk; the same run on tmpfs shows the code's own
   ceiling when an fsync costs nothing;
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


class RawFsync:
    """The yardstick: a 100-byte append + ``fdatasync`` on a plain file."""

    def __init__(self, base: str) -> None:
        path = os.path.join(base, "fsync.bin")
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.data = b"x" * RECORD_BYTES

    def run(self, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            os.write(self.fd, self.data)
            os.fdatasync(self.fd)
        return time.perf_counter() - started

    def close(self) -> None:
        os.close(self.fd)


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


def synced_batches(base: str, path: str, count: int) -> tuple[float, float, float]:
    """Synced batches/s, the disk's raw fsyncs/s and CPU ms per batch.

    The disk is shared and its speed drifts, so the two are measured in
    alternating rounds of 100 and compared over the same minutes.
    """
    data = os.urandom(RECORD_BYTES)
    raw = RawFsync(base)
    raw.run(50)  # warm up
    say(f"   {count:,} batches of 100 records (append + sync each), alternating with")
    say(f"   {count:,} raw 100-byte append + fdatasync:", end="")
    log_s = raw_s = cpu_s = 0.0
    done = 0
    started = time.perf_counter()
    with SegmentLog.open(path) as log:
        index = 1
        while done < count:
            n = min(100, count - done)
            work = batches(index, n, 100, data)
            index += 100 * n
            raw_s += raw.run(n)
            t0, c0 = time.perf_counter(), time.process_time()
            for b in work:
                log.append(b)
                log.sync()
            log_s += time.perf_counter() - t0
            cpu_s += time.process_time() - c0
            done += n
            progress(done // 100, count // 100, started)
    raw.close()
    return count / log_s, count / raw_s, 1000 * cpu_s / count


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
    parser.add_argument("--records", type=int, default=1_000_000, help="log size for (2) and (4)")
    parser.add_argument("--synced", type=int, default=3_000, help="synced batches for (3)")
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
        rate, disk_rate, cpu_ms = synced_batches(base, os.path.join(base, "synced"), args.synced)
        say(
            f"   log: {rate:,.0f} batches/s = {rate * 100:,.0f} records/s; "
            f"disk: {disk_rate:,.0f} fsyncs/s ({1000 / disk_rate:.3f} ms each)"
        )
        say(f"   {rate / disk_rate:.0%} of the fsync rate; {cpu_ms:.3f} ms of CPU per batch")
        record("disk fsync rate (yardstick)", "-", f"{disk_rate:,.0f}/s", True)
        record(
            "synced batches of 100 records",
            ">= 3,000/s or ~fsync",
            f"{rate:,.0f}/s ({rate / disk_rate:.0%} of fsync rate)",
            rate >= 3000 or rate >= 0.8 * disk_rate,
        )
        shm = "/dev/shm"
        if os.path.isdir(shm) and args.dir is None:
            say("   the same on tmpfs (fsync costs nothing: the code's own ceiling):")
            shm_base = tempfile.mkdtemp(prefix="bench-storage-", dir=shm)
            try:
                ceiling, _, _ = synced_batches(shm_base, os.path.join(shm_base, "s"), args.synced)
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
