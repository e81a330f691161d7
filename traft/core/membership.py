"""Cluster membership: who is in the configuration and who votes (§6, seed semantics).

Theory of operation: as in the seed library, a membership entry takes effect
as soon as it is appended to a server's log, committed or not, and is undone
when it is popped. :class:`Configuration` keeps the current node table and an
undo journal of uncommitted changes, one record per membership entry, so a
truncation restores exactly the configuration in force before it. Records at
or below the commit index can never be popped; they are pruned once applied,
not before: a snapshot is taken at the applied index, which may be behind the
commit index, and its configuration must be the one in force there
(:meth:`Configuration.membership_at`).

Ids of removed nodes are never reused (as in etcd): the configuration also
remembers every id a REMOVE_NODE entry removed, with the same undo when the
entry is popped, and a snapshot's :class:`Membership` carries them so the
memory survives compaction. A server that finds its own id there knows it
was removed, as opposed to not added yet.

A :class:`Membership` is the frozen form recorded in snapshots.
"""

from __future__ import annotations

import struct

import attrs

from traft.core.entry import Entry, EntryType, membership_change


@attrs.frozen(slots=True)
class NodeConfig:
    """One member: its id, whether it votes, and the driver's opaque ``context``."""

    node_id: int
    voting: bool
    context: bytes = b""


_HEADER = struct.Struct(">I")
_NODE = struct.Struct(">QBI")
_ID = struct.Struct(">Q")


@attrs.frozen(slots=True)
class Membership:
    """A whole configuration, sorted by node id, as stored in a snapshot.

    ``removed`` holds the ids removed from the cluster so far; they may not
    join again.
    """

    nodes: tuple[NodeConfig, ...] = ()
    removed: frozenset[int] = frozenset()

    @property
    def voters(self) -> frozenset[int]:
        return frozenset(n.node_id for n in self.nodes if n.voting)

    def to_bytes(self) -> bytes:
        """Encode for a snapshot file or message.

        The removed ids follow the nodes as a count and the ids, only when
        there are any: a membership without them encodes as it did before
        removed ids were recorded, and old encodings decode unchanged.
        """
        parts = [_HEADER.pack(len(self.nodes))]
        for n in self.nodes:
            parts.append(_NODE.pack(n.node_id, int(n.voting), len(n.context)))
            parts.append(n.context)
        if self.removed:
            parts.append(_HEADER.pack(len(self.removed)))
            parts.extend(_ID.pack(node_id) for node_id in sorted(self.removed))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Membership:
        """Decode what :meth:`to_bytes` wrote.

        Raises:
            ValueError: the bytes are not a membership.
        """
        try:
            (count,) = _HEADER.unpack_from(data, 0)
            offset = _HEADER.size
            nodes = []
            for _ in range(count):
                node_id, voting, length = _NODE.unpack_from(data, offset)
                offset += _NODE.size
                context = bytes(data[offset : offset + length])
                if len(context) != length:
                    raise ValueError("truncated context")
                offset += length
                nodes.append(NodeConfig(node_id, bool(voting), context))
            removed = []
            if offset < len(data):
                (count,) = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                for _ in range(count):
                    removed.append(_ID.unpack_from(data, offset)[0])
                    offset += _ID.size
        except struct.error as exc:
            raise ValueError(f"malformed membership: {exc}") from exc
        if offset != len(data):
            raise ValueError("malformed membership: trailing bytes")
        return cls(tuple(sorted(nodes, key=lambda n: n.node_id)), frozenset(removed))


@attrs.define(slots=True)
class _Undo:
    index: int
    node_id: int
    before: NodeConfig | None
    voting_change: bool
    was_removed: bool


