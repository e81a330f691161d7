"""Datagrams for a Raft node: UDP endpoint, framing, authentication, fault injection.

This package knows nothing of Raft; it never imports ``traft``. It carries bytes.

Theory of operation
-------------------
A node owns one endpoint, ``UdpEndpoint`` in production or a
``MemoryNetwork``'s ``MemoryEndpoint`` in tests; both are
``DatagramEndpoint``\\ s with one surface::

    endpoint = UdpEndpoint(node_id, cluster_id=cluster_id_from(cfg_id), key=key)
    address = await nursery.start(endpoint.serve)   # bound; receiving
    endpoint.set_peer(2, ("127.0.0.1", 7002))
    endpoint.send(2, payload)                       # never blocks, never raises for the network
    endpoint.max_payload, endpoint.max_message      # one datagram's payload; the most send takes
    async for datagram in endpoint.receive_channel:  # Datagram(sender_id, kind, payload, address)
        ...
    endpoint.stats                                  # counters for /metrics

Every datagram travels in an envelope (``net.envelope``): protocol version,
cluster id, sender id and, with a cluster key, an HMAC-SHA256 tag. Anything
malformed, foreign, unauthenticated or oversized is dropped and counted. A
payload longer than one datagram (up to ``max_message``, by default 1 MiB
plus 64 KiB) is split into fragments and reassembled on receipt within
bounded memory (``net.fragments``); a lost fragment loses the message. The
receive channel is bounded and overflow is dropped and counted. A
``FaultInjector`` on the send path drops, duplicates, reorders, delays and
partitions datagrams on demand, reproducibly from a seeded ``random.Random``.
"""

from net.endpoint import UdpEndpoint
from net.envelope import (
    DEFAULT_MAX_DATAGRAM,
    REASONS,
    Envelope,
    EnvelopeCodec,
    MalformedDatagram,
    PayloadTooLarge,
    cluster_id_from,
)
from net.faults import FaultInjector
from net.fragments import DEFAULT_MAX_MESSAGE, FRAGMENT_STAT_KEYS, Reassembler
from net.memory import MemoryEndpoint, MemoryNetwork
from net.transport import (
    IN_DROP_REASONS,
    OUT_DROP_REASONS,
    STAT_KEYS,
    Address,
    Datagram,
    DatagramEndpoint,
)

__all__ = [
    "DEFAULT_MAX_DATAGRAM",
    "DEFAULT_MAX_MESSAGE",
    "FRAGMENT_STAT_KEYS",
    "IN_DROP_REASONS",
    "OUT_DROP_REASONS",
    "REASONS",
    "STAT_KEYS",
    "Address",
    "Datagram",
    "DatagramEndpoint",
    "Envelope",
    "EnvelopeCodec",
    "FaultInjector",
    "MalformedDatagram",
    "MemoryEndpoint",
    "MemoryNetwork",
    "PayloadTooLarge",
    "Reassembler",
    "UdpEndpoint",
    "cluster_id_from",
]
