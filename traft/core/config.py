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
        pre_vote: a server whose election timer fires first asks a majority
            whether it could win (a PreVote round at term + 1) and starts a
            real election only if it could (thesis §9.6), so a server cut off
            from the cluster does not raise the term and depose the leader
            when it comes back. The rules are in :mod:`traft.core.election`.
        lease_reads: the leader answers ``read_index`` at once, without a
            heartbeat round, while it holds a lease (thesis §6.4.1). Requires
            ``check_quorum`` (voters ignore candidates while they hear from a
            leader, which is what makes the lease hold).
        lease_drift_ms: the clock-drift bound of lease reads. The lease runs
            for ``election_timeout_ms - lease_drift_ms`` (must be positive)
            from the moment the leader *sent* the heartbeat round a majority
            has answered, measured in this server's own ``periodic`` time.

            The assumption: while one server's clock (whatever drives
            ``periodic``) measures ``election_timeout_ms``, no other
            server's measures less than ``election_timeout_ms -
            lease_drift_ms``, and no process pause is longer than the
            margin. A follower that answered a heartbeat refuses votes for
            an election timeout on its own clock, so no new leader can be
            elected before the lease runs out on the leader's clock. Break
            the assumption (a leader process stopped by SIGSTOP for longer
            than the lease and resumed without having run ``periodic``, a
            clock running slow) and a lease read may be stale: leave lease
            reads off unless the drivers' clocks keep it.
    """

    election_timeout_ms: int = attrs.field(default=1000, validator=_positive)
    request_timeout_ms: int = attrs.field(default=200, validator=_positive)
    max_entries_per_message: int = attrs.field(default=4096, validator=_positive)
    max_bytes_per_message: int = attrs.field(default=1 << 20, validator=_positive)
    entry_overhead_bytes: int = 0
    max_inflight_entries: int = attrs.field(default=1 << 16, validator=_positive)
    check_quorum: bool = True
    snapshot_resend_ms: int = attrs.field(default=2000, validator=_positive)
    pre_vote: bool = True
    lease_reads: bool = False
    lease_drift_ms: int = 100

    def __attrs_post_init__(self) -> None:
        if self.request_timeout_ms >= self.election_timeout_ms:
            raise ValueError(
                "request_timeout_ms must be below election_timeout_ms "
                f"({self.request_timeout_ms} >= {self.election_timeout_ms})"
            )
        if self.lease_drift_ms < 0:
            raise ValueError(f"lease_drift_ms must not be negative, got {self.lease_drift_ms}")
        if self.lease_reads:
            if not self.check_quorum:
                raise ValueError("lease_reads requires check_quorum")
            if self.lease_ms <= 0:
                raise ValueError(
                    "lease_reads needs election_timeout_ms > lease_drift_ms "
                    f"({self.election_timeout_ms} <= {self.lease_drift_ms})"
                )

    @property
    def lease_ms(self) -> int:
        """How long a lease lasts: ``election_timeout_ms - lease_drift_ms``."""
        return self.election_timeout_ms - self.lease_drift_ms
