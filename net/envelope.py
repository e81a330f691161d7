"""Framing of one datagram: the envelope every traft datagram travels in.

Theory of operation
-------------------
A datagram is a fixed 21-byte header, the payload, and, when the cluster has
a key, a 16-byte authentication tag::

    offset  size  field
    0       2     magic      b"tR"
    2       1     version    PROTOCOL_VERSION (1)
    3       1     flags      bit 0: a tag follows the payload;
                             bit 1: the payload is one fragment of a larger
                             message (``net.fragments``); other bits zero
    4       1     kind       payload kind, opaque to net (0..255)
    5       8     cluster    cluster id, unsigned 64-bit big-endian
    13      8     sender     sender's node id, unsigned 64-bit big-endian
    21      n     payload    opaque bytes
    21+n    16    tag        HMAC-SHA256(key, header + payload), first 16 bytes

A message longer than one datagram's payload travels as several datagrams
with the fragment flag; their payloads start with a fragment header that
``net.fragments`` writes and reads. The envelope only carries the flag, and
its tag covers the fragment header like any payload. A receiver from before
fragments existed refuses the flag (``version``), so the change is safe on a
mixed cluster: it only loses what it could never have taken.

UDP keeps datagram boundaries, so there is no length field: the payload is
whatever lies between the header and the tag. The tag is truncated to 128 bits,
which RFC 2104 §5 and NIST SP 800-107 allow (at least half the hash length and
at least 80 bits).

Checks run in a fixed order, cheapest first, and the first failure names the
reason: ``oversize`` (longer than the configured maximum), ``short`` (shorter
than the header, or than header plus tag), ``magic`` (not a traft datagram),
``version`` (another protocol version or unknown flag bits), ``cluster``
(another cluster's id), ``auth`` (tag missing, wrong, or present where the
receiver has no key). Every failure is one exception, ``MalformedDatagram``,
whose ``reason`` is one of ``REASONS``; nothing else escapes ``decode``.

The tag proves that the sender knows the cluster key. It does not stop
replays, which Raft tolerates as duplicates, and it does not hide the payload.

This is the hot path (one datagram per message, tens of thousands per
second): the header layout is one precompiled ``struct.Struct``, the tag is
computed from a keyed HMAC object made once and copied per datagram (its key
pads are hashed once; ``hmac.digest`` would redo that every time and measured
about 50% slower), and decoding reads straight out of
the caller's buffer (a ``memoryview`` of a preallocated receive buffer works),
copying only the payload.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final, Literal, NamedTuple

__all__ = [
    "DEFAULT_MAX_DATAGRAM",
    "FLAG_FRAGMENT",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_UDP_DATAGRAM",
    "PROTOCOL_VERSION",
    "REASONS",
    "TAG_SIZE",
    "Envelope",
    "EnvelopeCodec",
    "MalformedDatagram",
    "PayloadTooLarge",
    "Reason",
    "cluster_id_from",
]

MAGIC: Final = b"tR"
PROTOCOL_VERSION: Final = 1
FLAG_TAGGED: Final = 0x01
FLAG_FRAGMENT: Final = 0x02
_KNOWN_FLAGS: Final = FLAG_TAGGED | FLAG_FRAGMENT
TAG_SIZE: Final = 16

_HEADER: Final = struct.Struct(">2sBBBQQ")
HEADER_SIZE: Final = _HEADER.size  # 21

# The largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP).
MAX_UDP_DATAGRAM: Final = 65507
# Fits one loopback packet (MTU 65536) with room to spare. On a real Ethernet
# path use 1472 or less (MTU 1500): a larger datagram is IP-fragmented, and
# losing any fragment loses the whole datagram.
DEFAULT_MAX_DATAGRAM: Final = 65000

_U64_LIMIT: Final = 1 << 64

Reason = Literal["short", "magic", "version", "cluster", "auth", "oversize"]
REASONS: Final[tuple[Reason, ...]] = ("short", "magic", "version", "cluster", "auth", "oversize")


class MalformedDatagram(Exception):
    """A received datagram failed a check; ``reason`` says which (one of ``REASONS``)."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: Reason = reason


class PayloadTooLarge(ValueError):
    """A local caller tried to send a payload larger than the endpoint carries."""


class Envelope(NamedTuple):
    """One decoded datagram: who sent it, the payload kind, the payload.

    ``fragment`` is True when the payload is one fragment of a larger
    message (fragment header first, see ``net.fragments``).
    """

    sender_id: int
    kind: int
    payload: bytes
    fragment: bool = False


# Envelope(...) runs the named tuple's Python-level __new__; building the tuple
# directly skips it and roughly halves the cost, once per received datagram.
_new_envelope: Final = tuple.__new__


def cluster_id_from(value: int | str) -> int:
    """Turn a configured cluster id into the envelope's unsigned 64-bit id.

    An integer in [0, 2**64) is used as is. A string is hashed: the first
    8 bytes of SHA-256 of its UTF-8 form, big-endian.

    Raises:
        ValueError: an integer out of range, or a value that is neither int nor str.
    """
    if isinstance(value, str):
        return int.from_bytes(hashlib.sha256(value.encode("utf-8")).digest()[:8], "big")
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < _U64_LIMIT:
            return value
        raise ValueError(f"cluster id {value} is not an unsigned 64-bit integer")
    raise ValueError(f"cluster id must be int or str, not {type(value).__name__}")


