"""Tunable settings of one Raft server.

Times are in milliseconds of whatever clock drives :meth:`Raft.periodic`; the
core never reads a clock itself.
"""

from __future__ import annotations

import attrs


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen(kw_only=True)
class Config:
    """Settings of a :class:`~traft.core.raft.Raft` server.

    Attributes:
        election_timeout_ms: T; each election timeout is drawn from [T, 2T) (§5.2)
            with the server's rng. Servers whose rngs are seeded alike draw
            the same timeouts and split every vote: give each its own seed
            (see :class:`~traft.core.raft.Raft`).
        request_timeout_ms: heartbeat interval of a leader; keep it well below T.
        max_entries_per_message: cap on entries in one AppendEntries.
        max_bytes_per_message: cap on entry bytes in one AppendEntries, each
            entry counting ``len(data) + entry_overhead_bytes`` (at least one
            entry is always sent).
        entry_overhead_bytes: the driver's per-entry framing cost on the wire.
        max_inflight_entries: how far ahead of a follower's acknowledged index
            a leader pipelines entries before waiting (flow control).
        check_quorum: a leader that has not heard from a majority within an
            election timeout steps down, and a follower that heard from a
            leader within the last election timeout ignores vote requests
            (thesis §6.2 and §4.2.3).
        snapshot_resend_ms: how long a leader waits for a follower to load a
            snapshot before asking the driver to send it again.
    """

    election_timeout_ms: int = attrs.field(default=1000, validator=_positive)
    request_timeout_ms: int = attrs.field(default=200, validator=_positive)
    max_entries_per_message: int = attrs.field(default=4096, validator=_positive)
    max_bytes_per_message: int = attrs.field(default=1 << 20, validator=_positive)
    entry_overhead_bytes: int = 0
    max_inflight_entries: int = attrs.field(default=1 << 16, validator=_positive)
    check_quorum: bool = True
    snapshot_resend_ms: int = attrs.field(default=2000, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.request_timeout_ms >= self.election_timeout_ms:
            raise ValueError(
                "request_timeout_ms must be below election_timeout_ms "
                f"({self.request_timeout_ms} >= {self.election_timeout_ms})"
            )
