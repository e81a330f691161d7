"""``traft log inspect|verify DATA_DIR``: look at a node's durable state.

Theory of operation: both subcommands call :func:`storage.inspect_data_dir`,
which reads ``DATA_DIR/meta``, ``DATA_DIR/log/`` and ``DATA_DIR/snap/``
without writing, renaming or deleting anything.

- ``inspect`` prints the meta pair, the log's bounds, each segment, the term
  ranges, the snapshots and what the next open would repair (a torn tail, an
  interrupted compaction or truncation). Exit status 0, or 1 if it found
  damage.
- ``verify`` checks every record's CRC and every snapshot's data, prints one
  line per problem (file, offset, what is wrong) and exits 1 if there is any,
  0 otherwise. Repairs that opening makes routinely (a torn tail) are
  reported but are not problems.

Exit status 2 means the data directory does not exist.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import storage


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``inspect`` and ``verify`` subcommands."""
    sub = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    inspect = sub.add_parser(
        "inspect",
        help="print segments, index and term ranges, meta and snapshots",
        description="Print what DATA_DIR holds, without changing it.",
    )
    inspect.add_argument("data_dir", metavar="DATA_DIR", help="the node's data directory")
    inspect.add_argument(
        "--all-terms", action="store_true", help="list every term range (default: first 20)"
    )
    verify = sub.add_parser(
        "verify",
        help="check every CRC; exit non-zero naming the problem",
        description="Check every record and snapshot in DATA_DIR, without changing it.",
    )
    verify.add_argument("data_dir", metavar="DATA_DIR", help="the node's data directory")


def run(args: argparse.Namespace) -> int:
    """Carry out ``traft log inspect`` or ``traft log verify``; returns the exit status."""
    out: TextIO = sys.stdout
    verify = args.log_command == "verify"
    try:
        report = storage.inspect_data_dir(args.data_dir, verify=verify)
    except FileNotFoundError as exc:
        print(f"traft log: {exc}", file=sys.stderr)
        return 2
    if verify:
        return _print_verify(report, out)
    _print_inspect(report, out, all_terms=args.all_terms)
    return 1 if report.problems else 0


def _print_inspect(report: storage.DataDirReport, out: TextIO, *, all_terms: bool) -> None:
    print(f"data dir {report.path}", file=out)
    if report.meta is None:
        print("meta: none (term 0, no vote)", file=out)
    else:
        term, voted_for = report.meta
        vote = "none" if voted_for is None else str(voted_for)
        print(f"meta: term {term}, voted_for {vote}", file=out)
    if report.log_first_index is None:
        print("log: none", file=out)
    else:
        first, last = report.log_first_index, report.log_last_index
        assert last is not None
        print(f"log: first index {first}, last index {last} ({last - first + 1} records)", file=out)
        for seg in report.segments:
            span = (
                f"records {seg.first_index}..{seg.last_index}"
                if seg.last_index >= seg.first_index
                else f"empty, starts at {seg.first_index}"
            )
            torn = f"  [{seg.torn}]" if seg.torn else ""
            form = "batch records" if seg.format == 2 else "one record per entry"
            print(
                f"  segment {seg.name}: {span}, {seg.size} bytes, format {seg.format} "
                f"({form}){torn}",
                file=out,
            )
        ranges = report.term_ranges
        shown = ranges if all_terms else ranges[:20]
        for term, lo, hi in shown:
            print(f"  term {term}: indexes {lo}..{hi}", file=out)
        if len(shown) < len(ranges):
            print(f"  ... {len(ranges) - len(shown)} more term ranges (--all-terms)", file=out)
    if not report.snapshots:
        print("snapshots: none", file=out)
    for info in report.snapshots:
        print(
            f"snapshot index {info.index}, term {info.term}: {info.size} bytes of data, "
            f"{len(info.membership)} bytes of membership ({info.path})",
            file=out,
        )
    for repair in report.repairs:
        print(f"next open will: {repair}", file=out)
    for problem in report.problems:
        print(f"PROBLEM: {problem}", file=out)


def _print_verify(report: storage.DataDirReport, out: TextIO) -> int:
    for repair in report.repairs:
        print(f"note: next open will {repair}", file=out)
    if report.problems:
        for problem in report.problems:
            print(f"FAILED: {problem}", file=out)
        return 1
    if report.log_first_index is not None:
        assert report.log_last_index is not None
        count = report.log_last_index - report.log_first_index + 1
        log = f"{count} log records in {len(report.segments)} segment(s)"
    else:
        log = "no log"
    print(f"OK: {report.path}: {log}, {len(report.snapshots)} snapshot(s) verified", file=out)
    return 0
