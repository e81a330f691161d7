"""``traft check FILE --model M``: check a recorded history for linearizability.

Exit status: 0 linearizable, 1 not linearizable, 2 undecided within the time
budget or unreadable input (with a one-line error on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys

from traft.check.formats import FORMATS, parse_history, read_history
from traft.check.history import HistoryError
from traft.check.linearizability import Verdict, check_history
from traft.check.models import MODELS

EXIT_LINEARIZABLE = 0
EXIT_NOT_LINEARIZABLE = 1
EXIT_UNDECIDED = 2

DEFAULT_TIMEOUT_S = 60.0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the timeout must be positive, not {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``traft check``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "formats: traft (JSON lines, docs/history-format.md), jepsen-etcd (Jepsen's etcd\n"
        "log, a compare-and-set register), edn-kv (Jepsen kv EDN maps, one per line).\n"
        "exit status: 0 linearizable, 1 not linearizable, 2 undecided or unreadable input."
    )
    parser.add_argument("file", metavar="FILE", help="the history to check ('-' for stdin)")
    parser.add_argument(
        "--model",
        required=True,
        choices=sorted(MODELS),
        help="the sequential specification: register (read/write/cas), "
        "kv (get/put/append/delete/cas per key) or tickets (unique increasing integers)",
    )
    parser.add_argument(
        "--format",
        default="auto",
        choices=("auto", *FORMATS),
        help="the file's format (default: detect it)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"give up after S seconds, exit status 2 (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print the verdict line only")


def run(args: argparse.Namespace) -> int:
    """Carry out ``traft check``; returns the exit status."""
    try:
        if args.file == "-":
            ops = parse_history(sys.stdin.read(), args.format)
        else:
            ops = read_history(args.file, args.format)
        result = check_history(ops, args.model, timeout_s=args.timeout)
    except OSError as exc:
        print(f"traft check: error: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNDECIDED
    except HistoryError as exc:
        print(f"traft check: error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_UNDECIDED
    except UnicodeDecodeError as exc:  # from stdin; files are decoded in read_history
        print(f"traft check: error: {args.file}: not UTF-8 text ({exc.reason})", file=sys.stderr)
        return EXIT_UNDECIDED
    summary = (
        f"{result.operations} operations, {result.partitions} "
        f"partition{'s' if result.partitions != 1 else ''}, "
        f"{result.states} states, {result.elapsed_s:.2f} s"
    )
    if result.verdict is Verdict.LINEARIZABLE:
        print(f"{args.file}: linearizable ({summary})")
        return EXIT_LINEARIZABLE
    if result.verdict is Verdict.NOT_LINEARIZABLE:
        print(f"{args.file}: NOT linearizable ({summary})")
        if not args.quiet:
            print(result.explanation)
        return EXIT_NOT_LINEARIZABLE
    print(f"{args.file}: undecided ({summary})")
    if not args.quiet:
        print(result.explanation)
    return EXIT_UNDECIDED
