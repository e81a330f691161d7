"""``traft member add|remove``: change the cluster's membership through the leader."""

from __future__ import annotations

import argparse
import json

from traft.kv.cli import UsageError, add_client_arguments, fail, make_client, report
from traft.kv.cli.status import address
from traft.kv.client import ClientError
from traft.node.config import ConfigError, format_address, parse_address


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Add or remove a node. A new node joins as non-voting, catches up from the leader "
        "and is then promoted to voting; start it first with `traft serve` and a "
        "cluster.toml that lists it. One change at a time."
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add node ID (start it first)", description="Add node ID.")
    add.add_argument("id", type=int, metavar="ID")
    add.add_argument("peer", metavar="PEER_ADDR", help="its UDP address, HOST:PORT")
    add.add_argument("http", metavar="HTTP_ADDR", help="its HTTP address, HOST:PORT")
    add_client_arguments(add, timeout=45.0)
    remove = sub.add_parser("remove", help="remove node ID", description="Remove node ID.")
    remove.add_argument("id", type=int, metavar="ID")
    add_client_arguments(remove, timeout=45.0)


def run(args: argparse.Namespace) -> int:
    command = f"member {args.action}"
    try:
        if args.id <= 0:
            raise UsageError("ID must be a positive integer")
        client = make_client(args)
        if args.action == "add":
            try:
                peer = format_address(parse_address(args.peer, "PEER_ADDR"))
                http = format_address(parse_address(args.http, "HTTP_ADDR"))
            except ConfigError as exc:
                raise UsageError(str(exc)) from None
            body = json.dumps({"id": args.id, "peer": peer, "http": http}).encode()
            reply = client.request(
                "POST", "/members", body, headers={"Content-Type": "application/json"}
            )
        else:
            reply = client.request("DELETE", f"/members/{args.id}")
    except (UsageError, ClientError) as exc:
        return report(command, exc)
    if reply.status != 200:
        return fail(command, reply)
    verb = "added" if args.action == "add" else "removed"
    print(f"node {args.id} {verb}; members now:")
    for m in reply.json().get("members", []):
        voting = "voting" if m.get("voting") else "non-voting"
        print(
            f"  {m.get('id')}: {voting}, peer {address(m.get('peer'))}, http {address(m.get('http'))}"
        )
    return 0
