"""Client proposals of a running node: batching, waiters, answers.

Theory of operation. ``Node.submit`` hands a :class:`~traft.node.waiters.Proposal`
to :class:`Proposals`, which lists it until the main loop's next turn; the
first proposal of a batch wakes the main loop. :meth:`Proposals.flush`
proposes up to ``max_batch`` of them to the core as ONE ``recv_entries_batch``
(one append, one fsync for all: the group commit) and files each waiter
under its entry's index. A capped batch lets the followers persist one batch
while the leader persists the next; the rest waits for the main loop's next
turn.

:meth:`Proposals.apply` runs committed entries through the state machine and
answers each proposal whose entry it is: same index *and* term, otherwise
the proposal was lost to a new leader (ProposalLost). A proposal whose entry
a snapshot from the leader covered before it was applied here fails at once
(:meth:`Proposals.fail_covered`, :func:`~traft.node.waiters.covered_by_snapshot`),
never as a success. A proposal whose index a newer entry took from this
node's log fails as unknown: another server may still commit it (§5.4.2).

The backlog bound. Entries the leader appended but has not applied yet
cost memory (the core's log, the waiters) and, worse, time: a new
proposal is answered only after every entry before it. So the proposals
listed here plus the entries in the log above the applied index may number
at most ``max_unapplied`` and weigh at most ``max_unapplied_bytes`` (the
idea of etcd's MaxUncommittedEntriesSize, kept here so that the core need
not know). :meth:`has_room` says whether another proposal fits;
:meth:`flush` hands the core only what fits; callers beyond the bound wait
in :meth:`wait_for_room` (``submit``, its deadline still counting) or are
refused (``submit_nowait`` raises :class:`~traft.node.errors.Overloaded`).
A proposal's latency is then bounded by the bound divided by the
throughput, not by how far the offered load exceeds it.

Deadlines are not kept here: the node's :class:`~traft.node.waiters.Deadlines`
fails any waiter at its deadline, and :meth:`Proposals.forget` drops it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from traft.core import Entry, EntryType, NotLeader
from traft.node.errors import NodeError, ProposalLost, ProposalTimeout
from traft.node.statemachine import StateMachine
from traft.node.waiters import Proposal, Waiter, covered_by_snapshot

log = logging.getLogger(__name__)

# Proposals one Ready cycle takes at most. Smaller batches pipeline: the
# followers persist one while the leader persists the next. Measured with
# scripts/bench at 5,000 and 20,000 in flight: 2,000 gave 25-26k ops/s
# against 14-21k uncapped (and 500 was worse again).
MAX_BATCH = 2000
# The backlog bound: proposals listed plus entries appended and not yet
# applied. Enough for the 5,000-20,000 in flight at which scripts/bench
# reaches its plateau; 10,000 small proposals wait about 0.5 s at 20k ops/s.
MAX_UNAPPLIED = 10_000
# The same bound in command bytes (1 MiB commands: 32 of them).
MAX_UNAPPLIED_BYTES = 32 << 20


class Proposer(Protocol):
    """What :class:`Proposals` needs of the core (``traft.core.Raft`` has it)."""

    def recv_entries_batch(self, datas: Sequence[bytes]) -> tuple[int, int]: ...

    @property
    def current_index(self) -> int: ...


class ProposalCounters(Protocol):
    """The counters :class:`Proposals` bumps (``NodeCounters`` has them)."""

    proposals: int
    proposals_lost: int
    applied_entries: int


class Proposals:
    """The proposals between ``Node.submit`` and the state machine's answer.

    Args:
        node_id: the node's id, for logging.
        counters: where proposals, lost proposals and applied entries are counted.
        max_batch: proposals handed to the core per :meth:`flush`.
        max_unapplied: proposals listed plus entries not yet applied, at most
            (the backlog bound, see the module's docstring).
        max_unapplied_bytes: the same bound in command bytes (one proposal
            is admitted whatever its size when nothing else is unapplied).
    """

    def __init__(
        self,
        node_id: int,
        counters: ProposalCounters,
        *,
        max_batch: int = MAX_BATCH,
        max_unapplied: int = MAX_UNAPPLIED,
        max_unapplied_bytes: int = MAX_UNAPPLIED_BYTES,
    ) -> None:
        if max_unapplied < 1 or max_unapplied_bytes < 1:
            raise ValueError("max_unapplied and max_unapplied_bytes must be positive")
        self.node_id = node_id
        self.counters = counters
        self.max_batch = max_batch
        self.max_unapplied = max_unapplied
        self.max_unapplied_bytes = max_unapplied_bytes
        self._pending: list[Proposal] = []
        self._pending_bytes = 0
        # Proposals in the log, by index, until applied (or failed).
        self._in_log: dict[int, Waiter] = {}
        # The log as last seen: its last index and the applied index.
        self._last_index = 0
        self._applied = 0
        # Batches proposed and not yet applied: (last index, command bytes).
        self._batches: collections.deque[tuple[int, int]] = collections.deque()
        self._batch_bytes = 0
        # The most the backlog held (entries and listed proposals), for tests and metrics.
        self.peak_unapplied = 0
        self._room = trio.lowlevel.ParkingLot()

    # -- from callers --------------------------------------------------------------------

    @property
    def unapplied(self) -> int:
        """The backlog: entries in the log above the applied index, plus
        proposals listed for the next flush."""
        return self._last_index - self._applied + len(self._pending)

    @property
    def unapplied_bytes(self) -> int:
        """The command bytes of the backlog (proposals listed or in the log)."""
        return self._batch_bytes + self._pending_bytes

    def has_room(self) -> bool:
        """Whether another proposal fits in the backlog bound now."""
        if self.unapplied >= self.max_unapplied:
            return False
        used = self._batch_bytes + self._pending_bytes
        return used == 0 or used < self.max_unapplied_bytes

    async def wait_for_room(self) -> None:
        """Park until the backlog may have room (callers check :meth:`has_room` again)."""
        await self._room.park()

    def add(self, proposal: Proposal) -> bool:
        """List ``proposal`` for the next flush; True when it is the first
        (the caller then wakes the main loop)."""
        pending = self._pending
        pending.append(proposal)
        self._pending_bytes += len(proposal.command)
        return len(pending) == 1

    def _release(self, applied: int) -> None:
        """Note the applied index: batches at or below it leave the backlog,
        and callers waiting for room are woken."""
        self._applied = max(self._applied, applied)
        batches = self._batches
        while batches and batches[0][0] <= self._applied:
            self._batch_bytes -= batches.popleft()[1]
        if self._room:
            self._room.unpark_all()

    # -- the main loop's side ------------------------------------------------------------

    @property
    def leftover(self) -> bool:
        """Whether listed proposals wait for a flush that would take some now
        (a capped batch left them, and the bound has room for the first):
        exactly when :meth:`flush` would propose, so the main loop never
        spins on proposals that must wait for entries to apply."""
        pending = self._pending
        return (
            bool(pending)
            and self._room_in_log() > 0
            and self._fits(len(pending[0].command), alone=True)
        )

    def _room_in_log(self) -> int:
        """How many more proposals the count bound lets into the log now."""
        return min(self.max_batch, self.max_unapplied - (self._last_index - self._applied))

    def _fits(self, size: int, *, alone: bool = False) -> bool:
        """Whether ``size`` more command bytes may enter the log now; a
        proposal ``alone`` always may when the log holds none of the backlog."""
        in_log = self._batch_bytes
        return in_log + size <= self.max_unapplied_bytes or (alone and in_log == 0)

    def note_applied(self, applied: int) -> None:
        """Tell the bound where the state machine is (the node opened its
        storage, or installed a snapshot)."""
        self._release(applied)

    @property
    def in_log(self) -> int:
        """Proposals in the log, waiting to be applied."""
        return len(self._in_log)

    def flush(self, raft: Proposer, refuse: Callable[[NotLeader], NodeError]) -> None:
        """Propose listed proposals as one batch: at most ``max_batch``, and
        no more than the backlog bound leaves room for in the log.

        When the core refuses (not the leader, a transfer in progress), the
        whole batch fails with ``refuse(exc)``.
        """
        self._last_index = raft.current_index
        pending = self._pending
        if not pending:
            return
        take = self._room_in_log()
        if take <= 0:
            return
        if take >= len(pending) and self._fits(self._pending_bytes, alone=len(pending) == 1):
            # The common case: everything listed fits both bounds.
            size = self._pending_bytes
            batch, self._pending = pending, []
        else:
            size = 0
            for n, p in enumerate(pending[:take]):
                if not self._fits(size + len(p.command), alone=n == 0):
                    take = n
                    break
                size += len(p.command)
            if take == 0:
                return
            batch, self._pending = pending[:take], pending[take:]
        self._pending_bytes -= size
        try:
            term, index = raft.recv_entries_batch([p.command for p in batch])
        except NotLeader as exc:
            error = refuse(exc)
            for p in batch:
                p.fail(error)
            if self._room:
                self._room.unpark_all()
            return
        self._last_index = index + len(batch) - 1
        self._batches.append((self._last_index, size))
        self._batch_bytes += size
        self.peak_unapplied = max(self.peak_unapplied, self.unapplied)
        self.counters.proposals += len(batch)
        in_log = self._in_log
        for p in batch:
            p.term = term
            p.index = index
            stale = in_log.get(index)
            if stale is not None:
                # An older proposal whose index we now reuse was popped from
                # our log. Another server may still hold it and commit it
                # (§5.4.2), so its outcome is unknown, not lost.
                stale.fail(ProposalTimeout("outcome unknown: the entry left this node's log"))
            in_log[index] = p
            index += 1

    def apply(self, entries: list[Entry], state_machine: StateMachine, applied: int) -> int:
        """Apply the committed ``entries`` above ``applied`` and answer their
        proposers; return the new applied index."""
        in_log = self._in_log
        normal = EntryType.NORMAL
        for entry in entries:
            index = entry.index
            if index <= applied:
                continue
            result: Any = None
            if entry.type == normal:
                try:
                    result = state_machine.apply(index, entry.data)
                except Exception as exc:  # the application's error is the proposer's answer
                    log.exception("node %d: state machine failed on entry %d", self.node_id, index)
                    result = exc
            applied = index
            waiter = in_log.pop(index, None) if in_log else None
            if waiter is not None:
                if waiter.term == entry.term:
                    if isinstance(result, Exception):
                        waiter.fail(result)
                    else:
                        waiter.resolve(result)
                else:
                    self.counters.proposals_lost += 1
                    waiter.fail(ProposalLost("the proposal was replaced by a new leader's entry"))
        self.counters.applied_entries += len(entries)
        self._release(applied)
        return applied

    def fail_covered(self, index: int, term: int) -> None:
        """Answer the proposals a snapshot up to ``index`` (last term ``term``)
        covered before they were applied here.

        Their entries were compacted by a snapshot installed from the leader
        and will never be applied here: rather than hang until their
        deadline, they fail now, as lost or unknown, never as a success.
        """
        self._release(index)
        in_log = self._in_log
        for i in [i for i in in_log if i <= index]:
            waiter = in_log.pop(i)
            error = covered_by_snapshot(waiter.term, term)
            if isinstance(error, ProposalLost):
                self.counters.proposals_lost += 1
            waiter.fail(error)

    def forget(self, waiter: Waiter) -> None:
        """Drop a proposal that failed elsewhere (its deadline passed)."""
        if self._in_log.get(waiter.index) is waiter:
            del self._in_log[waiter.index]

    def fail_all(self, error: BaseException) -> None:
        """Fail every proposal, listed or in the log (the node stops)."""
        for waiter in [*self._pending, *self._in_log.values()]:
            waiter.fail(error)
        self._pending = []
        self._pending_bytes = 0
        self._in_log.clear()
        self._room.unpark_all()
