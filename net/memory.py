"""An in-memory datagram network: UDP's interface without sockets.

Theory of operation
-------------------
``MemoryNetwork`` stands in for the loopback interface so that node tests run
in one process under trio's autojump clock. ``network.endpoint(node_id)``
makes a ``MemoryEndpoint``, a ``DatagramEndpoint`` like ``UdpEndpoint``: the
same ``send``, ``receive_channel``, ``serve``, ``stats``, ``set_peer``.

Datagrams are real envelopes, framed and checked by one codec shared by the
whole network, so size limits, authentication and counters behave as on UDP.
Every endpoint passes its sends through the network's one ``FaultInjector``
(when given), which is how tests drop, duplicate, reorder, delay and
partition. Delayed copies wait in the sending endpoint's ``DelayLine`` and are
lost if that endpoint stops serving first, as in a crashed process.

An endpoint's address is ``("memory", node_id)``. A peer id without an entry
in the routing table is routed to ``("memory", peer_id)``, so endpoints of one
network reach each other without setup. A write is handed to the endpoint
serving that address at once, synchronously; when none is serving, the
datagram vanishes, as UDP's would. An endpoint for a node id can serve again
after the previous one stopped, which is how tests restart a node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import trio

from net.envelope import DEFAULT_MAX_DATAGRAM, EnvelopeCodec
from net.faults import FaultInjector
from net.fragments import DEFAULT_MAX_MESSAGE
from net.transport import DEFAULT_QUEUE_SIZE, Address, DatagramEndpoint

__all__ = ["MEMORY_HOST", "MemoryEndpoint", "MemoryNetwork"]

MEMORY_HOST: Final = "memory"


class MemoryNetwork:
    """A set of in-memory endpoints sharing one codec and one fault injector."""

    def __init__(
        self,
        *,
        cluster_id: int = 0,
        key: bytes | None = None,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        max_message: int = DEFAULT_MAX_MESSAGE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        faults: FaultInjector | None = None,
    ) -> None:
        """Make an empty network.

        Args:
            cluster_id: the cluster id every envelope carries.
            key: the cluster key; when set, datagrams are authenticated.
            max_datagram: largest datagram sent or accepted, framing included.
            max_message: largest payload an endpoint sends or reassembles;
                longer than one datagram's payload means fragments.
            queue_size: default receive channel capacity of each endpoint.
            faults: the fault injector every endpoint's sends go through, or
                None for a perfect network.

        Raises:
            ValueError: a bad cluster id, key or size.
        """
        self.codec: Final = EnvelopeCodec(cluster_id, key=key, max_datagram=max_datagram)
        self.faults: Final = faults
        self.max_message: Final = max_message
        self._queue_size = queue_size
        self._endpoints_made = 0
        self._serving: dict[int, MemoryEndpoint] = {}

    @staticmethod
    def address(node_id: int) -> Address:
        """The address of ``node_id``'s endpoint on any memory network."""
        return (MEMORY_HOST, node_id)

    def endpoint(
        self,
        node_id: int,
        *,
        peers: Mapping[int, Address] | None = None,
        queue_size: int | None = None,
    ) -> MemoryEndpoint:
        """Make an endpoint for ``node_id``; it receives once it serves.

        Raises:
            ValueError: a bad node id, queue size or peer address.
        """
        self._endpoints_made += 1
        return MemoryEndpoint(
            self,
            node_id,
            peers=peers,
            queue_size=self._queue_size if queue_size is None else queue_size,
            # Each endpoint, a restarted node's too, numbers its fragmented
            # messages from its own point: reproducible, and never reused.
            first_message_id=self._endpoints_made << 40,
        )

    def serving(self) -> list[int]:
        """The node ids whose endpoints are serving now, sorted."""
        return sorted(self._serving)

    def inject(
        self, node_id: int, datagram: bytes, *, from_address: Address = ("forger", 0)
    ) -> None:
        """Hand raw bytes to ``node_id``'s endpoint as if received from the wire.

        For tests of forged, foreign and malformed datagrams: they take the
        same path as any received datagram and are checked and counted.
        Nothing happens when that endpoint is not serving.
        """
        endpoint = self._serving.get(node_id)
        if endpoint is not None:
            endpoint._receive(datagram, from_address)

    # -- used by MemoryEndpoint ----------------------------------------------

    def _attach(self, endpoint: MemoryEndpoint) -> None:
        current = self._serving.get(endpoint.node_id)
        if current is not None and current is not endpoint:
            raise ValueError(f"node {endpoint.node_id} already has a serving endpoint")
        self._serving[endpoint.node_id] = endpoint

    def _detach(self, endpoint: MemoryEndpoint) -> None:
        if self._serving.get(endpoint.node_id) is endpoint:
            del self._serving[endpoint.node_id]

    def _deliver(self, address: Address, datagram: bytes, from_address: Address) -> None:
        host, node_id = address
        if host == MEMORY_HOST:
            endpoint = self._serving.get(node_id)
            if endpoint is not None:
                endpoint._receive(datagram, from_address)


class MemoryEndpoint(DatagramEndpoint):
    """A node's endpoint on a ``MemoryNetwork``; make it with ``network.endpoint``."""

    def __init__(
        self,
        network: MemoryNetwork,
        node_id: int,
        *,
        peers: Mapping[int, Address] | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        first_message_id: int = 0,
    ) -> None:
        """Make an endpoint on ``network``; prefer ``network.endpoint(node_id)``.

        Raises:
            ValueError: a bad node id, queue size or peer address.
        """
        super().__init__(
            node_id,
            network.codec,
            peers=peers,
            faults=network.faults,
            queue_size=queue_size,
            max_message=network.max_message,
            first_message_id=first_message_id,
        )
        self._network = network

    @property
    def address(self) -> Address:
        """``("memory", node_id)``."""
        return MemoryNetwork.address(self.node_id)

    def _check_address(self, address: Address) -> Address:
        host, node_id = address
        if host != MEMORY_HOST or not isinstance(node_id, int):
            raise ValueError(f"not a memory address: {address!r}")
        return (host, node_id)

    def _default_route(self, peer_id: int) -> Address | None:
        return MemoryNetwork.address(peer_id)

    async def _open(self) -> Address:
        # Raises ValueError (out of serve) when this node id is taken.
        self._network._attach(self)
        return self.address

    async def _receive_loop(self) -> None:
        # Senders call _receive directly; there is nothing to wait for here.
        await trio.sleep_forever()

    def _close(self) -> None:
        self._network._detach(self)

    def _write(self, address: Address, datagram: bytes) -> None:
        self.stats["datagrams_out"] += 1
        self.stats["bytes_out"] += len(datagram)
        self._network._deliver(address, datagram, self.address)
