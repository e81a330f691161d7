"""``traft del KEY [--prev V]``: delete a key."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from traft.kv.cli import UsageError, add_client_arguments, fail, make_client, report
from traft.kv.client import ClientError, new_idempotency_key


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Delete KEY (deleting an absent key succeeds). With --prev, only when the current "
        "value is PREV (exit status 3 when it is not)."
    )
    parser.add_argument("key", metavar="KEY")
    parser.add_argument("--prev", metavar="PREV", help="the value KEY must have now")
    add_client_arguments(parser)


def run(args: argparse.Namespace) -> int:
    target = "/kv/" + quote(args.key, safe="/")
    if args.prev is not None:
        target += "?prev=" + quote(args.prev, safe="")
    try:
        client = make_client(args)
        reply = client.request("DELETE", target, idempotency_key=new_idempotency_key())
    except (UsageError, ClientError) as exc:
        return report("del", exc)
    if reply.status == 200:
        data = reply.json()
        what = "deleted" if data.get("deleted") else "was absent"
        print(f"OK, {what} (index {data.get('index')})")
        return 0
    if reply.status == 412:
        print(f"traft del: not deleted: {args.key!r} does not hold PREV", file=sys.stderr)
        return 3
    return fail("del", reply)
