"""The wire codec: Raft messages to bytes and back (cattrs + msgpack).

Theory of operation: every message is a frozen attrs class; on the wire it
is a two-element msgpack array ``[tag, fields]`` where ``tag`` is a short
string from :data:`TAGS` (an explicit table, so renaming a class never
changes the protocol) and ``fields`` is the map cattrs makes of the class.
One private converter does the work; it is strict: an int field must hold an
int (not a float, string or bool), bytes must be bytes, unknown keys are
refused. Entries, the hot path, travel as flat arrays
``[term, index, id, type, data]`` and are decoded by a tight loop instead of
per-field dispatch.

Compatibility: tags are never renamed or reused. ``RequestVote`` gained
``leader_transfer`` (leadership transfer, thesis §3.10); it is left out of
the map when False, so such requests encode byte for byte as before. Pre-vote
(``pv``/``pvr``), TimeoutNow (``tn``) and forwarded reads (``ri``/``rir``)
are new tags, which an older decoder drops as malformed.

Validation happens here, at the edge, not in the core: indexes and terms are
non-negative and below 2**63, entries are contiguous after
``prev_log_index`` with non-decreasing terms no greater than the message's.
Anything that fails becomes one :class:`MalformedMessage`.

Sizes: :class:`Budget` owns the byte arithmetic of messages (the largest
message net carries, the largest client command, the entry bytes of one
AppendEntries, a snapshot chunk); the node, the key-value service and the
simulator ask it instead of subtracting margins of their own.
"""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
import msgpack
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.preconf.msgpack import make_converter

import net
from traft.core import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    PreVote,
    PreVoteResponse,
    ReadIndex,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from traft.strict import register_strict_hooks

_MAX = 1 << 63

# Bytes of msgpack framing per entry in an AppendEntries (tag, term, index,
# id, type and the data's length), counted with the entry's data.
ENTRY_OVERHEAD = 48
# Room an AppendEntries keeps for its own fields beside its entries.
APPEND_HEADROOM = 1024
# Room a command leaves in a message: one entry of the largest command still
# fits one AppendEntries, fields and framing included.
COMMAND_HEADROOM = 2048
# Room a snapshot chunk keeps for its fields beside its data and membership.
CHUNK_HEADROOM = 512


