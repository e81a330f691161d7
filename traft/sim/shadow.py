"""What the invariant checker remembers about each server.

:class:`ShadowLog` is a server's log as its driver persisted it, rebuilt
only from the Ready values it made durable and the snapshots it stored,
never from the core or the simulated disk; :class:`Track` holds it with the
term, vote and commit index last seen in memory. :func:`recover_shadow` is
what a sound recovery makes of a shadow log after a restart, and
:func:`compare_logs` holds a server's log against its shadow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traft.core import Entry, HardState
from traft.sim.violations import InvariantViolation

if TYPE_CHECKING:
    from traft.sim.cluster import SimServer

__all__ = ["ShadowLog", "Track", "compare_logs", "recover_shadow"]


class ShadowLog:
    """A server's log as the driver persisted it, rebuilt from Ready values only."""

    __slots__ = ("base_index", "base_term", "entries", "snapshot", "hard_state")

    def __init__(self) -> None:
        self.base_index = 0
        self.base_term = 0
        self.entries: list[Entry] = []
        self.snapshot: tuple[int, int] | None = None
        self.hard_state = HardState(0, None)

    @property
    def last_index(self) -> int:
        return self.base_index + len(self.entries)

    def term_at(self, index: int) -> int | None:
        offset = index - self.base_index
        if offset == 0:
            return self.base_term
        if 0 < offset <= len(self.entries):
            return self.entries[offset - 1].term
        return None

    def get(self, index: int) -> Entry | None:
        offset = index - self.base_index - 1
        if 0 <= offset < len(self.entries):
            return self.entries[offset]
        return None


class Track:
    """What the checker remembers about one server."""

    __slots__ = (
        "shadow",
        "term",
        "voted_for",
        "commit",
        "dirty_from",
        "led",
        "changes",
        "config_due",
        "matches",
    )

    def __init__(self) -> None:
        self.shadow = ShadowLog()
        self.term = 0
        self.voted_for: int | None = None
        self.commit = 0
        self.dirty_from: int | None = 1
        self.led = 0  # the last term in which leader completeness was checked
        self.changes = 0
        # A membership entry was appended or popped: compare the configuration.
        self.config_due = False
        # As leader: its term, and each follower's Progress and match index seen.
        self.matches: tuple[int, dict[int, tuple[object, int]]] = (-1, {})


def recover_shadow(shadow: ShadowLog) -> None:
    """What a sound recovery makes of the persisted log: the snapshot is
    the base; the entries after it stay when the log agrees with it there
    (§7), and go when it holds another entry at the snapshot's index."""
    snap = shadow.snapshot
    if snap is None:
        return
    index, term = snap
    held = shadow.term_at(index)
    keep = shadow.entries[index - shadow.base_index :] if shadow.last_index > index else []
    if held is not None and held >= 0 and held != term:
        keep = []
    shadow.entries = keep
    shadow.base_index = index
    shadow.base_term = term


def compare_logs(server: SimServer, track: Track, start: int, name: str = "log_accuracy") -> None:
    """Raise ``name`` unless ``server``'s log equals its shadow log from ``start`` on
    (and has the same ends and base term)."""
    shadow = track.shadow
    log = server.raft.log
    if (log.base_index, log.last_index) != (shadow.base_index, shadow.last_index) or (
        shadow.base_term >= 0 and log.base_term != shadow.base_term
    ):
        raise InvariantViolation(
            name,
            f"server {server.id}: log {log.base_index}..{log.last_index} "
            f"(base term {log.base_term}), persisted {shadow.base_index}..{shadow.last_index} "
            f"(base term {shadow.base_term})",
        )
    lo = max(start, shadow.base_index + 1)
    mine = log.slice(lo, log.last_index + 1)
    theirs = shadow.entries[lo - shadow.base_index - 1 :]
    if mine != theirs:
        for a, b in zip(mine, theirs, strict=True):
            if a != b:
                raise InvariantViolation(
                    name,
                    f"server {server.id}: entry {a.index} is {a}, persisted {b}",
                )
