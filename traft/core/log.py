"""The in-memory Raft log of one server.

Theory of operation: entries live in a Python list; ``base_index`` is the
index just before the first entry held (0 for a fresh log, the compaction
point after a snapshot) and ``base_term`` its term. Indexes at or below
``base_index`` are compacted: their entries are gone, but they are known to
be committed. Every operation is O(1) or O(entries moved); nothing here
loops per entry except slicing, which CPython does in C.

Invariant: entries[k].index == base_index + 1 + k and terms never decrease
along the log.
"""

from __future__ import annotations

from collections.abc import Sequence

from traft.core.entry import Entry


class RaftLog:
    """Entries after ``base_index``, appended, popped and compacted in place."""

    __slots__ = ("_entries", "base_index", "base_term")

    def __init__(self, base_index: int = 0, base_term: int = 0) -> None:
        self._entries: list[Entry] = []
        self.base_index = base_index
        self.base_term = base_term

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def first_index(self) -> int:
        """Index of the first entry held (base_index + 1, even when empty)."""
        return self.base_index + 1

    @property
    def last_index(self) -> int:
        """Index of the last entry, or base_index when the log holds none."""
        return self.base_index + len(self._entries)

    @property
    def last_term(self) -> int:
        """Term of the last entry, or base_term (the snapshot's) when empty."""
        entries = self._entries
        return entries[-1].term if entries else self.base_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at ``index``; None when compacted or beyond the end."""
        offset = index - self.base_index
        if offset == 0:
            return self.base_term
        if 0 < offset <= len(self._entries):
            return self._entries[offset - 1].term
        return None

    def get(self, index: int) -> Entry | None:
        """The entry at ``index``, or None when compacted or beyond the end."""
        offset = index - self.base_index - 1
        if 0 <= offset < len(self._entries):
            return self._entries[offset]
        return None

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi (clipped to what is held)."""
        base = self.base_index + 1
        return self._entries[max(lo - base, 0) : max(hi - base, 0)]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries that continue the log exactly."""
        if entries:
            assert entries[0].index == self.last_index + 1, "log append leaves a gap"
            self._entries.extend(entries)

    def append_one(self, entry: Entry) -> None:
        """Append one entry that continues the log exactly."""
        assert entry.index == self.last_index + 1, "log append leaves a gap"
        self._entries.append(entry)

    def truncate_from(self, index: int) -> list[Entry]:
        """Pop entries with index >= ``index`` (the seed's log_pop); returns them."""
        assert index > self.base_index, "cannot pop compacted entries"
        offset = index - self.base_index - 1
        popped = self._entries[offset:]
        del self._entries[offset:]
        return popped

    def compact_upto(self, index: int, term: int) -> None:
        """Drop entries with index <= ``index`` (the seed's log_poll).

        When ``index`` is at or beyond the last entry the log becomes empty and
        the next append is ``index + 1``; ``term`` is the term at ``index``.
        """
        if index <= self.base_index:
            return
        offset = index - self.base_index
        del self._entries[:offset]
        self.base_index = index
        self.base_term = term