@attrs.frozen(kw_only=True)
class Budget:
    """The byte arithmetic of one node's messages, derived from what net carries.

    Everyone asks this instead of computing margins: the node (the command
    check, the core's AppendEntries budget, snapshot chunks) and the
    key-value service (its 413 limit). Two figures come from net:
    ``max_payload``, what one datagram carries after net's framing, which
    bounds the messages sent often (AppendEntries batches, snapshot chunks),
    and ``max_message``, the largest message net sends at all (larger than
    a datagram where net splits messages into fragments), which bounds a
    single command. Should net carry more, every figure here follows.

    Args:
        max_payload: the payload of one datagram (net's ``max_payload``).
        max_message: the largest message (default ``max_payload``).
        max_command: the largest client command; default, and at most,
            ``max_message - COMMAND_HEADROOM`` so that an entry holding it
            fits one AppendEntries.

    Raises:
        ValueError: ``max_message`` is below ``max_payload``, or
            ``max_command`` is not positive or does not fit a message.
    """

    max_payload: int
    max_message: int = attrs.field()
    max_command: int = attrs.field()

    @max_message.default
    def _default_max_message(self) -> int:
        return self.max_payload

    @max_message.validator
    def _check_max_message(self, _: attrs.Attribute[int], value: int) -> None:
        if value < self.max_payload:
            raise ValueError(f"max_message {value} is below one datagram's {self.max_payload}")

    @max_command.default
    def _default_max_command(self) -> int:
        return self.command_limit

    @max_command.validator
    def _check_max_command(self, _: attrs.Attribute[int], value: int) -> None:
        if not 0 < value <= self.command_limit:
            raise ValueError(
                f"max_command must be in 1..{self.command_limit} "
                f"for messages of {self.max_message} bytes"
            )

    @classmethod
    def for_endpoint(
        cls, endpoint: net.DatagramEndpoint, *, max_command: int | None = None
    ) -> Budget:
        """The budget of messages sent through ``endpoint``; ``max_command``
        (None: all a message holds) is cut to what a message holds."""
        # net fragments a message longer than one datagram: the largest
        # message is the endpoint's max_message, not one datagram's payload.
        return cls._make(endpoint.max_payload, endpoint.max_message, max_command)

    @classmethod
    def for_datagram(
        cls,
        max_datagram: int,
        *,
        authenticated: bool,
        max_message: int = net.DEFAULT_MAX_MESSAGE,
        max_command: int | None = None,
    ) -> Budget:
        """The budget of an endpoint that will send datagrams of ``max_datagram``
        bytes, with an authentication tag when ``authenticated`` (net's envelope
        decides the framing), and messages of up to ``max_message`` bytes
        (fragmented); ``max_command`` as for :meth:`for_endpoint`."""
        # Only the key's presence changes the envelope's size, not its bytes.
        codec = net.EnvelopeCodec(0, key=b"k" if authenticated else None, max_datagram=max_datagram)
        return cls._make(codec.max_payload, max(max_message, codec.max_payload), max_command)

    @staticmethod
    def message_size_for(max_command: int) -> int:
        """The ``max_message`` an endpoint needs so that a command of
        ``max_command`` bytes fits one AppendEntries: net's default, or more."""
        return max(net.DEFAULT_MAX_MESSAGE, max_command + COMMAND_HEADROOM)

    @classmethod
    def _make(cls, max_payload: int, max_message: int, max_command: int | None) -> Budget:
        limit = cls(max_payload=max_payload, max_message=max_message).max_command
        return cls(
            max_payload=max_payload,
            max_message=max_message,
            max_command=limit if max_command is None else min(max_command, limit),
        )

    @property
    def command_limit(self) -> int:
        """The largest command a message of ``max_message`` bytes can carry."""
        return max(self.max_message - COMMAND_HEADROOM, 1)

    @property
    def append_bytes(self) -> int:
        """Entry bytes (data plus ``entry_overhead`` each) one AppendEntries
        carries: a batch fits one datagram (an entry longer than that goes
        alone, as the core always sends at least one)."""
        return max(self.max_payload - APPEND_HEADROOM, APPEND_HEADROOM)

    @property
    def entry_overhead(self) -> int:
        """Framing bytes per entry in an AppendEntries."""
        return ENTRY_OVERHEAD

    def snapshot_chunk(self, membership: bytes) -> int:
        """Data bytes per :class:`SnapshotChunk` of a snapshot with ``membership``
        (a chunk fits one datagram)."""
        return max(self.max_payload - len(membership) - CHUNK_HEADROOM, CHUNK_HEADROOM)

    def check_command(self, command: bytes) -> None:
        """The one check of a client command's size.

        Raises:
            ValueError: the command is longer than ``max_command``.
        """
        if len(command) > self.max_command:
            raise ValueError(
                f"command of {len(command)} bytes exceeds the limit of {self.max_command}"
            )


class MalformedMessage(Exception):
    """A datagram's payload is not a valid traft message."""


@attrs.frozen(kw_only=True)
class SnapshotChunk:
    """One piece of a snapshot, sent by a leader to a follower that needs it.

    ``offset`` and ``total`` are byte positions in the snapshot's data;
    ``checksum`` is the SHA-256 of the whole data, checked before install.
    """

    term: int
    leader_id: int
    index: int
    snapshot_term: int
    membership: bytes
    offset: int
    total: int
    checksum: bytes
    data: bytes


@attrs.frozen(kw_only=True)
class SnapshotAck:
    """The follower has the first ``received`` bytes of snapshot ``index``."""

    term: int
    index: int
    received: int
    done: bool


WireMessage = (
    RequestVote
    | RequestVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | SnapshotChunk
    | SnapshotAck
    | PreVote
    | PreVoteResponse
    | TimeoutNow
    | ReadIndex
    | ReadIndexResponse
)

