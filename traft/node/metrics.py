"""Prometheus metrics of a node.

Theory of operation: nothing on the hot path touches prometheus-client
objects per entry or per datagram. The node keeps plain integer counters
(and the endpoint keeps its own ``stats`` dict); a custom collector reads
them when ``/metrics`` is scraped, with the node's state as one
:class:`~traft.node.status.NodeStatus` record (never the node's internals:
this module does not import the node). Only the fsync latency histogram is
observed directly, once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from traft.node.status import NodeStatus

ROLES = ("follower", "candidate", "leader")

# Naming (Prometheus' conventions, checked by tests/node/test_metrics.py): every
# name starts with ``traft_``; a counter's samples end in ``_total``, a byte
# counter's in ``_bytes_total``; durations are in seconds (``_seconds``); every
# metric has the ``node`` label. docs/operations.md lists them all; keep it in step.

# NodeCounters attribute -> (family name; samples add ``_total``, HELP).
COUNTERS: dict[str, tuple[str, str]] = {
    "elections": ("traft_elections", "Elections this node started (times it became candidate)."),
    "leader_changes": (
        "traft_leader_changes",
        "Times this node learned of a new leader (itself included).",
    ),
    "fsyncs": ("traft_fsyncs", "Group commits: one write and fsync of log and meta per batch."),
    "applied_entries": ("traft_applied_entries", "Log entries applied to the state machine."),
    "proposals": ("traft_proposals", "Commands this node appended to the log as leader."),
    "proposals_lost": (
        "traft_proposals_lost",
        "Proposals whose entry a new leader replaced (the proposer got ProposalLost).",
    ),
    "proposals_overloaded": (
        "traft_proposals_overloaded",
        "Proposals refused (Overloaded) because the backlog bound had no room.",
    ),
    "malformed": (
        "traft_malformed",
        "Datagrams from peers that passed the envelope's checks but did not decode; dropped.",
    ),
    "inbox_overflow": (
        "traft_inbox_overflow",
        "Peer messages dropped because the main loop's peer queue was full (the receiver "
        "never waits: it drops and counts).",
    ),
    "snapshots_taken": ("traft_snapshots_taken", "Snapshots of the state machine taken here."),
    "snapshots_installed": (
        "traft_snapshots_installed",
        "Snapshots received from a leader and installed here.",
    ),
    "snapshots_sent": ("traft_snapshots_sent", "Snapshots sent to followers behind the log."),
}

# The endpoint's ``stats`` key -> (family name, HELP); drops by reason are apart.
ENDPOINT_COUNTERS: dict[str, tuple[str, str]] = {
    "datagrams_in": ("traft_datagrams_in", "UDP datagrams received from peers, dropped or not."),
    "bytes_in": ("traft_received_bytes", "Bytes of the UDP datagrams received from peers."),
    "delivered": (
        "traft_datagrams_delivered",
        "Received datagrams that passed every check and reached the node.",
    ),
    "receive_errors": (
        "traft_receive_errors",
        "Errors the UDP socket reported instead of a datagram.",
    ),
    "datagrams_out": ("traft_datagrams_out", "UDP datagrams written to peers."),
    "bytes_out": ("traft_sent_bytes", "Bytes of the UDP datagrams written to peers."),
}


class NodeCounters:
    """Plain counters the node bumps; read by :class:`NodeCollector`."""

    __slots__ = (
        "elections",
        "leader_changes",
        "fsyncs",
        "applied_entries",
        "proposals",
        "proposals_lost",
        "proposals_overloaded",
        "malformed",
        "inbox_overflow",
        "snapshots_taken",
        "snapshots_installed",
        "snapshots_sent",
    )

    def __init__(self) -> None:
        self.elections = 0
        self.leader_changes = 0
        self.fsyncs = 0
        self.applied_entries = 0
        self.proposals = 0
        self.proposals_lost = 0
        self.proposals_overloaded = 0
        self.malformed = 0
        self.inbox_overflow = 0
        self.snapshots_taken = 0
        self.snapshots_installed = 0
        self.snapshots_sent = 0

    def items(self) -> Iterator[tuple[str, int]]:
        for name in self.__slots__:
            yield name, getattr(self, name)


class NodeCollector(Collector):
    """Reads a node's status, counters and endpoint statistics at scrape time.

    Args:
        node_id: the node's id (the ``node`` label).
        status: the node's status now (``Node.metrics_status``).
        counters: the node's counters.
        endpoint_stats: the endpoint's ``stats`` now, or None without an endpoint.
    """

    def __init__(
        self,
        node_id: int,
        status: Callable[[], NodeStatus],
        counters: NodeCounters,
        endpoint_stats: Callable[[], Mapping[str, int] | None],
    ) -> None:
        self.node_id = node_id
        self._status = status
        self._counters = counters
        self._endpoint_stats = endpoint_stats

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        labels = ["node"]
        ident = [str(self.node_id)]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(ident, value)
            return g

        if status.running:
            yield gauge("traft_term", "The node's current Raft term.", status.term)
            yield gauge(
                "traft_commit_index",
                "The highest log index known committed.",
                status.commit_index,
            )
            yield gauge(
                "traft_applied_index",
                "The highest log index applied to the state machine.",
                status.applied_index,
            )
            yield gauge("traft_log_last_index", "The last index in the log.", status.last_index)
            yield gauge(
                "traft_unapplied_proposals",
                "The backlog bound's count: entries not yet applied plus proposals "
                "listed for the core.",
                status.unapplied,
            )
            yield gauge(
                "traft_unapplied_bytes",
                "The command bytes of the proposals listed or in the log and not yet applied.",
                status.unapplied_bytes,
            )
            yield gauge(
                "traft_log_first_index",
                "The first index still in the log (older ones are in the snapshot).",
                status.first_index,
            )
            yield gauge(
                "traft_leader_id",
                "The leader's node id as this node knows it (0: none).",
                status.leader_id or 0,
            )
            role = GaugeMetricFamily(
                "traft_role",
                "1 for the role this node has now (follower, candidate, leader), 0 for the others.",
                labels=["node", "role"],
            )
            for name in ROLES:
                role.add_metric(ident + [name], 1.0 if status.role == name else 0.0)
            yield role
        for attribute, value in self._counters.items():
            name, doc = COUNTERS[attribute]
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(ident, value)
            yield c
        stats = self._endpoint_stats()
        if stats is not None:
            inbound = CounterMetricFamily(
                "traft_datagrams_dropped_in",
                "Datagrams from peers dropped on receipt, by reason (envelope checks, "
                "partition, overflow, closed).",
                labels=["node", "reason"],
            )
            outbound = CounterMetricFamily(
                "traft_datagrams_dropped_out",
                "Datagrams to peers that could not be sent, by reason (no route known, socket "
                "error, endpoint closed).",
                labels=["node", "reason"],
            )
            for key, value in stats.items():
                if key.startswith("dropped_in_"):
                    inbound.add_metric(ident + [key[len("dropped_in_") :]], value)
                elif key.startswith("dropped_out_"):
                    outbound.add_metric(ident + [key[len("dropped_out_") :]], value)
            yield inbound
            yield outbound
            for key, (name, doc) in ENDPOINT_COUNTERS.items():
                c = CounterMetricFamily(name, doc, labels=labels)
                c.add_metric(ident, stats.get(key, 0))
                yield c


def make_registry(
    collector: NodeCollector,
) -> tuple[CollectorRegistry, Callable[[float], None]]:
    """A registry for one node, and the function that records an fsync's duration."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    fsync = Histogram(
        "traft_fsync_seconds",
        "Duration of one group commit (write and fsync of the log and meta), in seconds.",
        ["node"],
        buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        registry=registry,
    )
    return registry, fsync.labels(str(collector.node_id)).observe
