"""``traft serve``: one node of the replicated key-value and ticket service.

Theory of operation: :func:`serve` runs, in one trio nursery, a
:class:`traft.node.node.Node` replicating a :class:`~traft.kv.state.KVStore`
(its own nursery holds the UDP endpoint, the ticker and the main loop) and
the HTTP API (:mod:`traft.kv.http`) on the node's ``http`` address. It
returns when one of three things happens:

* SIGTERM or SIGINT: a leader first hands leadership to its most
  up-to-date follower (bounded: twice the election timeout), still answering
  peers and clients; then the HTTP server (:mod:`traft.kv.server`) stops
  accepting, closes idle connections and finishes what it has (2 s at most),
  and the node stops and closes its storage. A repeated signal does not cut
  this short; a second SIGINT forces the exit (:mod:`traft.kv.shutdown`);
* the node applies its own removal from the cluster: the same clean stop,
  and the process says so and exits with status 0 (a supervisor should not
  restart it: it is no longer a member);
* the node fails (damaged data directory, address in use): the error is
  logged in one line and the exit status is 1; an address in use is named,
  HTTP or peer (:class:`AddressInUse`).

With ``--enable-faults`` (fault testing only: anyone who can reach the HTTP
port can then cut the node off) the node's UDP endpoint gets a
:class:`net.FaultInjector` and the HTTP API serves ``/faults`` to drive it
(:mod:`traft.kv.faultctl`); ``scripts/nemesis`` uses it for partitions and
datagram loss, duplication, reordering and delay.

Every log line names the node, its role and its term (:class:`NodeLogFilter`).
After start-up the process calls ``gc.freeze()`` so that the objects built
while starting (the restored state, the log index) are never scanned again
by the garbage collector: fewer long pauses that could cost an election.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import errno
import gc
import logging
import random
import signal
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

import net
import storage
from traft.kv.shutdown import (
    FORCED_EXIT_STATUS,
    catch_early_sigterm,
    hand_over,
    stop_on_signals,
)
from traft.node.config import ClusterConfig, ConfigError, format_address

if TYPE_CHECKING:
    from traft.node.node import Node

log = logging.getLogger("traft.serve")

LOG_FORMAT = (
    "%(asctime)s.%(msecs)03d node %(node_id)s %(role)s term %(term)s "
    "%(levelname)s %(name)s: %(message)s"
)
DATE_FORMAT = "%H:%M:%S"


class AddressInUse(OSError):
    """One of this node's addresses is taken; the message names which."""

    def __init__(self, what: str, address: tuple[str, int]) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"the {what} address {format_address(address)} is already in use "
            "(another traft serve with this configuration, or another program?)",
        )


def _address_in_use(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_address_in_use(e) for e in exc.exceptions)
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


class Outcome(enum.Enum):
    """Why :func:`serve` returned."""

    STOPPED = "stopped"
    REMOVED = "removed"


class NodeLogFilter(logging.Filter):
    """Adds ``node_id``, ``role`` and ``term`` to every record (``-`` before the node runs)."""

    def __init__(self, node_id: int) -> None:
        super().__init__()
        self.node_id = node_id
        self.node: Node | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        record.node_id = self.node_id
        raft = self.node.raft if self.node is not None else None
        record.role = raft.role.value if raft is not None else "-"
        record.term = raft.term if raft is not None else "-"
        return True


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run one node of the replicated key-value and ticket service: Raft over UDP "
        "between the nodes, the HTTP API on the node's http address. SIGTERM or SIGINT "
        "stops it cleanly; so does its removal from the cluster (exit status 0)."
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default="cluster.toml",
        help="the cluster's configuration (default: ./cluster.toml)",
    )
    parser.add_argument("--id", type=int, required=True, metavar="N", help="this node's id")
    parser.add_argument(
        "--data-dir",
        required=True,
        metavar="DIR",
        help="this node's storage (created if missing; one directory per node)",
    )
    parser.add_argument(
        "--enable-faults",
        action="store_true",
        help="serve /faults to inject network faults at run time (fault testing only; "
        "never on a cluster that matters)",
    )
    parser.add_argument(
        "--lease-reads",
        action="store_true",
        help="the leader answers reads from a lease, without a heartbeat round per read "
        "(faster; thesis 6.4.1). Linearizable only while clocks advance at nearly the same "
        "rate on every server: the lease is the election timeout less a drift margin, so "
        "it assumes no server's clock runs faster than another's by more than that margin "
        "per election timeout (see docs/operations.md). The node reads the monotonic clock "
        "before it answers from the lease, so a stopped process (SIGSTOP) is safe; a clock "
        "that stops while the machine runs on (a paused VM) or runs fast is not. Off by "
        "default: reads confirm leadership with a heartbeat round (ReadIndex)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default INFO)",
    )


