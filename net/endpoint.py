"""A node's UDP endpoint on trio: one non-blocking socket, one receive loop.

Theory of operation
-------------------
``UdpEndpoint`` binds one IPv4 UDP socket (port 0 picks a free port; ``serve``
reports the real address). The socket is a plain non-blocking
``socket.socket``; trio is only asked to wait until it is readable
(``trio.lowlevel.wait_readable``). Each wakeup then drains up to
``recv_batch`` datagrams with ``recvfrom_into`` into one preallocated buffer,
so a busy endpoint pays for one scheduler round trip per batch rather than per
datagram, and allocates nothing per datagram beyond the payload it hands on.

The buffer is one byte longer than ``max_datagram``: the kernel silently
truncates a datagram that does not fit, so a datagram that fills the buffer
was too long and is dropped as ``oversize``.

``send`` calls ``sendto`` directly on the non-blocking socket; a full socket
buffer (``BlockingIOError``), an unreachable peer or any other ``OSError`` is
a dropped, counted datagram, never an exception and never a wait. Peer
addresses must be IPv4 literals so that ``sendto`` never resolves a name.

Everything shared with the in-memory endpoint (framing, faults, the bounded
channel, counters) lives in ``net.transport``.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
from collections.abc import Mapping
from typing import Final

import trio

from net.envelope import DEFAULT_MAX_DATAGRAM, EnvelopeCodec
from net.faults import FaultInjector
from net.fragments import DEFAULT_MAX_MESSAGE
from net.transport import DEFAULT_QUEUE_SIZE, Address, DatagramEndpoint

__all__ = ["DEFAULT_RECV_BATCH", "DEFAULT_SOCKET_BUFFER", "UdpEndpoint"]

log = logging.getLogger(__name__)

DEFAULT_RECV_BATCH: Final = 64
# Asked of the kernel for SO_RCVBUF and SO_SNDBUF; Linux caps it at
# net.core.rmem_max / wmem_max, which is fine: this is a wish, not a need.
DEFAULT_SOCKET_BUFFER: Final = 4 * 1024 * 1024


class UdpEndpoint(DatagramEndpoint):
    """A node's UDP endpoint: send to peers by id, receive through a bounded channel."""

    def __init__(
        self,
        node_id: int,
        *,
        cluster_id: int,
        bind: Address = ("127.0.0.1", 0),
        key: bytes | None = None,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        max_message: int = DEFAULT_MAX_MESSAGE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        peers: Mapping[int, Address] | None = None,
        faults: FaultInjector | None = None,
        recv_batch: int = DEFAULT_RECV_BATCH,
        socket_buffer: int | None = DEFAULT_SOCKET_BUFFER,
    ) -> None:
        """Make an endpoint; nothing is bound until ``serve`` runs.

        Args:
            node_id: this node's id (unsigned 64-bit), sent in every datagram.
            cluster_id: the cluster's id (see ``net.cluster_id_from``).
            bind: (host, port) to bind; port 0 picks a free port.
            key: the cluster key; when set, datagrams are authenticated.
            max_datagram: largest datagram sent or accepted, framing included.
                The default suits loopback; use 1472 or less across Ethernet.
            max_message: largest payload sent or reassembled; payloads longer
                than one datagram's travel as fragments.
            queue_size: capacity of the receive channel.
            peers: initial routing table, peer id -> (IPv4 literal, port).
            faults: a fault injector for this endpoint's paths, or None.
            recv_batch: most datagrams read per wakeup of the receive loop.
            socket_buffer: SO_RCVBUF/SO_SNDBUF to ask for, or None for the
                kernel's default.

        Raises:
            ValueError: a bad id, size, key or peer address.
        """
        if recv_batch < 1:
            raise ValueError(f"recv_batch must be positive, not {recv_batch}")
        super().__init__(
            node_id,
            EnvelopeCodec(cluster_id, key=key, max_datagram=max_datagram),
            peers=peers,
            faults=faults,
            queue_size=queue_size,
            max_message=max_message,
            # A process that restarts must not reuse its previous life's
            # message ids: start each life at a random point of 2**64.
            first_message_id=random.SystemRandom().getrandbits(64),
        )
        self._bind = bind
        self._recv_batch = recv_batch
        self._socket_buffer = socket_buffer
        self._sock: socket.socket | None = None
        self._address: Address | None = None

    @property
    def address(self) -> Address | None:
        """The bound (host, port) while serving, else None."""
        return self._address if self._sock is not None else None

    def _check_address(self, address: Address) -> Address:
        host, port = address
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"peer host must be an IPv4 literal, not {host!r}") from None
        if not 0 < port < 65536:
            raise ValueError(f"peer port out of range: {port}")
        return (host, port)

    async def _open(self) -> Address:
        host, port = self._bind
        infos = await trio.socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        sockaddr = infos[0][4]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if self._socket_buffer is not None:
                for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, option, self._socket_buffer)
                    except OSError:  # pragma: no cover - best effort by design
                        log.debug("could not set socket buffer option %d", option)
            sock.bind(sockaddr)
        except BaseException:
            sock.close()
            raise
        bound_host, bound_port = sock.getsockname()[:2]
        self._sock = sock
        self._address = (bound_host, bound_port)
        log.debug("node %d: bound %s:%d", self.node_id, bound_host, bound_port)
        return self._address

    async def _receive_loop(self) -> None:
        sock = self._sock
        assert sock is not None, "_open runs first"
        buffer = bytearray(self._codec.max_datagram + 1)
        view = memoryview(buffer)
        batch = range(self._recv_batch)
        receive = self._receive
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in batch:
                try:
                    size, address = sock.recvfrom_into(buffer)
                except BlockingIOError:
                    break
                except OSError as e:
                    # e.g. ECONNREFUSED left by an ICMP error: not a datagram
                    # of anyone's, but count it and keep going.
                    self.stats["receive_errors"] += 1
                    log.debug("node %d: receive error: %s", self.node_id, e)
                    break
                receive(view[:size], address)

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    def _write(self, address: Address, datagram: bytes) -> None:
        sock = self._sock
        assert sock is not None, "_write runs only while serving"
        try:
            sock.sendto(datagram, address)
        except OSError as e:
            self.stats["dropped_out_error"] += 1
            log.debug("node %d: send to %s failed: %s", self.node_id, address, e)
        else:
            self.stats["datagrams_out"] += 1
            self.stats["bytes_out"] += len(datagram)
