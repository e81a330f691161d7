"""``traft status``: a table of every node of the cluster, as each node sees itself."""

from __future__ import annotations

import argparse
import json
from typing import Any

from traft.kv.cli import UsageError, add_client_arguments, make_client, report
from traft.kv.client import Client, ClientError, base_url

COLUMNS = ("ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LOG", "SNAPSHOT", "VOTING", "HTTP")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Ask every node (those named by --config/--url and every member they report) for "
        "its status and print one line per node. Exit status 1 when no node answers."
    )
    parser.add_argument("--json", action="store_true", help="print the raw statuses as JSON")
    add_client_arguments(parser)


def address(value: Any) -> str:
    """A member's address as ``host:port`` whatever its JSON shape."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{value[0]}:{value[1]}"
    return str(value)


def collect(client: Client, timeout: float = 2.0) -> dict[str, dict[str, Any] | str]:
    """Every reachable node's status (or why it is unreachable), by base URL."""
    found: dict[str, dict[str, Any] | str] = {}
    todo = list(client.urls)
    while todo:
        url = base_url(todo.pop(0))
        if url in found:
            continue
        try:
            status = client.get_status(url, timeout=timeout)
        except ClientError as exc:
            found[url] = str(exc).partition(": ")[2] or str(exc)
            continue
        found[url] = status
        for member in status.get("members", []):
            if isinstance(member, dict) and member.get("http"):
                todo.append("http://" + address(member["http"]))
    return found


def table(found: dict[str, dict[str, Any] | str]) -> str:
    """The statuses as an aligned text table, one node per line, by id."""
    voting: dict[str, str] = {}
    ids: dict[str, int] = {}
    for status in found.values():
        if isinstance(status, dict):
            for member in status.get("members", []):
                if isinstance(member, dict) and member.get("http"):
                    url = base_url(address(member["http"]))
                    voting[url] = "yes" if member.get("voting") else "no"
                    ids[url] = member.get("id", 0)
    rows: list[tuple[Any, list[str]]] = []
    for url, status in found.items():
        host = url.partition("://")[2]
        if isinstance(status, str):
            rows.append(
                (
                    ids.get(url, 1 << 64),
                    [
                        str(ids.get(url, "?")),
                        f"down ({status})",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        voting.get(url, "?"),
                        host,
                    ],
                )
            )
            continue
        log = status.get("log") or {}
        snap = status.get("snapshot")
        rows.append(
            (
                status.get("id", 0),
                [
                    str(status.get("id", "?")),
                    str(status.get("role", "?")),
                    str(status.get("term", "?")),
                    _or_dash(status.get("leader_id")),
                    str(status.get("commit", "?")),
                    str(status.get("applied", "?")),
                    f"{log.get('first', '?')}..{log.get('last', '?')}" if log else "-",
                    f"{snap.get('index')}@{snap.get('term')}" if isinstance(snap, dict) else "-",
                    voting.get(url, "?"),
                    host,
                ],
            )
        )
    rows.sort(key=lambda r: (r[0], r[1][-1]))
    lines = [list(COLUMNS), *(r[1] for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def run(args: argparse.Namespace) -> int:
    try:
        client = make_client(args)
    except UsageError as exc:
        return report("status", exc)
    found = collect(client, timeout=min(args.timeout, 5.0))
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
    else:
        print(table(found))
        leaders = {
            (s.get("leader_id"), s.get("leader_url")) for s in found.values() if isinstance(s, dict)
        }
        leaders.discard((None, None))
        if len(leaders) == 1:
            leader_id, url = leaders.pop()
            print(f"\nleader: node {leader_id} ({url})")
        elif not leaders:
            print("\nno leader known")
        else:
            print("\nnodes disagree on the leader (an election may be under way)")
    return 0 if any(isinstance(s, dict) for s in found.values()) else 1
