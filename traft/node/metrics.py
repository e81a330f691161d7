"""Prometheus metrics of a node.

Theory of operation: nothing on the hot path touches prometheus-client
objects per entry or per datagram. The node keeps plain integer counters
(and the endpoint keeps its own ``stats`` dict); a custom collector reads
them when ``/metrics`` is scraped. Only the fsync latency histogram is
observed directly, once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from traft.node.node import Node

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
    "malformed": (
        "traft_malformed",
        "Datagrams from peers that passed the envelope's checks but did not decode; dropped.",
    ),
    "inbox_overflow": (
        "traft_inbox_overflow",
        "Peer messages dropped because the node's main loop had a full inbox.",
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
        self.malformed = 0
        self.inbox_overflow = 0
        self.snapshots_taken = 0
        self.snapshots_installed = 0
        self.snapshots_sent = 0

    def items(self) -> Iterator[tuple[str, int]]:
        for name in self.__slots__:
            yield name, getattr(self, name)


class NodeCollector(Collector):
    """Reads a node's live state and counters at scrape time."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        node = self._node
        raft = node.raft
        labels = ["node"]
        ident = [str(node.id)]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(ident, value)
            return g

        if raft is not None:
            yield gauge("traft_term", "The node's current Raft term.", raft.term)
            yield gauge(
                "traft_commit_index", "The highest log index known committed.", raft.commit_index
            )
            yield gauge(
                "traft_applied_index",
                "The highest log index applied to the state machine.",
                raft.last_applied,
            )
            yield gauge("traft_log_last_index", "The last index in the log.", raft.current_index)
            yield gauge(
                "traft_log_first_index",
                "The first index still in the log (older ones are in the snapshot).",
                raft.first_index,
            )
            yield gauge(
                "traft_leader_id",
                "The leader's node id as this node knows it (0: none).",
                raft.leader_id or 0,
            )
            role = GaugeMetricFamily(
                "traft_role",
                "1 for the role this node has now (follower, candidate, leader), 0 for the others.",
                labels=["node", "role"],
            )
            for name in ROLES:
                role.add_metric([str(node.id), name], 1.0 if raft.role.value == name else 0.0)
            yield role
        for attribute, value in node.counters.items():
            name, doc = COUNTERS[attribute]
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(ident, value)
            yield c
        endpoint = node.endpoint
        if endpoint is not None:
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
            for key, value in endpoint.stats.items():
                if key.startswith("dropped_in_"):
                    inbound.add_metric([str(node.id), key[len("dropped_in_") :]], value)
                elif key.startswith("dropped_out_"):
                    outbound.add_metric([str(node.id), key[len("dropped_out_") :]], value)
            yield inbound
            yield outbound
            for key, (name, doc) in ENDPOINT_COUNTERS.items():
                c = CounterMetricFamily(name, doc, labels=labels)
                c.add_metric(ident, endpoint.stats.get(key, 0))
                yield c


def make_registry(node: Node) -> tuple[CollectorRegistry, Callable[[float], None]]:
    """A registry for one node, and the function that records an fsync's duration."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    fsync = Histogram(
        "traft_fsync_seconds",
        "Duration of one group commit (write and fsync of the log and meta), in seconds.",
        ["node"],
        buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        registry=registry,
    )
    return registry, fsync.labels(str(node.id)).observe
