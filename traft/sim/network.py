"""The simulated network: messages in flight, and the faults applied to them.

Theory of operation: every send puts ``(src, dst, msg)`` into a list of
messages in flight unless a partition blocks that direction. Whoever drives
the simulation picks which message is delivered next (reordering is choosing
any index, not just 0), drops or duplicates one. A partition is a set of
blocked directed links, so one-way partitions are just one direction of a
two-way one. Nothing here is random unless the caller asks: ``rng`` is used
only by the helpers that pick an index.
"""

from __future__ import annotations

import random
from typing import Any


class Network:
    """Messages in flight between simulated servers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.in_flight: list[tuple[int, int, Any]] = []
        self.blocked: set[tuple[int, int]] = set()
        self.sent = 0
        self.delivered = 0
        self.dropped = 0
        self.duplicated = 0

    def send(self, src: int, dst: int, msg: Any) -> None:
        self.sent += 1
        if (src, dst) in self.blocked:
            self.dropped += 1
            return
        self.in_flight.append((src, dst, msg))

    def take(self, i: int) -> tuple[int, int, Any]:
        """Remove and return the i-th message in flight, for delivery."""
        self.delivered += 1
        return self.in_flight.pop(i)

    def drop(self, i: int) -> None:
        self.dropped += 1
        del self.in_flight[i]

    def duplicate(self, i: int) -> None:
        self.duplicated += 1
        self.in_flight.append(self.in_flight[i])

    def forget(self, node_id: int) -> None:
        """Drop everything in flight to a server that crashed."""
        before = len(self.in_flight)
        self.in_flight = [m for m in self.in_flight if m[1] != node_id]
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
