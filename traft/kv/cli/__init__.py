"""The ``traft`` client commands: put, get, del, ticket, status, member, leader.

Each module here follows :mod:`traft.cli`'s pattern (``configure(parser)``
and ``run(args) -> int``); this package holds what they share: the
``--config`` / ``--url`` options that say where the cluster is, building a
:class:`~traft.kv.client.Client` from them, and reporting errors as one line
on stderr (exit status 1 for a refused or failed request, 2 for bad usage).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from traft.kv.client import Client, ClientError, Reply
from traft.node.config import ClusterConfig, ConfigError

DEFAULT_CONFIG = "cluster.toml"


class UsageError(Exception):
    """The command line cannot work (exit status 2)."""


def add_client_arguments(parser: argparse.ArgumentParser, *, timeout: float = 10.0) -> None:
    """The options every client command takes (``timeout``: the default of --timeout)."""
    where = parser.add_argument_group(
        "where the cluster is (default: ./cluster.toml or $TRAFT_URL)"
    )
    where.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="the cluster's cluster.toml: any of its nodes is asked",
    )
    where.add_argument(
        "--url",
        "-u",
        metavar="URL",
        action="append",
        help="http://HOST:PORT of a node (repeatable); redirects lead to the leader",
    )
    parser.add_argument(
        "--retry-for",
        type=_seconds(allow_zero=True),
        default=30.0,
        metavar="SECONDS",
        help="keep retrying while there is no leader or a node is down (default 30); "
        "when no node at all can be reached, fail at once",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds(allow_zero=False),
        default=timeout,
        metavar="SECONDS",
        help=f"wait this long for each HTTP answer (default {timeout:g})",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="print each retry on stderr")


def _seconds(*, allow_zero: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds, above 0 (or at least 0)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            least = "0 or more" if allow_zero else "more than 0"
            raise argparse.ArgumentTypeError(f"must be {least} seconds, got {text}")
        return value

    return parse


def node_urls(args: argparse.Namespace) -> list[str]:
    """The node URLs named by ``--url`` / ``--config`` (or their defaults).

    Raises:
        UsageError: nothing names the cluster, or the config is bad.
    """
    if args.url:
        return list(args.url)
    path = args.config
    if path is None:
        if os.environ.get("TRAFT_URL"):
            return os.environ["TRAFT_URL"].split(",")
        if not Path(DEFAULT_CONFIG).exists():
            raise UsageError(
                "say where the cluster is: --config cluster.toml or --url http://HOST:PORT"
            )
        path = DEFAULT_CONFIG
    try:
        config = ClusterConfig.load(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return [config.members[i].url for i in sorted(config.members)]


def make_client(args: argparse.Namespace) -> Client:
    """A client for the cluster the command line names.

    Raises:
        UsageError: see :func:`node_urls`; or a URL is not ``http://HOST:PORT``.
    """
    urls = node_urls(args)
    on_retry = None
    if args.verbose:

        def on_retry(problem: str) -> None:
            print(f"retrying: {problem}", file=sys.stderr)

    try:
        return Client(urls, timeout=args.timeout, retry_for=args.retry_for, on_retry=on_retry)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def report(command: str, exc: Exception) -> int:
    """Print a failed command's error as one line; return its exit status."""
    print(f"traft {command}: error: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, UsageError) else 1


def fail(command: str, reply: Reply) -> int:
    """Print an unexpected answer as one line; return 1."""
    print(f"traft {command}: {reply.status}: {reply.error}", file=sys.stderr)
    return 1


__all__ = [
    "ClientError",
    "UsageError",
    "add_client_arguments",
    "fail",
    "make_client",
    "node_urls",
    "report",
]
