"""A tiny lossless network of cores for scenario tests of the core alone.

Every ``step`` lets ``step_ms`` pass on every server, then delivers messages
(instantly, in send order) until nothing moves; a cut link or an isolated
server drops them. Everything each server's Ready carried is recorded with
the virtual time, so a test can count leader changes and terms.
"""

from __future__ import annotations

from collections import deque

from traft.core import Event, LeaderChanged, Message, Raft, Role

from .helpers import make


class Net:
    def __init__(self, ids: tuple[int, ...] = (1, 2, 3), seed: int = 0, **config: object) -> None:
        self.rafts = {i: make(i, ids, seed=seed * 100 + i, **config) for i in ids}
        self.now_ms = 0
        self.isolated: set[int] = set()
        self.events: list[tuple[int, int, Event]] = []  # (time, server, event)
        self.sent: list[tuple[int, int, int, Message]] = []  # (time, from, to, message)

    def __getitem__(self, node_id: int) -> Raft:
        return self.rafts[node_id]

    def connected(self, a: int, b: int) -> bool:
        return a not in self.isolated and b not in self.isolated

    def pump(self) -> None:
        queue: deque[tuple[int, int, Message]] = deque()
        while True:
            for node_id in sorted(self.rafts):
                raft = self.rafts[node_id]
                if raft.has_ready():
                    rd = raft.ready()
                    for event in rd.events:
                        self.events.append((self.now_ms, node_id, event))
                    for to, msg in rd.messages:
                        self.sent.append((self.now_ms, node_id, to, msg))
                        queue.append((node_id, to, msg))
                    raft.advance(rd)
            if not queue:
                return
            while queue:
                src, dst, msg = queue.popleft()
                if dst in self.rafts and self.connected(src, dst):
                    self.rafts[dst].recv(src, msg)

    def step(self, step_ms: int = 10) -> None:
        self.now_ms += step_ms
        for node_id in sorted(self.rafts):
            self.rafts[node_id].periodic(step_ms)
        self.pump()

    def run(self, ms: int, step_ms: int = 10) -> None:
        for _ in range(ms // step_ms):
            self.step(step_ms)

    def leader(self) -> int | None:
        """The leader of the highest term that has one, if any."""
        leaders = [r for r in self.rafts.values() if r.role is Role.LEADER]
        return max(leaders, key=lambda r: r.term).id if leaders else None

    def elect(self, limit_ms: int = 10_000) -> int:
        """Run until there is a leader whose no-op is committed; return its id."""
        for _ in range(limit_ms // 10):
            self.step()
            lead = self.leader()
            if lead is not None:
                raft = self.rafts[lead]
                if raft.log.term_at(raft.commit_index) == raft.term:
                    return lead
        raise AssertionError("no leader elected")

    def leaders_elected(self, since_ms: int = 0) -> list[tuple[int, int]]:
        """(term, leader) of every server's becoming leader since ``since_ms``."""
        return [
            (e.term, node_id)
            for t, node_id, e in self.events
            if t >= since_ms and isinstance(e, LeaderChanged) and e.leader_id == node_id
        ]

    def max_term(self) -> int:
        return max(r.term for r in self.rafts.values())
