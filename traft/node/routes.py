"""Where the members are: peer and client addresses from the log, else from cluster.toml.

Theory of operation: a membership entry carries the node's two addresses in
its context (:func:`~traft.node.members.member_context`); the log's
membership is therefore the first source of a member's addresses, and the
cluster configuration the fallback (founding members, whose entries carry
none). :class:`Routes` answers both questions the node asks: where to send
a peer's datagrams (told to the endpoint the node made itself; an endpoint
handed in by the caller routes on its own) and a member's client API
address (for ``leader_url`` and ``status``).
"""

from __future__ import annotations

import logging
from typing import Any

import net
from traft.core import Membership, NodeConfig
from traft.node.config import Address, ClusterConfig, format_address
from traft.node.members import member_context, parse_context
from traft.wire import Budget

log = logging.getLogger(__name__)


class Routes:
    """The members' addresses as one node knows them.

    Args:
        node_id: this node's id (never routed).
        cluster: the cluster configuration (the fallback).
    """

    def __init__(self, node_id: int, cluster: ClusterConfig) -> None:
        self.node_id = node_id
        self.cluster = cluster
        # The endpoint told of new routes: only one the node made itself.
        self.endpoint: net.DatagramEndpoint | None = None

    def udp_endpoint(self, faults: net.FaultInjector | None) -> net.UdpEndpoint:
        """This member's UDP endpoint, sized for the cluster's ``max_command``."""
        cluster = self.cluster
        return net.UdpEndpoint(
            self.node_id,
            cluster_id=net.cluster_id_from(cluster.cluster_id),
            bind=cluster.member(self.node_id).peer,
            key=cluster.key,
            max_datagram=cluster.max_datagram,
            max_message=Budget.message_size_for(cluster.max_command),
            faults=faults,
        )

    def founding(self) -> Membership:
        """The founding members of cluster.toml (not ``join``), all voting, with
        their addresses: the membership of a log without membership entries."""
        nodes = [
            NodeConfig(m.id, True, member_context(m.peer, m.http))
            for m in sorted(self.cluster.members.values(), key=lambda m: m.id)
            if not m.join
        ]
        return Membership(tuple(nodes))

    def addresses(self, node: NodeConfig) -> tuple[Address, Address] | None:
        """A member's (peer, http) addresses: from its entry, else the configuration."""
        addresses = parse_context(node.context)
        if addresses is not None:
            return addresses
        member = self.cluster.members.get(node.node_id)
        return (member.peer, member.http) if member is not None else None

    def route(self, node_id: int, node: NodeConfig | None) -> None:
        """Send ``node_id``'s datagrams where its entry (or the configuration) says."""
        if node is None or node_id == self.node_id or self.endpoint is None:
            return
        addresses = self.addresses(node)
        if addresses is None:
            log.warning("node %d: no address known for node %d", self.node_id, node_id)
            return
        self.endpoint.set_peer(node_id, addresses[0])

    def start(self, membership: Membership) -> None:
        """Route every member of the log, then every other node of cluster.toml."""
        for node in membership.nodes:
            self.route(node.node_id, node)
        if self.endpoint is None:
            return
        # Every node of cluster.toml is reachable at its configured address
        # until the log says otherwise: a joining node knows only the founding
        # members from its log, and must be able to answer a leader that
        # joined later (a snapshot or a membership entry will tell it more).
        known = {node.node_id for node in membership.nodes}
        for member in sorted(self.cluster.members.values(), key=lambda m: m.id):
            if member.id != self.node_id and member.id not in known:
                self.endpoint.set_peer(member.id, member.peer)

    def http_address(self, node: NodeConfig | None, node_id: int) -> Address | None:
        """The client API address of ``node_id`` (``node``: its log entry, if any)."""
        if node is not None:
            addresses = parse_context(node.context)
            if addresses is not None:
                return addresses[1]
        member = self.cluster.members.get(node_id)
        return member.http if member is not None else None

    def describe(self, membership: Membership) -> list[dict[str, Any]]:
        """The members with their addresses, JSON-ready (for ``Node.status``)."""
        members = []
        for node in membership.nodes:
            addresses = self.addresses(node)
            peer, http = addresses if addresses is not None else (None, None)
            members.append(
                {
                    "id": node.node_id,
                    "voting": node.voting,
                    "peer": format_address(peer) if peer else None,
                    "http": format_address(http) if http else None,
                }
            )
        return members
