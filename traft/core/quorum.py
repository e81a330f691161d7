"""Commit index math (§5.3, §5.4.2).

The committed index of a configuration is the largest index that a majority
of its voters hold: sort the voters' match indexes in descending order and
take the one at position ``len // 2``.
"""

from __future__ import annotations

from collections.abc import Iterable


def majority(voters: int) -> int:
    """How many of ``voters`` make a majority."""
    return voters // 2 + 1


def quorum_index(match_indexes: Iterable[int]) -> int:
    """The largest index held by a majority of the given match indexes (0 if none)."""
    ordered = sorted(match_indexes, reverse=True)
    if not ordered:
        return 0
    return ordered[len(ordered) // 2]
