"""Very old messages delivered again: a bounded archive of the run's messages.

Theory of operation. A network may deliver a message long after it was
sent: a packet stuck in a router queue, a connection's buffer flushed after
a partition heals, a retransmission from a sender that restarted. Duplicates
and reordering in :mod:`traft.sim.network` only move a message by a few
milliseconds; the bugs that stale input exposes (a response from an old
round lowering what the leader knows, a snapshot older than what the
receiver has committed, a vote from a past term) need messages from much
earlier in the run.

:class:`Archive` keeps a uniform sample of the messages delivered so far
(reservoir sampling, Vitter's algorithm R, over every ``every``-th delivered
message, so its cost per message is one counter), at most ``size`` of them,
and beside them a sample of every snapshot transfer (rare, and the one kind
of message whose staleness the receiver's driver and core must both judge).
:meth:`Archive.replay` puts a few of them back in flight, from their
original sender to their original receiver, as if the network had held
them all along; one replay in four is a snapshot, when there is one.
"""

from __future__ import annotations

import random
from typing import Any

from traft.sim.cluster import SnapshotTransfer
from traft.sim.network import Network

__all__ = ["Archive"]


class Archive:
    """A bounded, uniform sample of the delivered messages (see the module docstring).

    Args:
        rng: the archive's own random source.
        size: how many messages it keeps at most.
        every: one delivered message in ``every`` is offered to the sample.
    """

    def __init__(self, rng: random.Random, *, size: int = 256, every: int = 8) -> None:
        self.rng = rng
        self.size = size
        self.every = every
        self.messages: list[tuple[int, int, Any]] = []
        self.snapshots: list[tuple[int, int, Any]] = []
        self.replayed = 0
        self._seen = 0
        self._snapshots_seen = 0
        self._skip = every

    def offer(self, src: int, dst: int, msg: Any) -> None:
        """Consider one delivered message for the sample."""
        if type(msg) is SnapshotTransfer:
            self._snapshots_seen += 1
            self._keep(self.snapshots, self._snapshots_seen, 16, (src, dst, msg))
            return
        self._skip -= 1
        if self._skip:
            return
        self._skip = self.every
        self._seen += 1
        self._keep(self.messages, self._seen, self.size, (src, dst, msg))

    def _keep(self, kept: list[tuple[int, int, Any]], seen: int, size: int, item: Any) -> None:
        # Algorithm R: the seen-th item replaces a random one with chance size/seen.
        if len(kept) < size:
            kept.append(item)
            return
        slot = self.rng.randrange(seen)
        if slot < size:
            kept[slot] = item

    def replay(self, network: Network, count: int) -> list[tuple[int, int, Any]]:
        """Put up to ``count`` archived messages back in flight; returns them."""
        rng = self.rng
        kept = self.messages
        if self.snapshots and (not kept or rng.random() < 0.25):
            kept = self.snapshots
        if not kept:
            return []
        chosen = [kept[rng.randrange(len(kept))] for _ in range(count)]
        for src, dst, msg in chosen:
            network.resend(src, dst, msg)
        self.replayed += len(chosen)
        return chosen
