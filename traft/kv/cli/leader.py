"""``traft leader transfer [ID]``: move leadership to another node (before maintenance)."""

from __future__ import annotations

import argparse
import json

from traft.kv.cli import UsageError, add_client_arguments, fail, make_client, report
from traft.kv.client import ClientError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Leadership of the cluster. `transfer` asks the leader to hand leadership to node "
        "ID, or without ID to the most up-to-date voting follower, and prints the new "
        "leader. Writes wait out the transfer (the leader answers them 503 for at most an "
        "election timeout; clients retry); it fails when the target cannot catch up or win "
        "within an election timeout (writes then resume on the old leader)."
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    transfer = sub.add_parser(
        "transfer",
        help="hand leadership to node ID (default: the most up-to-date follower)",
        description="Hand leadership to node ID (default: the most up-to-date follower).",
    )
    transfer.add_argument("id", type=int, nargs="?", metavar="ID")
    add_client_arguments(transfer, timeout=10.0)


def run(args: argparse.Namespace) -> int:
    command = f"leader {args.action}"
    try:
        if args.id is not None and args.id <= 0:
            raise UsageError("ID must be a positive integer")
        client = make_client(args)
        body = json.dumps({} if args.id is None else {"id": args.id}).encode()
        reply = client.request(
            "POST", "/leader", body, headers={"Content-Type": "application/json"}
        )
    except (UsageError, ClientError) as exc:
        return report(command, exc)
    if reply.status != 200:
        return fail(command, reply)
    data = reply.json()
    previous, leader = data.get("previous"), data.get("leader")
    if previous == leader:
        print(f"node {leader} is the leader already")
    else:
        print(f"leadership moved from node {previous} to node {leader}")
    return 0
