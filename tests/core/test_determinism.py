"""Same inputs and seed give the same Ready values, bit for bit."""

from __future__ import annotations

import random

from traft.core import Ready
from traft.sim import Cluster


def _run(seed: int) -> list[tuple[int, Ready]]:
    c = Cluster([1, 2, 3, 4, 5], seed=seed)
    trace: list[tuple[int, Ready]] = []
    c.observers.append(lambda server, rd: trace.append((server.id, rd)))
    chaos = random.Random(seed)
    for step in range(3000):
        net = c.network
        roll = chaos.random()
        if roll < 0.3:
            c.tick(chaos.choice([10, 30, 100]))
        elif roll < 0.35 and net.in_flight:
            net.drop(chaos.randrange(len(net.in_flight)))
        elif roll < 0.4 and net.in_flight:
            net.duplicate(chaos.randrange(len(net.in_flight)))
        elif roll < 0.45 and c.leader() is not None:
            c.propose(b"p%d" % step)
        elif net.in_flight:
            c.deliver(chaos.randrange(len(net.in_flight)))
    return trace


def test_same_seed_same_ready_sequence() -> None:
    first = _run(1234)
    second = _run(1234)
    assert len(first) > 1000
    assert first == second


def test_different_seed_different_run() -> None:
    assert _run(1) != _run(2)