TAGS: dict[str, type[Any]] = {
    "rv": RequestVote,
    "rvr": RequestVoteResponse,
    "ae": AppendEntries,
    "aer": AppendEntriesResponse,
    "sc": SnapshotChunk,
    "sa": SnapshotAck,
    "pv": PreVote,
    "pvr": PreVoteResponse,
    "tn": TimeoutNow,
    "ri": ReadIndex,
    "rir": ReadIndexResponse,
}
_TAG_OF = {cls: tag for tag, cls in TAGS.items()}
_ENTRY_TYPES = tuple(EntryType)
_ENTRIES = tuple[Entry, ...]

for _cls in TAGS.values():
    attrs.resolve_types(_cls)


def _structure_entries(value: Any, _: type) -> tuple[Entry, ...]:
    if type(value) is not list:
        raise MalformedMessage("entries must be an array")
    types = _ENTRY_TYPES
    n_types = len(types)
    new = tuple.__new__  # Entry(...) would add a Python-level __new__ call per entry
    out = []
    for item in value:
        if type(item) is not list or len(item) != 5:
            raise MalformedMessage("an entry must be an array of 5")
        term, index, id_, kind, data = item
        if (
            type(term) is not int
            or type(index) is not int
            or type(id_) is not int
            or type(kind) is not int
            or type(data) is not bytes
            or not 0 <= id_ < _MAX
            or not 0 <= kind < n_types
        ):
            raise MalformedMessage("an entry has a field of the wrong type")
        item[3] = types[kind]
        out.append(new(Entry, item))
    return tuple(out)


def _make_converter() -> cattrs.Converter:
    conv = make_converter(forbid_extra_keys=True)
    register_strict_hooks(conv, MalformedMessage)
    conv.register_structure_hook_func(lambda t: t == _ENTRIES, _structure_entries)
    conv.register_unstructure_hook_func(lambda t: t == _ENTRIES, lambda v: v)
    # A RequestVote without leader_transfer encodes exactly as before the
    # field existed, so older decoders still read ordinary vote requests.
    conv.register_unstructure_hook(
        RequestVote,
        make_dict_unstructure_fn(RequestVote, conv, leader_transfer=override(omit_if_default=True)),
    )
    return conv


_converter = _make_converter()
_unstructure = _converter.unstructure
_structure = _converter.structure
_packb = msgpack.packb
_unpackb = msgpack.unpackb


def encode(msg: WireMessage) -> bytes:
    """Encode a message for the wire."""
    return _packb((_TAG_OF[type(msg)], _unstructure(msg)))  # type: ignore[no-any-return]


def decode(data: bytes) -> WireMessage:
    """Decode and validate a message.

    Raises:
        MalformedMessage: the bytes are not a valid message; nothing else escapes.
    """
    try:
        obj = _unpackb(data, raw=False, strict_map_key=True)
        if type(obj) is not list or len(obj) != 2 or type(obj[1]) is not dict:
            raise MalformedMessage("not a [tag, fields] pair")
        cls = TAGS.get(obj[0]) if type(obj[0]) is str else None
        if cls is None:
            raise MalformedMessage(f"unknown message tag {obj[0]!r:.20}")
        msg: WireMessage = _structure(obj[1], cls)
    except MalformedMessage:
        raise
    except Exception as exc:  # msgpack and cattrs raise many kinds; all mean malformed
        raise MalformedMessage(f"{type(exc).__name__}: {exc!s:.200}") from None
    if isinstance(msg, AppendEntries):
        _check_entries(msg)
    return msg


def _check_entries(msg: AppendEntries) -> None:
    entries = msg.entries
    if not entries:
        return
    expected = msg.prev_log_index + 1
    term = entries[0].term
    if entries[0].index != expected or entries[-1].index != expected + len(entries) - 1:
        raise MalformedMessage("entries do not follow prev_log_index contiguously")
    if term < msg.prev_log_term or entries[-1].term > msg.term:
        raise MalformedMessage("entry terms out of range")
    for k, entry in enumerate(entries):
        if entry.index != expected + k or entry.term < term:
            raise MalformedMessage("entries are not contiguous with non-decreasing terms")
        term = entry.term
