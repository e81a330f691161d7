"""Log entries and the client's view of a proposal.

An :class:`Entry` is immutable and shared freely: the same object travels
from the leader's log into messages and into followers' logs in the
simulator. Membership entries carry the node id in their first eight bytes
(see :func:`membership_data`); this replaces the seed's ``log_get_node_id``
callback.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

import attrs


class EntryType(enum.IntEnum):
    """What an entry does when appended and applied (the seed's RAFT_LOGTYPE_*)."""

    NORMAL = 0
    NO_OP = 1
    ADD_NONVOTING_NODE = 2
    ADD_NODE = 3
    REMOVE_NODE = 4

    @property
    def is_membership(self) -> bool:
        return self >= EntryType.ADD_NONVOTING_NODE


class Entry(NamedTuple):
    """One log entry: ``term``, ``index``, a proposal ``id``, ``type`` and opaque ``data``.

    A named tuple rather than an attrs class: entries are created per client
    proposal on the hot path, and a tuple is built twice as fast.
    """

    term: int
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    id: int
    type: EntryType
    data: bytes


class EntryStatus(enum.Enum):
    """Fate of a proposal (the seed's raft_msg_entry_response_committed)."""

    PENDING = "pending"
    COMMITTED = "committed"
    LOST = "lost"


@attrs.frozen(slots=True)
class EntryResponse:
    """Returned by ``recv_entry``: enough to ask later what became of the entry."""

    id: int
    term: int
    index: int


_NODE_ID = struct.Struct(">Q")


def membership_data(node_id: int, context: bytes = b"") -> bytes:
    """Encode the payload of a membership entry: the node id, then ``context``."""
    return _NODE_ID.pack(node_id) + context


def membership_change(entry: Entry) -> tuple[int, bytes]:
    """Decode a membership entry's payload into ``(node_id, context)``.

    Raises:
        ValueError: the entry is not a well-formed membership entry.
    """
    if not EntryType(entry.type).is_membership or len(entry.data) < _NODE_ID.size:
        raise ValueError(f"entry {entry.index} is not a membership entry")
    (node_id,) = _NODE_ID.unpack_from(entry.data)
    return node_id, entry.data[_NODE_ID.size :]
