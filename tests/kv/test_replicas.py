"""A Hypothesis state machine: replicas fed the same log stay equal, whatever
mix of applies, snapshot installs, restarts and client retries happens."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.kv.test_state import ops
from traft.kv.commands import Command, encode_command
from traft.kv.state import KVStore

RETAIN = 25


class Replicas(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[int, bytes]] = []  # the committed log: (index, command)
        self.index = 0
        self.replicas = [KVStore(retain_entries=RETAIN) for _ in range(3)]
        self.position = [0, 0, 0]  # how much of the log each replica applied
        self.snapshots: list[tuple[int, list[bytes]]] = []  # (log position, chunks)
        self.sent: list[Command] = []

    @rule(op=ops, session=st.none() | st.integers(0, 8).map(str))
    def propose(self, op: object, session: str | None) -> None:
        command = Command(op=op, session=session)  # type: ignore[arg-type]
        self.sent.append(command)
        self._append(command)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """A client retries an earlier write (same session, same operation)."""
        self._append(data.draw(st.sampled_from(self.sent)))

    @rule(gap=st.integers(1, 3))
    def other_entries(self, gap: int) -> None:
        """No-ops and membership entries the state machine never sees."""
        self.index += gap

    def _append(self, command: Command) -> None:
        self.index += 1
        self.log.append((self.index, encode_command(command)))

    @rule(r=st.integers(0, 2), n=st.integers(1, 10))
    def apply(self, r: int, n: int) -> None:
        for index, data in self.log[self.position[r] : self.position[r] + n]:
            self.replicas[r].apply(index, data)
            self.position[r] += 1
        if r == 0:
            self.snapshots.append((self.position[0], list(self.replicas[0].snapshot())))

    @precondition(lambda self: bool(self.snapshots))
    @rule(r=st.integers(1, 2), data=st.data())
    def install_snapshot(self, r: int, data: st.DataObject) -> None:
        position, chunks = data.draw(st.sampled_from(self.snapshots))
        if position > self.position[r]:  # a snapshot never moves a replica back
            self.replicas[r].restore(iter(chunks))
            self.position[r] = position

    @rule(r=st.integers(0, 2))
    def restart(self, r: int) -> None:
        """Crash and restart: rebuild from the latest snapshot at or below the position."""
        fresh = KVStore(retain_entries=RETAIN)
        older = [(p, c) for p, c in self.snapshots if p <= self.position[r]]
        self.position[r] = 0
        if older:
            position, chunks = max(older, key=lambda s: s[0])
            fresh.restore(iter(chunks))
            self.position[r] = position
        self.replicas[r] = fresh

    @invariant()
    def equal_at_equal_positions(self) -> None:
        by_position: dict[int, str] = {}
        for r, replica in enumerate(self.replicas):
            digest = replica.digest()
            assert by_position.setdefault(self.position[r], digest) == digest

    @invariant()
    def replay_from_scratch_agrees(self) -> None:
        scratch = KVStore(retain_entries=RETAIN)
        for index, data in self.log[: self.position[0]]:
            scratch.apply(index, data)
        assert scratch.digest() == self.replicas[0].digest()


TestReplicas = Replicas.TestCase
