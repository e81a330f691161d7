"""Snapshots in the core: taking them and installing them (§7, seed API).

Theory of operation: ``begin_snapshot`` fixes the snapshot point at the
applied index (its term and the configuration in force there); the driver
saves its state machine as of that point, then ``end_snapshot`` compacts the
log, which reaches the driver as ``Ready.compact_upto``. A follower that
received a snapshot from its leader installs it with
``begin_load_snapshot``: entries after the snapshot survive when the logs
agree at its index (§7), the rest of the log goes, the configuration is the
snapshot's plus the membership entries that survive, and the commit and
applied indexes jump to the snapshot. A snapshot never moves the term
backwards; the leader that sent it may move it forwards, as any message from
a newer leader does.

A snapshot whose configuration lists this server among the removed ids (see
:mod:`traft.core.membership`) tells it that its removal committed at or
before the snapshot's index, perhaps while it was away: it gets
``RemovedSelf(index)`` as if it had applied the removing entry, once.

The public methods are :class:`~traft.core.raft.Raft`'s (``begin_snapshot``,
``end_snapshot``, ``begin_load_snapshot``, ``end_load_snapshot``), which
check the caller's input and the sender's term; the work on the server's
log and configuration is done by the functions here.
"""

from __future__ import annotations

from traft.core.entry import EntryType
from traft.core.errors import NothingToSnapshot, SnapshotInProgress
from traft.core.membership import Configuration, Membership
from traft.core.ready import MembershipChanged, RemovedSelf, SnapshotMeta
from traft.core.server import ServerState

_MEMBERSHIP_MIN = int(EntryType.ADD_NONVOTING_NODE)


def begin(s: ServerState) -> SnapshotMeta:
    """Fix a snapshot at the applied index (see ``Raft.begin_snapshot``).

    Raises:
        SnapshotInProgress: a snapshot is being taken or loaded.
        NothingToSnapshot: nothing was applied since the last snapshot.
    """
    if s._snapshotting is not None or s._loading:
        raise SnapshotInProgress()
    index = s.last_applied
    if index <= s._log.base_index or (s.snapshot and index <= s.snapshot.index):
        raise NothingToSnapshot()
    term = s._log.term_at(index)
    assert term is not None, "applied entry missing from the log"
    meta = SnapshotMeta(index, term, s._conf.membership_at(index))
    s._snapshotting = meta
    return meta


def end(s: ServerState, meta: SnapshotMeta, keep_entries: int) -> None:
    """The snapshot ``meta`` is saved: compact the log up to it, keeping ``keep_entries``."""
    s._snapshotting = None
    s.snapshot = meta
    upto = meta.index - max(keep_entries, 0)
    if upto > s._log.base_index:
        term = s._log.term_at(upto)
        assert term is not None
        s._log.compact_upto(upto, term)
        s._compact_upto = upto


def install(s: ServerState, term: int, index: int, membership: Membership) -> None:
    """Install a snapshot newer than the commit index on a follower (§7)."""
    log = s._log
    if log.term_at(index) != term and log.last_index > s.commit_index:
        # The log disagrees with the snapshot: drop its uncommitted tail;
        # the committed part is covered by the snapshot and compacted below.
        s._truncate(max(s.commit_index, log.base_index) + 1)
    log.compact_upto(index, term)
    s._compact_upto = index
    s._handed_index = max(s._handed_index, index)
    s._unsent_from = max(s._unsent_from, index + 1)
    s._stable_index = max(s._stable_index, index)
    removed = s._removed_at
    told = removed is not None and removed <= s._applying_to  # RemovedSelf went out
    s.commit_index = s.last_applied = s._applying_to = index
    s._removed_at = None
    old = s._conf.nodes
    s._conf = Configuration(membership)
    for entry in log.slice(index + 1, log.last_index + 1):
        if entry.type >= _MEMBERSHIP_MIN:
            s._apply_membership(entry, announce=False)
    if s._removed_at is None and s.id in s._conf.removed:
        # Removed by an entry the snapshot covers: committed, and maybe never seen here.
        s._removed_at = index
        if not told:
            s._events.append(RemovedSelf(index))
    for node_id in sorted(set(old) | set(s._conf.nodes)):
        if old.get(node_id) != s._conf.nodes.get(node_id):
            s._events.append(MembershipChanged(node_id, s._conf.nodes.get(node_id)))
    s.snapshot = SnapshotMeta(index, term, membership)
    s._loading = True
