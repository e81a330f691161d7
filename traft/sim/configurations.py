"""The committed configuration as the checker sees it, and ``removal_notice``.

:class:`CommittedConfigurations` is a collaborator of
:class:`~traft.sim.invariants.InvariantChecker` that owns its state: every
applied membership entry (:meth:`CommittedConfigurations.apply`) updates
the committed voters and non-voters and records the configuration from its
index on, so that a snapshot's configuration can be compared with the
committed one at its index (``snapshot_membership``) and the servers
removed by committed entries are known (``removal_notice``,
``no_id_reuse``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import TYPE_CHECKING

from traft.core import Entry, EntryType
from traft.core.entry import membership_change
from traft.sim.violations import InvariantViolation

if TYPE_CHECKING:
    from traft.sim.cluster import SimServer

__all__ = ["CommittedConfigurations"]


class CommittedConfigurations:
    """The committed configurations from the bootstrap one on (see the module docstring).

    Args:
        voters: the bootstrap voting members (the configuration at index 0).
    """

    def __init__(self, voters: Iterable[int]) -> None:
        #: The voters of the newest committed configuration (read, never
        #: changed, by the durability checks).
        self.voters: set[int] = set(voters)
        self._nonvoters: set[int] = set()
        # The committed configuration after each committed membership change:
        # indexes, and (id, voting) pairs, from the bootstrap one at index 0.
        self._index: list[int] = [0]
        self._configs: list[frozenset[tuple[int, bool]]] = [
            frozenset((v, True) for v in self.voters)
        ]
        #: Server id -> index of the committed entry that removed it.
        self.removed_at: dict[int, int] = {}

    def apply(self, entry: Entry) -> None:
        """A membership entry was applied (it is committed): record the new configuration."""
        try:
            node_id, _ = membership_change(entry)
        except ValueError:
            return
        if entry.type == EntryType.ADD_NONVOTING_NODE:
            if node_id not in self.voters:
                self._nonvoters.add(node_id)
        elif entry.type == EntryType.ADD_NODE:
            self._nonvoters.discard(node_id)
            self.voters.add(node_id)
        else:
            self.voters.discard(node_id)
            self._nonvoters.discard(node_id)
            self.removed_at.setdefault(node_id, entry.index)
        self._index.append(entry.index)
        self._configs.append(
            frozenset([(v, True) for v in self.voters] + [(n, False) for n in self._nonvoters])
        )

    def at(self, index: int) -> frozenset[tuple[int, bool]]:
        """The committed configuration at ``index`` as (id, voting) pairs."""
        return self._configs[bisect_right(self._index, index) - 1]

    def check_removals(self, servers: Iterable[SimServer]) -> None:
        """``removal_notice``: each live server removed by a committed entry, once
        it has applied past that entry, has seen ``RemovedSelf`` exactly once."""
        removed_at = self.removed_at
        for server in servers:
            seen = server.removed_seen
            if len(seen) > 1:
                raise InvariantViolation(
                    "removal_notice",
                    f"server {server.id} saw RemovedSelf {len(seen)} times (entries {seen})",
                )
            index = removed_at.get(server.id)
            if seen and index is None:
                raise InvariantViolation(
                    "removal_notice",
                    f"server {server.id} saw RemovedSelf({seen[0]}) but no committed entry "
                    "removed it",
                )
            if (
                index is not None
                and not seen
                and server.alive
                and server.install is None
                and server.applied_index >= index
            ):
                raise InvariantViolation(
                    "removal_notice",
                    f"server {server.id} applied up to {server.applied_index}, past its removal "
                    f"at {index}, and never saw RemovedSelf",
                )
