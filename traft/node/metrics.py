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
            yield gauge("traft_term", "Current Raft term", raft.term)
            yield gauge("traft_commit_index", "Highest committed log index", raft.commit_index)
            yield gauge("traft_applied_index", "Highest applied log index", raft.last_applied)
            yield gauge("traft_log_last_index", "Last log index", raft.current_index)
            yield gauge("traft_log_first_index", "First log index held", raft.first_index)
            yield gauge("traft_leader_id", "Known leader id (0: none)", raft.leader_id or 0)
            role = GaugeMetricFamily(
                "traft_role", "1 for the node's current role", labels=["node", "role"]
            )
            for name in ROLES:
                role.add_metric([str(node.id), name], 1.0 if raft.role.value == name else 0.0)
            yield role
        for name, value in node.counters.items():
            c = CounterMetricFamily(f"traft_{name}", f"Node counter {name}", labels=labels)
            c.add_metric(ident, value)
            yield c
        endpoint = node.endpoint
        if endpoint is not None:
            inbound = CounterMetricFamily(
                "traft_datagrams_dropped_in",
                "Datagrams dropped on receipt, by reason",
                labels=["node", "reason"],
            )
            outbound = CounterMetricFamily(
                "traft_datagrams_dropped_out",
                "Datagrams dropped on send, by reason",
                labels=["node", "reason"],
            )
            for key, value in endpoint.stats.items():
                if key.startswith("dropped_in_"):
                    inbound.add_metric([str(node.id), key[len("dropped_in_") :]], value)
                elif key.startswith("dropped_out_"):
                    outbound.add_metric([str(node.id), key[len("dropped_out_") :]], value)
            yield inbound
            yield outbound
            for key in ("datagrams_in", "datagrams_out", "bytes_in", "bytes_out"):
                c = CounterMetricFamily(f"traft_{key}", f"Endpoint counter {key}", labels=labels)
                c.add_metric(ident, endpoint.stats.get(key, 0))
                yield c


def make_registry(node: Node) -> tuple[CollectorRegistry, Callable[[float], None]]:
    """A registry for one node, and the function that records an fsync's duration."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    fsync = Histogram(
        "traft_fsync_seconds",
        "Duration of one group commit (write + fsync)",
        buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        registry=registry,
    )
    return registry, fsync.observe
