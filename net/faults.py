"""Fault injection: what an unreliable network does to datagrams, on demand.

Theory of operation
-------------------
``FaultInjector`` is policy and state, without I/O or trio: an endpoint hands
it each outgoing datagram with ``route(src, dst, datagram)`` and gets back the
copies to put on the wire, in order, each with a delay in milliseconds. An
empty list means the datagram was lost. The decisions, in order:

1. partition: ``(src, dst)`` is blocked -> lost (counted ``partitioned``);
2. drop: with probability ``drop`` -> lost (``dropped``);
3. duplicate: with probability ``dupe`` -> two copies (``duplicated``);
4. reorder: with probability ``reorder``, and when the link holds nothing
   yet, the datagram is held back (``reordered``) and released right after
   the next datagram that gets through on the same link, so that one overtakes
   it. A link holds at most one datagram; one held on a link that falls silent
   stays held until traffic resumes, which is a long delay, not a loss;
5. delay: each copy gets a delay drawn uniformly from ``delay_ms`` (lo, hi).

Every draw comes from the injected ``random.Random``, in a fixed order, so a
seeded injector makes the same decisions for the same sequence of datagrams.
Settings change at run time (``set``, ``partition``, ``heal``, ``reset``);
each call takes effect for the next datagram.

``DelayLine`` is the trio half: a timer queue that an endpoint's ``serve``
task runs, delivering delayed copies when they are due (under the autojump
clock in tests, instantly in virtual time). Copies whose delay is zero never
enter it; the endpoint writes them at once.

Partitions name peers by node id. A two-way partition between groups A and B
blocks A->B and B->A; a one-way partition blocks only A->B. ``heal`` lifts
them all. Endpoints that own a socket also apply ``blocked`` to what they
receive, so one process can cut itself off from its peers on both paths.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterable
from typing import Final

import trio

__all__ = ["DelayLine", "FaultInjector", "FAULT_COUNTERS"]

FAULT_COUNTERS: Final = ("routed", "partitioned", "dropped", "duplicated", "reordered", "delayed")


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], not {value!r}")
    return float(value)


class FaultInjector:
    """Decides the fate of each datagram from run-time settings and a seeded rng."""

    def __init__(self, rng: random.Random) -> None:
        """Make an injector that lets everything through until told otherwise.

        Args:
            rng: the only source of randomness; seed it for reproducible runs.
        """
        self._rng = rng
        self._drop = 0.0
        self._dupe = 0.0
        self._reorder = 0.0
        self._delay_ms: tuple[float, float] = (0.0, 0.0)
        self._blocked: set[tuple[int, int]] = set()
        self._held: dict[tuple[int, int], bytes] = {}
        self.stats: dict[str, int] = dict.fromkeys(FAULT_COUNTERS, 0)
        """Counters: ``routed`` (datagrams offered), then one per fault applied."""

    # -- settings ---------------------------------------------------------

    def set(
        self,
        *,
        drop: float | None = None,
        dupe: float | None = None,
        reorder: float | None = None,
        delay_ms: tuple[float, float] | None = None,
    ) -> None:
        """Change the named settings; those not named keep their value.

        Args:
            drop: probability that a datagram is lost.
            dupe: probability that a datagram is delivered twice.
            reorder: probability that a datagram is held back and overtaken.
            delay_ms: (lo, hi) milliseconds; each copy is delayed by a uniform
                draw from that range. (0, 0) means no delay.

        Raises:
            ValueError: a probability outside [0, 1] or a bad delay range; no
                setting is changed then.
        """
        new_drop = self._drop if drop is None else _probability("drop", drop)
        new_dupe = self._dupe if dupe is None else _probability("dupe", dupe)
        new_reorder = self._reorder if reorder is None else _probability("reorder", reorder)
        new_delay = self._delay_ms
        if delay_ms is not None:
            lo, hi = (float(v) for v in delay_ms)
            if not (math.isfinite(hi) and 0.0 <= lo <= hi):
                raise ValueError(f"delay_ms must be (lo, hi) with 0 <= lo <= hi, not {delay_ms!r}")
            new_delay = (lo, hi)
        self._drop, self._dupe, self._reorder = new_drop, new_dupe, new_reorder
        self._delay_ms = new_delay

    def settings(self) -> dict[str, object]:
        """A snapshot of the settings and partitions, for status pages and logs."""
        return {
            "drop": self._drop,
            "dupe": self._dupe,
            "reorder": self._reorder,
            "delay_ms": self._delay_ms,
            "blocked": sorted(self._blocked),
        }

    def partition(self, a: Iterable[int], b: Iterable[int], *, one_way: bool = False) -> None:
        """Cut the links between peer groups ``a`` and ``b``.

        Two-way by default (a->b and b->a); with ``one_way=True`` only a->b is
        cut, so b still reaches a. Partitions add up until ``heal``.

        Raises:
            ValueError: the groups overlap.
        """
        group_a, group_b = frozenset(a), frozenset(b)
        if group_a & group_b:
            raise ValueError(f"partition groups overlap: {sorted(group_a & group_b)}")
        for src in group_a:
            for dst in group_b:
                self._blocked.add((src, dst))
                if not one_way:
                    self._blocked.add((dst, src))

    def heal(self) -> None:
        """Lift every partition. Probabilities and delays are left as they are."""
        self._blocked.clear()

    def reset(self) -> None:
        """Back to a perfect network: no faults, no partitions, nothing held."""
        self._drop = self._dupe = self._reorder = 0.0
        self._delay_ms = (0.0, 0.0)
        self._blocked.clear()
        self._held.clear()

    def blocked(self, src: int, dst: int) -> bool:
        """Whether a partition currently cuts the link ``src`` -> ``dst``."""
        return (src, dst) in self._blocked

    # -- the decision -----------------------------------------------------

    def route(self, src: int, dst: int, datagram: bytes) -> list[tuple[float, bytes]]:
        """Decide what happens to one datagram sent from ``src`` to ``dst``.

        Returns:
            The copies to deliver, in delivery order, each as
            ``(delay_ms, datagram)``; empty when the datagram is lost or held.
        """
        stats = self.stats
        stats["routed"] += 1
        link = (src, dst)
        if link in self._blocked:
            stats["partitioned"] += 1
            return []
        rng = self._rng
        if self._drop and rng.random() < self._drop:
            stats["dropped"] += 1
            return []
        copies = [datagram]
        if self._dupe and rng.random() < self._dupe:
            stats["duplicated"] += 1
            copies.append(datagram)
        held = self._held.pop(link, None)
        if held is None and self._reorder and rng.random() < self._reorder:
            stats["reordered"] += 1
            # Hold one copy; a duplicate, if any, goes now and the held one later.
            self._held[link] = copies.pop()
            if not copies:
                return []
        if held is not None:
            copies.append(held)
        lo, hi = self._delay_ms
        if hi == 0.0:
            return [(0.0, copy) for copy in copies]
        stats["delayed"] += len(copies)
        return [(rng.uniform(lo, hi), copy) for copy in copies]


class DelayLine:
    """A trio timer queue: calls ``deliver(datagram)`` when each one is due.

    ``run`` must be running (as a task of the endpoint's ``serve``) for
    delayed datagrams to go out; whatever is queued when it stops is lost,
    as it would be in a crashed process.
    """

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Callable[[bytes], None], bytes]] = []
        self._order = itertools.count()
        self._wakeup = trio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def schedule(self, delay_ms: float, deliver: Callable[[bytes], None], datagram: bytes) -> None:
        """Queue ``deliver(datagram)`` for ``delay_ms`` from now (trio's clock).

        Must be called from inside trio. Ties go out in scheduling order.
        """
        due = trio.current_time() + delay_ms / 1000.0
        heapq.heappush(self._queue, (due, next(self._order), deliver, datagram))
        if self._queue[0][0] == due:
            self._wakeup.set()

    async def run(self) -> None:
        """Deliver queued datagrams when due, until cancelled."""
        queue = self._queue
        while True:
            if queue:
                with trio.move_on_at(queue[0][0]):
                    await self._wakeup.wait()
            else:
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            now = trio.current_time()
            while queue and queue[0][0] <= now:
                _, _, deliver, datagram = heapq.heappop(queue)
                deliver(datagram)
