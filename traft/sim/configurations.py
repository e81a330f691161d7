"""The committed configuration as the checker sees it, and ``removal_notice``.

Part of :class:`~traft.sim.invariants.InvariantChecker` (a mixin): every
applied membership entry updates the committed voters and non-voters and
records the configuration from its index on, so that a snapshot's
configuration can be compared with the committed one at its index
(``snapshot_membership``) and the servers removed by committed entries are
known (``removal_notice``, ``no_id_reuse``).
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

__all__ = ["ConfigurationChecks"]


class ConfigurationChecks:
    """Committed configurations and ``removal_notice`` (see the module docstring)."""

    if TYPE_CHECKING:
        _voters: set[int]
        _nonvoters: set[int]
        _config_index: list[int]
        _configs: list[frozenset[tuple[int, bool]]]
        removed_at: dict[int, int]

    def _committed_membership(self, entry: Entry) -> None:
        try:
            node_id, _ = membership_change(entry)
        except ValueError:
            return
        if entry.type == EntryType.ADD_NONVOTING_NODE:
            if node_id not in self._voters:
                self._nonvoters.add(node_id)
        elif entry.type == EntryType.ADD_NODE:
            self._nonvoters.discard(node_id)
            self._voters.add(node_id)
        else:
            self._voters.discard(node_id)
            self._nonvoters.discard(node_id)
            self.removed_at.setdefault(node_id, entry.index)
        self._config_index.append(entry.index)
        self._configs.append(
            frozenset([(v, True) for v in self._voters] + [(n, False) for n in self._nonvoters])
        )

    def committed_config_at(self, index: int) -> frozenset[tuple[int, bool]]:
        """The committed configuration at ``index`` as (id, voting) pairs."""
        return self._configs[bisect_right(self._config_index, index) - 1]

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
