"""What the core asks its driver to do: :class:`Ready`, and the events in it.

The driver's loop (ARCHITECTURE §2), for every Ready it takes:

1. persist ``hard_state`` (term and vote together); pop the log from
   ``truncate_from``; drop entries up to ``compact_upto`` (a durable
   snapshot covers them; beyond the last entry it empties the log so the
   next index is ``compact_upto + 1``); append ``entries``; then fsync once
   for all of it;
2. send ``messages`` (loss, duplication and reordering are fine);
3. apply ``committed`` in index order, react to ``events``;
4. call :meth:`Raft.advance` with the same Ready.

Nothing may be sent before step 1 is durable, with one exception (thesis
§10.2.1): a leader's Ready with neither ``hard_state`` nor ``truncate_from``
may send its messages before (or while) it persists its entries. Everything
else waits for the persist: votes and vote refusals, AppendEntries responses,
and any message of a Ready that changes the term or vote or truncates the log.
The exception is safe because the core counts the leader's own copy of new
entries toward commitment only once ``advance()`` reports them durable, so an
entry can commit on followers' copies alone but never on a copy the leader
might still lose (``Leader.maybe_commit`` in :mod:`traft.core.leader` counts
``ServerState._stable_index``, which only ``advance()`` raises).
:mod:`traft.node` sends early in exactly that case.

A driver may keep feeding input between ``ready()`` and ``advance()``;
entries proposed or handed out but not yet persisted never commit on the
leader's count alone. ``ready()`` may not be called again before
``advance()``.

The simulator checks this contract: its servers with an early-sending
driver (``traft sim --early-send``) send such a Ready first, then take
messages, ticks and proposals during a simulated fsync before they persist
it and call ``advance()``, and crashes fall between the send and the
persist (the Ready's entries are then lost from that server's disk). Its
``durability`` invariant requires every commit a leader makes to rest on
copies durable on a majority of its voters, and the newest committed entry
to survive every crash (docs/simulator.md).
"""

from __future__ import annotations

import enum

import attrs

from traft.core.entry import Entry
from traft.core.membership import Membership, NodeConfig
from traft.core.messages import Message


class Role(enum.Enum):
    """A server's role (§5.1)."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@attrs.frozen(slots=True)
class HardState:
    """What must survive a crash besides the log: ``term`` and ``voted_for``."""

    term: int
    voted_for: int | None


@attrs.frozen(slots=True)
class SnapshotMeta:
    """Where a snapshot ends (``index``, ``term``) and the configuration it holds."""

    index: int
    term: int
    membership: Membership


# -- events -----------------------------------------------------------------


@attrs.frozen(slots=True)
class LeaderChanged:
    """The known leader changed (None: no leader known). Redirect clients here."""

    leader_id: int | None
    term: int


@attrs.frozen(slots=True)
class RoleChanged:
    """This server became ``role`` in ``term``."""

    role: Role
    term: int


@attrs.frozen(slots=True)
class MembershipChanged:
    """A node's configuration changed (the seed's notify_membership_event).

    ``node`` is its new configuration, or None when it left. Emitted when a
    membership entry is appended, when a popped entry undoes one, and when a
    snapshot is loaded.
    """

    node_id: int
    node: NodeConfig | None


@attrs.frozen(slots=True)
class NodeHasSufficientLogs:
    """A non-voting node has caught up; the driver may propose ADD_NODE for it."""

    node_id: int


@attrs.frozen(slots=True)
class SendSnapshot:
    """Send the latest snapshot to ``node_id``; the entries it needs are compacted."""

    node_id: int
    index: int
    term: int


@attrs.frozen(slots=True)
class RemovedSelf:
    """This server applied its own removal; it should stop serving."""

    index: int


@attrs.frozen(slots=True)
class ReadReady:
    """A read registered with ``read_index(ctx)`` may be served once applied >= index."""

    ctx: object
    index: int


@attrs.frozen(slots=True)
class ReadLost:
    """A registered read cannot be confirmed; retry (elsewhere).

    On a leader: leadership was lost. On a follower: the leader changed or
    became unknown, it refused, or it did not answer within an election timeout.
    """

    ctx: object


@attrs.frozen(slots=True)
class TransferStarted:
    """This leader began handing leadership to ``to``; proposals are refused meanwhile."""

    to: int


@attrs.frozen(slots=True)
class TransferFinished:
    """``to`` became leader after this server's transfer (it heard from ``to`` as leader)."""

    to: int


@attrs.frozen(slots=True)
class TransferAborted:
    """The transfer to ``to`` gave up (``reason`` says why); a leader accepts proposals again."""

    to: int
    reason: str


Event = (
    LeaderChanged
    | RoleChanged
    | MembershipChanged
    | NodeHasSufficientLogs
    | SendSnapshot
    | RemovedSelf
    | ReadReady
    | ReadLost
    | TransferStarted
    | TransferFinished
    | TransferAborted
)


@attrs.frozen(slots=True, kw_only=True)
class Ready:
    """Everything the driver must do now, in the order documented above."""

    hard_state: HardState | None = None
    truncate_from: int | None = None
    entries: list[Entry] = attrs.Factory(list)
    messages: list[tuple[int, Message]] = attrs.Factory(list)
    committed: list[Entry] = attrs.Factory(list)
    events: list[Event] = attrs.Factory(list)
    compact_upto: int | None = None

    def __bool__(self) -> bool:
        return bool(
            self.hard_state is not None
            or self.truncate_from is not None
            or self.entries
            or self.messages
            or self.committed
            or self.events
            or self.compact_upto is not None
        )