class EnvelopeCodec:
    """Encodes and checks datagrams for one cluster (id, optional key, size limit).

    One codec per endpoint; it holds no per-datagram state and may be shared.
    """

    __slots__ = ("_cluster_id", "_mac", "_max_datagram", "max_payload")

    def __init__(
        self,
        cluster_id: int,
        *,
        key: bytes | None = None,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
    ) -> None:
        """Make a codec.

        Args:
            cluster_id: the cluster's id, an unsigned 64-bit integer (see
                ``cluster_id_from`` for configured strings).
            key: the cluster key; when set, every datagram is tagged and every
                received datagram must carry a valid tag.
            max_datagram: the largest datagram, header and tag included, that
                is sent or accepted.

        Raises:
            ValueError: cluster id out of range, empty key, or a maximum that
                cannot hold the header and tag or exceeds ``MAX_UDP_DATAGRAM``.
        """
        if not 0 <= cluster_id < _U64_LIMIT:
            raise ValueError(f"cluster id {cluster_id} is not an unsigned 64-bit integer")
        if key is not None and len(key) == 0:
            raise ValueError("the cluster key must not be empty; use None for no key")
        overhead = HEADER_SIZE + (TAG_SIZE if key is not None else 0)
        if not overhead < max_datagram <= MAX_UDP_DATAGRAM:
            raise ValueError(f"max_datagram must be in ({overhead}, {MAX_UDP_DATAGRAM}]")
        self._cluster_id = cluster_id
        # Keyed once; each datagram's tag comes from a copy of it.
        self._mac = None if key is None else hmac.new(bytes(key), digestmod=hashlib.sha256)
        self._max_datagram = max_datagram
        self.max_payload: int = max_datagram - overhead
        """The largest payload ``encode`` accepts."""

    @property
    def cluster_id(self) -> int:
        return self._cluster_id

    @property
    def max_datagram(self) -> int:
        return self._max_datagram

    @property
    def authenticated(self) -> bool:
        """Whether this codec tags and requires tags (a key is set)."""
        return self._mac is not None

    def encode(
        self, sender_id: int, payload: bytes, kind: int = 0, *, fragment: bool = False
    ) -> bytes:
        """Frame ``payload`` from ``sender_id`` into one datagram.

        With ``fragment=True`` the fragment flag is set: ``payload`` is one
        fragment (header and chunk) made by ``net.fragments.split``.

        Raises:
            PayloadTooLarge: the payload exceeds ``max_payload``.
            ValueError: ``sender_id`` is not an unsigned 64-bit integer or
                ``kind`` is not in 0..255.
        """
        if len(payload) > self.max_payload:
            raise PayloadTooLarge(
                f"payload of {len(payload)} bytes exceeds the maximum of {self.max_payload}"
            )
        mac = self._mac
        flags = FLAG_FRAGMENT if fragment else 0
        try:
            if mac is None:
                return (
                    _HEADER.pack(MAGIC, PROTOCOL_VERSION, flags, kind, self._cluster_id, sender_id)
                    + payload
                )
            signed = (
                _HEADER.pack(
                    MAGIC,
                    PROTOCOL_VERSION,
                    flags | FLAG_TAGGED,
                    kind,
                    self._cluster_id,
                    sender_id,
                )
                + payload
            )
        except struct.error as e:
            raise ValueError(f"sender id or kind out of range: {e}") from None
        mac = mac.copy()
        mac.update(signed)
        return signed + mac.digest()[:TAG_SIZE]

    def decode(self, datagram: bytes | bytearray | memoryview) -> Envelope:
        """Check one received datagram and return its envelope.

        The payload is copied out, so ``datagram`` may be a view of a buffer
        that is reused afterwards.

        Raises:
            MalformedDatagram: the datagram fails a check; ``reason`` names it.
                No other exception escapes, whatever the input.
        """
        size = len(datagram)
        if size > self._max_datagram:
            raise MalformedDatagram("oversize", f"{size} bytes > {self._max_datagram}")
        if size < HEADER_SIZE:
            raise MalformedDatagram("short", f"{size} bytes")
        magic, version, flags, kind, cluster_id, sender_id = _HEADER.unpack_from(datagram)
        if magic != MAGIC:
            raise MalformedDatagram("magic")
        if version != PROTOCOL_VERSION or flags & ~_KNOWN_FLAGS:
            raise MalformedDatagram("version", f"version {version}, flags {flags:#04x}")
        if cluster_id != self._cluster_id:
            raise MalformedDatagram("cluster", f"cluster id {cluster_id}")
        mac = self._mac
        fragment = bool(flags & FLAG_FRAGMENT)
        if mac is None:
            if flags & FLAG_TAGGED:
                raise MalformedDatagram("auth", "tagged datagram, but no cluster key is set")
            return _new_envelope(
                Envelope, (sender_id, kind, bytes(datagram[HEADER_SIZE:]), fragment)
            )
        if not flags & FLAG_TAGGED:
            raise MalformedDatagram("auth", "untagged datagram")
        end = size - TAG_SIZE
        if end < HEADER_SIZE:
            raise MalformedDatagram("short", f"{size} bytes, no room for the tag")
        view = memoryview(datagram)
        mac = mac.copy()
        mac.update(view[:end])
        if not hmac.compare_digest(view[end:], mac.digest()[:TAG_SIZE]):
            raise MalformedDatagram("auth", "bad tag")
        return _new_envelope(Envelope, (sender_id, kind, bytes(view[HEADER_SIZE:end]), fragment))