class Configuration:
    """The live node table of one server, with undo for uncommitted changes."""

    __slots__ = ("nodes", "removed", "_journal", "_voters")

    def __init__(self, membership: Membership = Membership()) -> None:
        self.nodes: dict[int, NodeConfig] = {n.node_id: n for n in membership.nodes}
        # Invariant: no id is both in nodes and in removed.
        self.removed: set[int] = set(membership.removed) - set(self.nodes)
        self._journal: list[_Undo] = []
        self._voters: list[int] | None = None

    # -- queries ------------------------------------------------------------

    def voters(self) -> list[int]:
        """Sorted ids of voting members (cached)."""
        if self._voters is None:
            self._voters = sorted(i for i, n in self.nodes.items() if n.voting)
        return self._voters

    def is_voter(self, node_id: int) -> bool:
        node = self.nodes.get(node_id)
        return node is not None and node.voting

    def membership(self) -> Membership:
        """The current configuration, frozen."""
        return Membership(tuple(self.nodes[i] for i in sorted(self.nodes)), frozenset(self.removed))

    def membership_at(self, index: int) -> Membership:
        """The configuration as it was right after entry ``index`` was appended.

        Exact for any ``index`` at or above the last pruned one (the applied index).
        """
        nodes = dict(self.nodes)
        removed = set(self.removed)
        for undo in reversed(self._journal):
            if undo.index <= index:
                break
            _restore(nodes, removed, undo)
        return Membership(tuple(nodes[i] for i in sorted(nodes)), frozenset(removed))

    def change_pending(self, node_id: int, index: int) -> bool:
        """Whether an entry above ``index`` changed ``node_id``."""
        return any(u.node_id == node_id and u.index > index for u in self._journal)

    def pending_removals(self, commit_index: int) -> list[tuple[int, int]]:
        """``(node_id, index)`` of members removed by entries after ``commit_index``."""
        return sorted(
            (u.node_id, u.index)
            for u in self._journal
            if u.index > commit_index and u.before is not None and u.node_id not in self.nodes
        )

    def voting_change_after(self, index: int) -> bool:
        """Whether a voting change with a log index above ``index`` is in force."""
        return any(u.voting_change and u.index > index for u in self._journal)

    # -- changes --------------------------------------------------------------

    def set_node(self, node: NodeConfig) -> None:
        """Add or replace a node outside the log (bootstrap, snapshot load)."""
        self.nodes[node.node_id] = node
        self.removed.discard(node.node_id)
        self._voters = None

    def remove_node(self, node_id: int) -> None:
        self.nodes.pop(node_id, None)
        self._voters = None

    def apply_entry(self, entry: Entry) -> tuple[int, NodeConfig | None] | None:
        """Let a membership entry take effect.

        Returns ``(node_id, new config)``, the config being None when the node
        was removed. A malformed membership entry (too short to name a node)
        changes nothing, here or on any other server, and returns None.
        """
        try:
            node_id, context = membership_change(entry)
        except ValueError:
            return None
        before = self.nodes.get(node_id)
        kind = entry.type
        after: NodeConfig | None
        if kind == EntryType.ADD_NONVOTING_NODE:
            after = before if before is not None else NodeConfig(node_id, False, context)
        elif kind == EntryType.ADD_NODE:
            ctx = context if context or before is None else before.context
            after = NodeConfig(node_id, True, ctx)
        else:
            after = None
        voting_change = kind == EntryType.ADD_NODE or (
            kind == EntryType.REMOVE_NODE and before is not None and before.voting
        )
        removed = self.removed
        self._journal.append(_Undo(entry.index, node_id, before, voting_change, node_id in removed))
        if after is None:
            self.nodes.pop(node_id, None)
            removed.add(node_id)
        else:
            # Only logs written before ids were refused re-add a removed id.
            self.nodes[node_id] = after
            removed.discard(node_id)
        self._voters = None
        return node_id, after

    def undo_from(self, index: int) -> list[tuple[int, NodeConfig | None]]:
        """Undo changes made by entries with index >= ``index``; returns what was restored."""
        restored: list[tuple[int, NodeConfig | None]] = []
        journal = self._journal
        while journal and journal[-1].index >= index:
            undo = journal.pop()
            _restore(self.nodes, self.removed, undo)
            restored.append((undo.node_id, undo.before))
        if restored:
            self._voters = None
        return restored

    def prune_upto(self, index: int) -> None:
        """Forget undo records for entries at or below ``index`` (committed and applied)."""
        journal = self._journal
        keep = 0
        while keep < len(journal) and journal[keep].index <= index:
            keep += 1
        if keep:
            del journal[:keep]


def _restore(nodes: dict[int, NodeConfig], removed: set[int], undo: _Undo) -> None:
    if undo.before is None:
        nodes.pop(undo.node_id, None)
    else:
        nodes[undo.node_id] = undo.before
    if undo.was_removed:
        removed.add(undo.node_id)
    else:
        removed.discard(undo.node_id)
