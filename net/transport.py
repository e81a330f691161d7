"""What every datagram endpoint shares, whatever carries the bytes.

Theory of operation
-------------------
``DatagramEndpoint`` is one node's end of a datagram network. Its subclasses
(``UdpEndpoint`` over a socket, ``MemoryEndpoint`` inside one process) supply
only how to open, receive and write; the two paths between them live here.

Outbound, ``send(peer_id, payload)`` frames the payload (``EnvelopeCodec``),
or, when it is longer than one datagram's payload and at most
``max_message``, splits it into fragments (``net.fragments``) under a fresh
message id and frames each one; then it looks up the peer's address, passes the datagram through the optional
``FaultInjector`` and writes each copy at once, or later through the
``DelayLine`` when the injector delays it. It never blocks and never raises
for a network failure: a write that fails is dropped and counted, so trouble
with one peer never stops sends to the others. It raises only when the local
caller misuses it (a payload that does not fit, see ``max_payload``).

Inbound, every datagram the subclass receives goes to ``_receive``: decode
and check it, apply partitions, hand a fragment to the ``Reassembler`` (which
returns the whole message once its last fragment arrives), then
``send_nowait`` the message into a bounded trio memory channel. A bad datagram, a full channel or a closed one means a drop
and a counter, never an exception: the receive loop never blocks and never
dies of its input.

Counters live in ``stats``, a plain ``dict[str, int]`` whose keys all exist
from the start (``STAT_KEYS``): ``datagrams_in``/``bytes_in`` count everything
received, ``delivered`` what reached the channel, and ``dropped_in_<reason>``
the rest, so ``datagrams_in == delivered + sum(dropped_in_*)``;
``receive_errors`` counts errors the socket reported instead of a datagram.
Fragments are counted too: a datagram that is a fragment counts in
``fragments_in`` instead of reaching the channel itself, and every message
reassembled from fragments counts in ``reassembled`` and then, like any
message, in ``delivered`` or ``dropped_in_overflow``/``closed``; so
``datagrams_in - fragments_in + reassembled == delivered + sum(dropped_in_*)``.
What happened to each fragment is in the ``FRAGMENT_STAT_KEYS``
(``net.fragments``). ``datagrams_out``/``bytes_out`` count datagrams written (after fault
injection), ``dropped_out_<reason>`` the writes that failed or had nowhere to
go.

Lifecycle: construct, then ``await nursery.start(endpoint.serve)``, which
reports the bound address; cancelling ``serve`` closes the endpoint and the
channel's send side, so a consumer's ``async for`` ends. An endpoint serves
once. The endpoint's state is touched only from trio tasks of one thread.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping
from functools import partial
from typing import Final, NamedTuple

import trio

from net.envelope import REASONS, EnvelopeCodec, MalformedDatagram, PayloadTooLarge
from net.faults import DelayLine, FaultInjector
from net.fragments import (
    DEFAULT_MAX_MESSAGE,
    FRAGMENT_HEADER_SIZE,
    FRAGMENT_STAT_KEYS,
    MAX_FRAGMENTS,
    Reassembler,
    split,
)

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "IN_DROP_REASONS",
    "OUT_DROP_REASONS",
    "STAT_KEYS",
    "Address",
    "Datagram",
    "DatagramEndpoint",
]

log = logging.getLogger(__name__)

# A UDP endpoint's (IPv4 host, port); a memory endpoint's ("memory", node_id).
Address = tuple[str, int]

DEFAULT_QUEUE_SIZE: Final = 1024

IN_DROP_REASONS: Final[tuple[str, ...]] = (
    *REASONS,  # the envelope's checks
    "partition",  # the fault injector cuts sender -> us
    "overflow",  # the bounded channel is full
    "closed",  # nobody will ever read the channel again
)
OUT_DROP_REASONS: Final[tuple[str, ...]] = (
    "no_route",  # no address known for the peer id
    "error",  # the socket refused the write (buffer full, unreachable, ...)
    "closed",  # the endpoint is not serving (not yet, or any more)
)
STAT_KEYS: Final[tuple[str, ...]] = (
    "datagrams_in",
    "bytes_in",
    "delivered",
    *(f"dropped_in_{reason}" for reason in IN_DROP_REASONS),
    "receive_errors",
    *FRAGMENT_STAT_KEYS,
    "datagrams_out",
    "bytes_out",
    *(f"dropped_out_{reason}" for reason in OUT_DROP_REASONS),
)
_IN_DROP_KEYS: Final = {reason: f"dropped_in_{reason}" for reason in IN_DROP_REASONS}
_U64_LIMIT: Final = 1 << 64


class Datagram(NamedTuple):
    """One received datagram, as the receive channel yields it."""

    sender_id: int
    kind: int
    payload: bytes
    address: Address


class DatagramEndpoint(abc.ABC):
    """One node's end of a datagram network: ``send``, ``receive_channel``, ``serve``, ``stats``."""

    def __init__(
        self,
        node_id: int,
        codec: EnvelopeCodec,
        *,
        peers: Mapping[int, Address] | None = None,
        faults: FaultInjector | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_message: int = DEFAULT_MAX_MESSAGE,
        first_message_id: int = 0,
    ) -> None:
        """Set up the paths shared by every kind of endpoint.

        Args:
            node_id: this node's id, the sender id of every datagram it sends.
            codec: frames and checks datagrams (cluster id, key, size limit).
            peers: the initial routing table, peer id -> address.
            faults: a fault injector for the send path (and partitions on the
                receive path); None for a perfect network.
            queue_size: capacity of the receive channel; beyond it datagrams
                are dropped and counted as ``overflow``.
            max_message: the largest payload ``send`` accepts and the largest
                message reassembled from fragments; at least one datagram's
                payload, at most ``MAX_FRAGMENTS`` fragments.
            first_message_id: the id of the first fragmented message sent;
                later ones count up. A restarted sender should not reuse the
                ids of its previous life (reassembly survives it, see
                ``net.fragments``, but may lose a message to it).

        Raises:
            ValueError: ``node_id`` is not an unsigned 64-bit integer,
                ``queue_size`` is not positive, ``max_message`` is out of
                range, or a peer address is invalid.
        """
        if not 0 <= node_id < _U64_LIMIT:
            raise ValueError(f"node id {node_id} is not an unsigned 64-bit integer")
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, not {queue_size}")
        chunk_size = codec.max_payload - FRAGMENT_HEADER_SIZE
        if not codec.max_payload <= max_message <= chunk_size * MAX_FRAGMENTS:
            raise ValueError(
                f"max_message must be in [{codec.max_payload}, {chunk_size * MAX_FRAGMENTS}]"
                f" for datagrams of {codec.max_datagram} bytes, not {max_message}"
            )
        self.node_id: Final = node_id
        self._codec = codec
        self._faults = faults
        self._peers: dict[int, Address] = {}
        for peer_id, address in (peers or {}).items():
            self.set_peer(peer_id, address)
        self._inbox, self._receive_channel = trio.open_memory_channel[Datagram](queue_size)
        self._delay_line = DelayLine()
        self._started = False
        # True from the end of _open until serve ends; only then do sends go out.
        self._serving = False
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        """Counters for /metrics; see the module docstring and ``STAT_KEYS``."""
        self._max_message = max_message
        self._chunk_size = chunk_size
        self._next_message_id = first_message_id % _U64_LIMIT
        self.reassembler: Final = Reassembler(max_message=max_message, stats=self.stats)
        """Partial messages received so far (bounded); its counters are in ``stats``."""

    # -- what subclasses provide --------------------------------------------

    @abc.abstractmethod
    async def _open(self) -> Address:
        """Start carrying datagrams; return this endpoint's address."""

    @abc.abstractmethod
    async def _receive_loop(self) -> None:
        """Feed received datagrams to ``_receive`` until cancelled."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Stop carrying datagrams (called once, when ``serve`` ends)."""

    @abc.abstractmethod
    def _write(self, address: Address, datagram: bytes) -> None:
        """Put one datagram on the wire now, counting the outcome in ``stats``.

        Called only while serving: by ``send``, or by the delay line, which
        runs inside ``serve``.
        """

    # -- public surface -------------------------------------------------------

    @property
    @abc.abstractmethod
    def address(self) -> Address | None:
        """This endpoint's address while serving (None for a UDP endpoint not bound)."""

    @property
    def receive_channel(self) -> trio.MemoryReceiveChannel[Datagram]:
        """Received, checked datagrams in arrival order; ends when ``serve`` ends.

        Each ``await receive()`` is a trip through the scheduler; a busy
        consumer should await one datagram, then take what else is queued
        with ``receive_nowait()`` until ``trio.WouldBlock``.
        """
        return self._receive_channel

    @property
    def max_payload(self) -> int:
        """The largest payload that travels in one datagram (max datagram minus framing).

        Larger payloads, up to ``max_message``, are sent as fragments.
        """
        return self._codec.max_payload

    @property
    def max_message(self) -> int:
        """The largest payload ``send`` accepts and a receiver reassembles."""
        return self._max_message

    @property
    def faults(self) -> FaultInjector | None:
        """The fault injector on this endpoint's paths, if any."""
        return self._faults

    @property
    def peers(self) -> dict[int, Address]:
        """A copy of the routing table, peer id -> address."""
        return dict(self._peers)

    def set_peer(self, peer_id: int, address: Address) -> None:
        """Route datagrams for ``peer_id`` to ``address`` (adds or replaces).

        Raises:
            ValueError: the address is not one this endpoint can send to.
        """
        self._peers[peer_id] = self._check_address(address)

    def remove_peer(self, peer_id: int) -> None:
        """Forget ``peer_id``'s address; later sends to it count ``no_route``."""
        self._peers.pop(peer_id, None)

    def _check_address(self, address: Address) -> Address:
        """Validate a peer address (subclasses narrow it); raise ValueError if bad."""
        return address

    def send(self, peer_id: int, payload: bytes, *, kind: int = 0) -> None:
        """Send ``payload`` to ``peer_id``, best effort, without blocking.

        Loss, duplication, reordering and delay are possible (and injected
        when a fault injector is set); failures are counted in ``stats``.
        While the endpoint is not serving, datagrams are dropped and counted
        as ``dropped_out_closed``.

        A payload longer than ``max_payload`` goes out as fragments, each a
        datagram that meets the network's faults on its own; losing any one
        loses the message.

        Raises:
            PayloadTooLarge: ``len(payload) > max_message``.
            ValueError: ``kind`` is not in 0..255.
        """
        codec = self._codec
        if len(payload) <= codec.max_payload:
            self._send_datagram(peer_id, codec.encode(self.node_id, payload, kind))
            return
        if len(payload) > self._max_message:
            raise PayloadTooLarge(
                f"payload of {len(payload)} bytes exceeds the maximum of {self._max_message}"
            )
        if not 0 <= kind < 256:
            raise ValueError(f"kind must be in 0..255, not {kind}")
        message_id = self._next_message_id
        self._next_message_id = (message_id + 1) % _U64_LIMIT
        for fragment in split(payload, self._chunk_size, message_id):
            self._send_datagram(peer_id, codec.encode(self.node_id, fragment, kind, fragment=True))

    def _send_datagram(self, peer_id: int, datagram: bytes) -> None:
        """Route one framed datagram to ``peer_id`` through the faults, or count why not."""
        if not self._serving:
            self.stats["dropped_out_closed"] += 1
            return
        address = self._peers.get(peer_id)
        if address is None:
            address = self._default_route(peer_id)
            if address is None:
                self.stats["dropped_out_no_route"] += 1
                log.debug("node %d: no route to peer %d", self.node_id, peer_id)
                return
        faults = self._faults
        if faults is None:
            self._write(address, datagram)
            return
        for delay_ms, copy in faults.route(self.node_id, peer_id, datagram):
            if delay_ms > 0.0:
                self._delay_line.schedule(delay_ms, partial(self._write, address), copy)
            else:
                self._write(address, copy)

    def _default_route(self, peer_id: int) -> Address | None:
        """The address for a peer missing from the table (UDP: none)."""
        return None

    async def serve(
        self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Carry datagrams until cancelled; report the bound address once ready.

        Use ``address = await nursery.start(endpoint.serve)``. When it ends,
        by cancellation or error, the endpoint is closed and the receive
        channel ends.

        Raises:
            RuntimeError: the endpoint has already served.
            OSError: a UDP endpoint could not bind its address.
            ValueError: a memory endpoint's node id is served by another
                endpoint already.
        """
        if self._started:
            raise RuntimeError("an endpoint serves once; make a new one")
        self._started = True
        try:
            address = await self._open()
            self._serving = True
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._delay_line.run)
                    task_status.started(address)
                    await self._receive_loop()
            finally:
                self._serving = False
                self._close()
        finally:
            self._inbox.close()

    # -- the inbound path -----------------------------------------------------

    def _receive(self, datagram: bytes | memoryview, address: Address) -> None:
        """Check one received datagram and queue it, or drop and count it."""
        stats = self.stats
        stats["datagrams_in"] += 1
        stats["bytes_in"] += len(datagram)
        try:
            envelope = self._codec.decode(datagram)
        except MalformedDatagram as e:
            stats[_IN_DROP_KEYS[e.reason]] += 1
            log.debug("node %d: dropped datagram from %s: %s", self.node_id, address, e)
            return
        sender_id = envelope.sender_id
        faults = self._faults
        if faults is not None and faults.blocked(sender_id, self.node_id):
            stats["dropped_in_partition"] += 1
            return
        payload = envelope.payload
        if envelope.fragment:
            message = self.reassembler.add(sender_id, envelope.kind, payload)
            if message is None:
                return
            payload = message
        try:
            self._inbox.send_nowait(Datagram(sender_id, envelope.kind, payload, address))
        except trio.WouldBlock:
            stats["dropped_in_overflow"] += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            stats["dropped_in_closed"] += 1
        else:
            stats["delivered"] += 1
