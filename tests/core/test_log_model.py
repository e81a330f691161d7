"""The in-memory log against a plain list model (append, pop, poll, snapshot)."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from traft.core import Entry, EntryType
from traft.core.log import RaftLog


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.log = RaftLog()
        self.model: list[tuple[int, int]] = []  # (index, term) of every entry ever kept
        self.base = (0, 0)
        self.term = 1

    def _last(self) -> int:
        return self.model[-1][0] if self.model else self.base[0]

    @rule(n=st.integers(1, 5), bump=st.booleans())
    def append(self, n: int, bump: bool) -> None:
        if bump:
            self.term += 1
        start = self._last() + 1
        entries = [Entry(self.term, start + k, start + k, EntryType.NORMAL, b"") for k in range(n)]
        self.log.append(entries)
        self.model.extend((e.index, e.term) for e in entries)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def pop(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(self.model[0][0], self._last()))
        popped = self.log.truncate_from(index)
        keep = [m for m in self.model if m[0] < index]
        assert [(e.index, e.term) for e in popped] == self.model[len(keep) :]
        self.model = keep

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def poll(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(self.model[0][0], self._last()))
        term = dict(self.model)[index]
        self.log.compact_upto(index, term)
        self.model = [m for m in self.model if m[0] > index]
        self.base = (index, term)

    @rule(ahead=st.integers(0, 5))
    def snapshot_beyond(self, ahead: int) -> None:
        index = self._last() + ahead
        self.log.compact_upto(index, self.term)
        if index > self.base[0]:
            self.model = [m for m in self.model if m[0] > index]
            self.base = (index, self.term)

    @invariant()
    def matches_model(self) -> None:
        log = self.log
        assert log.last_index == self._last()
        assert log.base_index == self.base[0]
        assert log.first_index == self.base[0] + 1
        assert log.term_at(self.base[0]) == self.base[1]
        for index, term in self.model:
            assert log.term_at(index) == term
            entry = log.get(index)
            assert entry is not None and entry.index == index
        assert log.term_at(self._last() + 1) is None
        assert [e.index for e in log.slice(0, 1 << 30)] == [m[0] for m in self.model]


TestLogModel = LogMachine.TestCase
