"""``traft ticket``: take the next ticket number (unique and increasing)."""

from __future__ import annotations

import argparse

from traft.kv.cli import UsageError, add_client_arguments, fail, make_client, report
from traft.kv.client import ClientError, new_idempotency_key


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print a new ticket number: unique across the cluster and greater than every ticket "
        "handed out before this request started (ticketd)."
    )
    add_client_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        client = make_client(args)
        reply = client.request("POST", "/ticket", b"", idempotency_key=new_idempotency_key())
    except (UsageError, ClientError) as exc:
        return report("ticket", exc)
    if reply.status == 200:
        print(reply.json().get("ticket"))
        return 0
    return fail("ticket", reply)
