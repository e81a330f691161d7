"""``traft get KEY``: read a key (linearizable, from the leader)."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from traft.kv.cli import UsageError, add_client_arguments, fail, make_client, report
from traft.kv.client import ClientError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print KEY's value (exactly its bytes; a newline is added on a terminal). "
        "Exit status 3 when the key is absent."
    )
    parser.add_argument("key", metavar="KEY")
    add_client_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        client = make_client(args)
        reply = client.request("GET", "/kv/" + quote(args.key, safe="/"))
    except (UsageError, ClientError) as exc:
        return report("get", exc)
    if reply.status == 200:
        sys.stdout.buffer.write(reply.body)
        if sys.stdout.isatty():
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
        return 0
    if reply.status == 404:
        print(f"traft get: {args.key!r}: not found", file=sys.stderr)
        return 3
    return fail("get", reply)
