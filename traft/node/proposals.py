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

Deadlines are not kept here: the node's :class:`~traft.node.waiters.Deadlines`
fails any waiter at its deadline, and :meth:`Proposals.forget` drops it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

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
# Proposals listed for the main loop before callers queue as client work instead.
MAX_PENDING = 65536


class Proposer(Protocol):
    """What :class:`Proposals` needs of the core (``traft.core.Raft`` has it)."""

    def recv_entries_batch(self, datas: Sequence[bytes]) -> tuple[int, int]: ...


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
        max_pending: proposals listed before :meth:`has_room` says no.
    """

    def __init__(
        self,
        node_id: int,
        counters: ProposalCounters,
        *,
        max_batch: int = MAX_BATCH,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.node_id = node_id
        self.counters = counters
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._pending: list[Proposal] = []
        # Proposals in the log, by index, until applied (or failed).
        self._in_log: dict[int, Waiter] = {}

    # -- from callers --------------------------------------------------------------------

    def has_room(self) -> bool:
        """Whether another proposal may be listed without waiting."""
        return len(self._pending) < self.max_pending

    def add(self, proposal: Proposal) -> bool:
        """List ``proposal`` for the next flush; True when it is the first
        (the caller then wakes the main loop)."""
        pending = self._pending
        pending.append(proposal)
        return len(pending) == 1

    # -- the main loop's side ------------------------------------------------------------

    @property
    def leftover(self) -> bool:
        """Whether proposals wait for a flush (a capped batch left some)."""
        return bool(self._pending)

    @property
    def in_log(self) -> int:
        """Proposals in the log, waiting to be applied."""
        return len(self._in_log)

    def flush(self, raft: Proposer, refuse: Callable[[NotLeader], NodeError]) -> None:
        """Propose up to ``max_batch`` listed proposals as one batch.

        When the core refuses (not the leader, a transfer in progress), the
        whole batch fails with ``refuse(exc)``.
        """
        batch = self._pending
        if not batch:
            return
        if len(batch) > self.max_batch:
            batch, self._pending = batch[: self.max_batch], batch[self.max_batch :]
        else:
            self._pending = []
        try:
            term, index = raft.recv_entries_batch([p.command for p in batch])
        except NotLeader as exc:
            error = refuse(exc)
            for p in batch:
                p.fail(error)
            return
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
        return applied

    def fail_covered(self, index: int, term: int) -> None:
        """Answer the proposals a snapshot up to ``index`` (last term ``term``)
        covered before they were applied here.

        Their entries were compacted by a snapshot installed from the leader
        and will never be applied here: rather than hang until their
        deadline, they fail now, as lost or unknown, never as a success.
        """
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
        self._in_log.clear()
