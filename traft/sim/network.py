"""The simulated network: messages in flight, and the faults applied to them.

Theory of operation: every send puts ``(src, dst, msg)`` into a list of
messages in flight unless a partition blocks that direction. Whoever drives
the simulation picks which message is delivered next (reordering is choosing
any index, not just 0), drops or duplicates one. A partition is a set of
blocked directed links, so one-way partitions are just one direction of a
two-way one.

Each message also carries the virtual time at which it arrives: the send
time plus a delay drawn from ``delay_ms`` (``(0, 0)`` by default, which
draws nothing from the rng, so tests that deliver by index see the exact
same run as before delays existed). The simulator's run loop asks for the
messages that are due with :meth:`Network.take_due`; tests that drive the
network by hand keep using :meth:`Network.take` with any index.

Nothing here is random unless asked: ``rng`` is used only to draw delays.
"""

from __future__ import annotations

import random
from typing import Any


class Network:
    """Messages in flight between simulated servers.

    Attributes:
        in_flight: ``(src, dst, msg)`` in send order; deliver any index.
        due_ms: the arrival time of each message of ``in_flight`` (same order).
        blocked: directed links ``(src, dst)`` that lose every message.
        now_ms: the virtual time used to stamp sends (the driver sets it).
        delay_ms: inclusive range of one-way delays drawn per message.
    """

    def __init__(self, rng: random.Random, *, delay_ms: tuple[int, int] = (0, 0)) -> None:
        lo, hi = delay_ms
        if lo < 0 or hi < lo:
            raise ValueError(f"bad delay range {lo}..{hi}")
        self.rng = rng
        self.delay_ms = delay_ms
        self.now_ms = 0
        self.in_flight: list[tuple[int, int, Any]] = []
        self.due_ms: list[int] = []
        self.blocked: set[tuple[int, int]] = set()
        self.sent = 0
        self.delivered = 0
        self.dropped = 0
        self.duplicated = 0

    def _arrival(self, extra_ms: int = 0) -> int:
        lo, hi = self.delay_ms
        if hi == 0:
            return self.now_ms + extra_ms
        return self.now_ms + extra_ms + (lo if lo == hi else self.rng.randint(lo, hi))

    def send(self, src: int, dst: int, msg: Any, extra_ms: int = 0) -> None:
        """Put a message in flight, or lose it when the link is blocked.

        ``extra_ms`` delays the departure (the sender's fsync, for instance).
        """
        self.sent += 1
        if (src, dst) in self.blocked:
            self.dropped += 1
            return
        self.in_flight.append((src, dst, msg))
        self.due_ms.append(self._arrival(extra_ms))

    def take(self, i: int) -> tuple[int, int, Any]:
        """Remove and return the i-th message in flight, for delivery."""
        self.delivered += 1
        del self.due_ms[i]
        return self.in_flight.pop(i)

    def take_due(self, now_ms: int) -> list[tuple[int, int, int, Any]]:
        """Remove every message due at ``now_ms``; returns ``(due, src, dst, msg)``.

        The result is in arrival order (ties in send order). The caller
        delivers, drops or duplicates each one and counts it with
        :meth:`count_delivered` or :meth:`drop_taken`.
        """
        due = self.due_ms
        if not due:
            return []
        ready = []
        keep_msgs: list[tuple[int, int, Any]] = []
        keep_due: list[int] = []
        for t, m in zip(due, self.in_flight, strict=True):
            if t <= now_ms:
                ready.append((t, m[0], m[1], m[2]))
            else:
                keep_msgs.append(m)
                keep_due.append(t)
        if ready:
            self.in_flight = keep_msgs
            self.due_ms = keep_due
            ready.sort(key=_due_key)
        return ready

    def count_delivered(self) -> None:
        self.delivered += 1

    def drop_taken(self) -> None:
        self.dropped += 1

    def drop(self, i: int) -> None:
        """Lose the i-th message in flight."""
        self.dropped += 1
        del self.in_flight[i]
        del self.due_ms[i]

    def duplicate(self, i: int) -> None:
        """Put a second copy of the i-th message in flight (with its own delay)."""
        self.duplicated += 1
        self.in_flight.append(self.in_flight[i])
        self.due_ms.append(self._arrival())

    def resend(self, src: int, dst: int, msg: Any) -> None:
        """Put a copy of a message taken with :meth:`take_due` back in flight."""
        self.duplicated += 1
        self.in_flight.append((src, dst, msg))
        self.due_ms.append(self._arrival())

    def forget(self, node_id: int) -> None:
        """Drop everything in flight to a server that crashed."""
        before = len(self.in_flight)
        pairs = [
            (m, t) for m, t in zip(self.in_flight, self.due_ms, strict=True) if m[1] != node_id
        ]
        self.in_flight = [m for m, _ in pairs]
        self.due_ms = [t for _, t in pairs]
        self.dropped += before - len(self.in_flight)

    # -- partitions -----------------------------------------------------------------

    def block(self, src: int, dst: int) -> None:
        """Drop every later message from ``src`` to ``dst`` (one way)."""
        self.blocked.add((src, dst))

    def partition(self, side_a: set[int], side_b: set[int], *, one_way: bool = False) -> None:
        """Cut side_a from side_b; with ``one_way`` only messages a -> b are lost."""
        for a in sorted(side_a):
            for b in sorted(side_b):
                self.blocked.add((a, b))
                if not one_way:
                    self.blocked.add((b, a))

    def isolate(self, node_id: int, others: set[int]) -> None:
        self.partition({node_id}, others - {node_id})

    def heal(self) -> None:
        self.blocked.clear()


def _due_key(item: tuple[int, int, int, Any]) -> int:
    return item[0]
