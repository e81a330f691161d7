"""``traft put KEY VALUE [--prev V]``: set a key (compare-and-set with --prev)."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from traft.kv.cli import UsageError, add_client_arguments, fail, make_client, report
from traft.kv.client import ClientError, new_idempotency_key


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Set KEY to VALUE through the leader. With --prev, only when the current value is "
        "PREV (compare-and-set; exit status 3 when it is not). Retries are safe: the request "
        "carries one Idempotency-Key."
    )
    parser.add_argument("key", metavar="KEY")
    parser.add_argument("value", metavar="VALUE", help="the value; - reads it from stdin")
    parser.add_argument("--prev", metavar="PREV", help="the value KEY must have now")
    add_client_arguments(parser)


def run(args: argparse.Namespace) -> int:
    value = sys.stdin.buffer.read() if args.value == "-" else args.value.encode()
    target = "/kv/" + quote(args.key, safe="/")
    if args.prev is not None:
        target += "?prev=" + quote(args.prev, safe="")
    try:
        client = make_client(args)
        reply = client.request("PUT", target, value, idempotency_key=new_idempotency_key())
    except (UsageError, ClientError) as exc:
        return report("put", exc)
    if reply.status == 200:
        print(f"OK (index {reply.json().get('index')})")
        return 0
    if reply.status == 412:
        state = "has another value" if reply.json().get("exists") else "is absent"
        print(f"traft put: not set: {args.key!r} {state}", file=sys.stderr)
        return 3
    return fail("put", reply)