def run(args: argparse.Namespace) -> int:
    catch_early_sigterm()
    try:
        return _run(args)
    finally:
        # On its way out, the process ignores SIGTERM: a supervisor's late
        # second SIGTERM must not turn a clean exit into death by signal
        # (-15). SIG_IGN rather than a Python handler, because the
        # interpreter's finalization puts Python handlers back to the default
        # action, which kills.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _run(args: argparse.Namespace) -> int:
    def error(message: str, status: int) -> int:
        print(f"traft serve: error: {message}", file=sys.stderr)
        return status

    try:
        cluster = ClusterConfig.load(args.config)
        cluster.member(args.id)
    except ConfigError as exc:
        return error(str(exc), 2)
    data_dir = Path(args.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return error(f"cannot create the data directory {data_dir}: {exc.strerror}", 2)
    log_filter = NodeLogFilter(args.id)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    handler.addFilter(log_filter)
    logging.basicConfig(level=args.log_level, handlers=[handler], force=True)
    try:
        outcome = trio.run(
            partial(
                serve,
                cluster,
                args.id,
                data_dir,
                log_filter=log_filter,
                freeze_gc=True,
                enable_faults=args.enable_faults,
                lease_reads=args.lease_reads,
            )
        )
    except KeyboardInterrupt:
        log.warning("interrupted")
        return FORCED_EXIT_STATUS
    except Exception as exc:
        message = _describe(exc)
        log.error(
            "stopped by an error: %s",
            message,
            exc_info=args.log_level == "DEBUG" or not _expected(exc),
        )
        return error(message, 1)
    if outcome is Outcome.REMOVED:
        print(
            f"traft serve: node {args.id} was removed from the cluster; exiting "
            "(it is no longer a member: do not restart it with the same data directory)",
            file=sys.stderr,
        )
    return 0


def _expected(exc: BaseException) -> bool:
    """Whether an error is one an operator expects (a damaged data directory, an
    address in use): one line is enough. Anything else is a bug: log its traceback."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return isinstance(exc, OSError | storage.StorageError)


def _describe(exc: BaseException) -> str:
    """One line for an error that stopped the node."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}"


async def serve(
    cluster: ClusterConfig,
    node_id: int,
    data_dir: Path,
    *,
    log_filter: NodeLogFilter | None = None,
    handle_signals: bool = True,
    shutdown: trio.Event | None = None,
    freeze_gc: bool = False,
    enable_faults: bool = False,
    lease_reads: bool = False,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> Outcome:
    """Run node ``node_id`` with the KV service and its HTTP API until stopped.

    Reports the HTTP address it listens on through ``task_status``. Setting
    ``shutdown`` stops it as SIGTERM does (for embedding and tests). With
    ``freeze_gc`` (what ``traft serve`` does), ``gc.freeze()`` after start-up.
    With ``enable_faults``, a fault injector on the UDP endpoint, driven
    through ``/faults``. With ``lease_reads``, the leader serves reads from
    its lease (``Config.lease_reads``).

    Raises:
        OSError: an address cannot be bound, or the data directory cannot be used.
        storage.StorageError: the data directory is damaged.
    """
    from traft.kv.http import KVApp
    from traft.kv.server import serve_http
    from traft.kv.state import KVStore
    from traft.node.node import Node

    me = cluster.member(node_id)
    store = KVStore()
    faults = net.FaultInjector(random.Random()) if enable_faults else None
    node = Node(node_id, cluster, data_dir, store, faults=faults, lease_reads=lease_reads)
    if log_filter is not None:
        log_filter.node = node
    if shutdown is None:
        shutdown = trio.Event()
    http_stop = trio.Event()
    outcome = Outcome.STOPPED
    log.info(
        "starting: peer %s, http %s, data %s",
        format_address(me.peer),
        format_address(me.http),
        data_dir,
    )
    # The signal handler goes first: before the node opens its storage and long
    # before the API answers, so a SIGTERM at any moment of start-up stops it.
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(stop_on_signals(shutdown, enabled=handle_signals))
        try:
            await stack.enter_async_context(node)
        except BaseException as exc:
            if _address_in_use(exc):
                raise AddressInUse("peer (UDP)", me.peer) from None
            raise
        app = KVApp(
            node,
            store,
            max_command_bytes=node.budget.max_command,
            faults=faults,
        )
        if faults is not None:
            log.warning("network fault injection is enabled (/faults)")
        async with trio.open_nursery() as nursery:
            try:
                host, port = await nursery.start(
                    partial(serve_http, app, me.http[0], me.http[1], shutdown=http_stop)
                )
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise AddressInUse("HTTP", me.http) from None
                raise
            log.info("serving the HTTP API on http://%s", format_address((host, port)))
            if freeze_gc:
                gc.collect()
                gc.freeze()
            task_status.started((host, port))
            async with trio.open_nursery() as watchers:
                watchers.start_soon(_watch_removed, node, shutdown)
                await shutdown.wait()
                watchers.cancel_scope.cancel()
            if node.removed.is_set():
                outcome = Outcome.REMOVED
            else:
                await hand_over(node, timeout=2 * cluster.timing.election_timeout_ms / 1000)
            http_stop.set()
            nursery.cancel_scope.deadline = trio.current_time() + 5
    log.info("stopped")
    return outcome


async def _watch_removed(node: Node, shutdown: trio.Event) -> None:
    await node.removed.wait()
    log.warning("this node was removed from the cluster; stopping")
    shutdown.set()
