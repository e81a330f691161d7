"""Messages larger than a datagram: splitting on send, reassembly on receipt.

Theory of operation
-------------------
A payload that does not fit one datagram travels as ``count`` fragments, each
an ordinary envelope (``net.envelope``) with the ``FLAG_FRAGMENT`` bit set,
whose payload starts with a fixed 20-byte fragment header::

    offset  size  field
    0       8     message    message id, unsigned 64-bit big-endian
    8       4     total      length of the whole message in bytes
    12      4     crc        CRC-32 of the whole message
    16      2     index      this fragment's position, 0..count-1
    18      2     count      number of fragments of the message (>= 2)
    20      n     chunk      bytes [index * chunk_size, ...) of the message

The envelope's tag (when the cluster has a key) covers the fragment header and
the chunk, so every fragment is authenticated on its own and a forged one is
dropped by ``EnvelopeCodec.decode`` before it reaches reassembly.

``Reassembler`` collects fragments per (sender, message id) and hands back the
whole message once every index has arrived, the lengths add up to ``total``
and the CRC matches. The network may lose, duplicate and reorder fragments and
interleave the fragments of several messages; each case has one outcome:

- a duplicate of a fragment already held, or of a message already delivered
  (remembered by id and CRC for the last ``RECENT`` messages of each sender),
  is dropped (``duplicate``);
- a fragment whose total, CRC, count or kind disagrees with the partial
  message held under the same id (a sender restarted and reused the id) ends
  that partial, whose fragments are dropped (``mismatch``), and starts anew;
  so does a completed message whose CRC fails;
- a fragment with a bad header, an index out of range or a message larger
  than ``max_message`` is dropped (``malformed``, ``oversize``);
- a message with a lost fragment stays partial until evicted (``evicted``):
  Raft resends what was not acknowledged, so a lost fragment is simply a lost
  message.

Memory is bounded: every partial message is charged its bytes received plus
``PARTIAL_OVERHEAD``; each sender may hold at most ``per_peer_bytes`` and all
senders together ``total_bytes``. Room for a new fragment is made by evicting
the oldest partial messages, the sender's own first, then anyone's. There is
no clock here: a partial that will never complete waits until newer traffic
pushes it out, which costs memory only within those bounds.

Counters (``stats``) are per fragment, so that ``fragments_in ==
fragments_used + sum(dropped_fragment_*) + pending_fragments`` always holds;
``reassembled`` counts messages handed back. Nothing here does I/O; the
endpoint (``net.transport``) feeds it from its receive path.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from typing import Final

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "FRAGMENT_HEADER_SIZE",
    "FRAGMENT_STAT_KEYS",
    "MAX_FRAGMENTS",
    "PARTIAL_OVERHEAD",
    "RECENT",
    "Reassembler",
    "split",
]

_FRAGMENT: Final = struct.Struct(">QIIHH")
FRAGMENT_HEADER_SIZE: Final = _FRAGMENT.size  # 20
MAX_FRAGMENTS: Final = 0xFFFF
# Room for a 1 MiB command inside an AppendEntries (its framing, the entry's
# fields, the KV command's key and idempotency key) with 64 KiB to spare.
DEFAULT_MAX_MESSAGE: Final = (1 << 20) + (64 << 10)
# What a partial message costs beyond its bytes (its record, its dict slots);
# charged so that many tiny partials cannot escape the byte bounds.
PARTIAL_OVERHEAD: Final = 256
# Completed messages remembered per sender, to drop their late duplicates.
RECENT: Final = 64
# Senders whose recent messages are remembered (a bound for unkeyed clusters,
# where anyone can claim any sender id).
RECENT_SENDERS: Final = 1024

FRAGMENT_DROP_REASONS: Final = ("malformed", "oversize", "duplicate", "mismatch", "evicted")
FRAGMENT_STAT_KEYS: Final[tuple[str, ...]] = (
    "fragments_in",
    "fragments_used",
    "reassembled",
    *(f"dropped_fragment_{reason}" for reason in FRAGMENT_DROP_REASONS),
)


def split(payload: bytes, chunk_size: int, message_id: int) -> list[bytes]:
    """Cut ``payload`` into fragment payloads (header + chunk) of ``chunk_size`` bytes.

    Each returned item is the payload of one envelope sent with the fragment
    flag. The last chunk may be shorter; every chunk is non-empty.

    Raises:
        ValueError: ``payload`` fits one chunk (send it whole), needs more
            than ``MAX_FRAGMENTS`` fragments, is 4 GiB or more, or
            ``message_id`` is not an unsigned 64-bit integer.
    """
    total = len(payload)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    count = -(-total // chunk_size)
    if count < 2:
        raise ValueError("a payload that fits one datagram is sent whole")
    if count > MAX_FRAGMENTS or total >= 1 << 32:
        raise ValueError(f"a payload of {total} bytes needs too many fragments")
    crc = zlib.crc32(payload)
    view = memoryview(payload)
    pack = _FRAGMENT.pack
    try:
        return [
            pack(message_id, total, crc, index, count)
            + view[index * chunk_size : (index + 1) * chunk_size]
            for index in range(count)
        ]
    except struct.error:
        raise ValueError(f"message id {message_id} is not an unsigned 64-bit integer") from None


class _Partial:
    """A message some of whose fragments have arrived."""

    __slots__ = ("chunks", "charge", "count", "crc", "kind", "total")

    def __init__(self, kind: int, total: int, crc: int, count: int) -> None:
        self.kind = kind
        self.total = total
        self.crc = crc
        self.count = count
        self.chunks: dict[int, bytes] = {}
        self.charge = 0  # bytes charged to the bounds: PARTIAL_OVERHEAD + chunk bytes


class Reassembler:
    """Rebuilds messages from fragments, within fixed memory bounds."""

    def __init__(
        self,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        per_peer_bytes: int | None = None,
        total_bytes: int | None = None,
        stats: dict[str, int] | None = None,
    ) -> None:
        """Make an empty reassembler.

        Args:
            max_message: the largest message accepted; larger ones are dropped
                as ``oversize``.
            per_peer_bytes: most bytes of partial messages held per sender;
                default twice ``max_message`` (plus overhead).
            total_bytes: most bytes of partial messages held in all; default
                eight times ``max_message``.
            stats: a dict to keep the counters in (an endpoint's ``stats``);
                the ``FRAGMENT_STAT_KEYS`` are set to zero in it.

        Raises:
            ValueError: a bound too small to hold one largest message.
        """
        need = max_message + PARTIAL_OVERHEAD
        per_peer = 2 * need if per_peer_bytes is None else per_peer_bytes
        total = 8 * need if total_bytes is None else total_bytes
        if max_message < 1 or per_peer < need or total < per_peer:
            raise ValueError(
                "need max_message >= 1, per_peer_bytes >= max_message + PARTIAL_OVERHEAD "
                "and total_bytes >= per_peer_bytes"
            )
        self.max_message: Final = max_message
        self.per_peer_bytes: Final = per_peer
        self.total_bytes: Final = total
        # Oldest first: dicts keep insertion order.
        self._partials: dict[tuple[int, int], _Partial] = {}
        self._by_sender: dict[int, dict[int, _Partial]] = {}
        self._sender_bytes: dict[int, int] = {}
        self._held_bytes = 0
        self._recent: dict[int, deque[tuple[int, int]]] = {}
        if stats is None:
            stats = {}
        stats.update(dict.fromkeys(FRAGMENT_STAT_KEYS, 0))
        self.stats: dict[str, int] = stats
        """Per-fragment counters; see the module docstring."""

    @property
    def pending_bytes(self) -> int:
        """Bytes charged to partial messages now (chunks plus overhead)."""
        return self._held_bytes

    @property
    def pending_fragments(self) -> int:
        """Fragments held in partial messages now."""
        return sum(len(p.chunks) for p in self._partials.values())

    def pending_messages(self, sender_id: int | None = None) -> int:
        """Partial messages held now, from ``sender_id`` or from anyone."""
        if sender_id is None:
            return len(self._partials)
        return len(self._by_sender.get(sender_id, ()))

    def add(self, sender_id: int, kind: int, fragment: bytes) -> bytes | None:
        """Take one fragment payload (header + chunk); return the message it completes.

        Returns None while the message is incomplete or when the fragment is
        dropped (counted in ``stats``). Never raises for its input.
        """
        stats = self.stats
        stats["fragments_in"] += 1
        size = len(fragment)
        if size <= FRAGMENT_HEADER_SIZE:
            stats["dropped_fragment_malformed"] += 1
            return None
        message_id, total, crc, index, count = _FRAGMENT.unpack_from(fragment)
        chunk_size = size - FRAGMENT_HEADER_SIZE
        if not (index < count and 2 <= count <= total and chunk_size <= total):
            stats["dropped_fragment_malformed"] += 1
            return None
        if total > self.max_message:
            stats["dropped_fragment_oversize"] += 1
            return None
        key = (sender_id, message_id)
        partial = self._partials.get(key)
        if partial is not None and (
            partial.total != total
            or partial.crc != crc
            or partial.count != count
            or partial.kind != kind
        ):
            self._discard(key, "mismatch")
            partial = None
        if partial is None:
            recent = self._recent.get(sender_id)
            if recent is not None and (message_id, crc) in recent:
                stats["dropped_fragment_duplicate"] += 1
                return None
            partial = _Partial(kind, total, crc, count)
            self._partials[key] = partial
            self._by_sender.setdefault(sender_id, {})[message_id] = partial
            self._charge(sender_id, partial, PARTIAL_OVERHEAD)
        elif index in partial.chunks:
            stats["dropped_fragment_duplicate"] += 1
            return None
        chunk = fragment[FRAGMENT_HEADER_SIZE:]
        if partial.charge - PARTIAL_OVERHEAD + chunk_size > total:
            # More bytes than the message is long: fragments of two messages.
            stats["dropped_fragment_mismatch"] += 1
            self._discard(key, "mismatch")
            return None
        partial.chunks[index] = chunk
        self._charge(sender_id, partial, chunk_size)
        self._make_room(sender_id, key)
        if len(partial.chunks) < count:
            return None
        return self._complete(sender_id, message_id)

    # -- bookkeeping ---------------------------------------------------------------

    def _charge(self, sender_id: int, partial: _Partial, size: int) -> None:
        partial.charge += size
        self._sender_bytes[sender_id] = self._sender_bytes.get(sender_id, 0) + size
        self._held_bytes += size

    def _remove(self, key: tuple[int, int]) -> _Partial:
        sender_id, message_id = key
        partial = self._partials.pop(key)
        own = self._by_sender[sender_id]
        del own[message_id]
        if own:
            self._sender_bytes[sender_id] -= partial.charge
        else:
            del self._by_sender[sender_id]
            del self._sender_bytes[sender_id]
        self._held_bytes -= partial.charge
        return partial

    def _discard(self, key: tuple[int, int], reason: str) -> None:
        partial = self._remove(key)
        self.stats[f"dropped_fragment_{reason}"] += len(partial.chunks)

    def _make_room(self, sender_id: int, keep: tuple[int, int]) -> None:
        """Evict the oldest partials until both bounds hold again; never ``keep``."""
        own = self._by_sender[sender_id]
        while self._sender_bytes[sender_id] > self.per_peer_bytes:
            oldest = next(iter(own))
            if (sender_id, oldest) == keep:
                # Only possible when ``keep`` is not the oldest; look further.
                oldest = next(m for m in own if (sender_id, m) != keep)
            self._discard((sender_id, oldest), "evicted")
        while self._held_bytes > self.total_bytes:
            oldest_key = next(k for k in self._partials if k != keep)
            self._discard(oldest_key, "evicted")

    def _complete(self, sender_id: int, message_id: int) -> bytes | None:
        key = (sender_id, message_id)
        partial = self._remove(key)
        chunks = partial.chunks
        message = b"".join(chunks[i] for i in range(partial.count))
        if len(message) != partial.total or zlib.crc32(message) != partial.crc:
            self.stats["dropped_fragment_mismatch"] += len(chunks)
            return None
        self.stats["fragments_used"] += len(chunks)
        self.stats["reassembled"] += 1
        recent = self._recent.get(sender_id)
        if recent is None:
            if len(self._recent) >= RECENT_SENDERS:
                del self._recent[next(iter(self._recent))]
            recent = self._recent[sender_id] = deque(maxlen=RECENT)
        recent.append((message_id, partial.crc))
        return message
