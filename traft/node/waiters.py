"""Callers waiting for the node's main loop: proposals, reads, membership changes.

Theory of operation: a caller creates one of these, hands it to the main
loop and parks on it; the main loop resolves or fails it when the entry is
applied (or a read is confirmed, or a change commits), and its tick fails
it at its deadline. A waiter is resolved at most once.

A waiter succeeds only when the entry with its own index *and* term is known
committed. An entry that a snapshot from the leader covered before this
node applied it can no longer be checked by its term: see
:func:`covered_by_snapshot` for proposals, and ``traft.node.members`` for
membership changes, which check the configuration instead.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import trio

from traft.core import EntryType
from traft.node.errors import NodeError, ProposalLost, ProposalTimeout

log = logging.getLogger(__name__)


def covered_by_snapshot(term: int, snapshot_term: int) -> NodeError:
    """The error for a proposal of ``term`` whose entry was covered by a
    snapshot installed from the leader before this node applied it; the
    snapshot's last entry has ``snapshot_term``.

    Never a success: the state machine's answer is not known here. A term
    has one leader, which never drops its own entries, so a snapshot ending
    with an entry of the proposal's term holds that leader's log, proposal
    included: it committed, answer unknown. One ending with an older term
    holds only older entries up to its index: the proposal was lost. After
    a newer term it cannot be told.
    """
    if snapshot_term < term:
        return ProposalLost(
            "the proposal was replaced by a new leader's entry (learnt from its snapshot)"
        )
    if snapshot_term == term:
        return ProposalTimeout(
            "the proposal committed, but this node learnt it from a snapshot and does not "
            "know its result; retrying with the same key returns it"
        )
    return ProposalTimeout(
        "outcome unknown: a snapshot from a new leader covered the entry before it was "
        "applied here; retrying with the same key is safe"
    )


class Waiter:
    """A caller waiting for the main loop.

    Cheaper than a ``trio.Event`` plus a cancel scope per call (the profile of
    20,000 proposals in flight spent half the leader's CPU there): the caller
    parks its own task, the main loop reschedules it, and the main loop's
    tick expires the deadline (see :class:`Deadlines`).
    """

    __slots__ = ("done", "task", "callback", "result", "error", "term", "index", "deadline", "what")

    def __init__(self) -> None:
        self.done = False
        self.task: trio.lowlevel.Task | None = None
        self.callback: Callable[[Any, BaseException | None], None] | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.term = 0
        self.index = 0
        self.deadline = math.inf
        self.what = ""

    def resolve(self, result: Any) -> None:
        if not self.done:
            self.done = True
            self.result = result
            self._wake()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.done = True
            self.error = error
            self._wake()

    def _wake(self) -> None:
        task = self.task
        if task is not None:
            self.task = None
            trio.lowlevel.reschedule(task)
        callback = self.callback
        if callback is not None:
            self.callback = None
            try:
                callback(self.result, self.error)
            except Exception:
                log.exception("a submit_nowait callback failed")

    async def wait(self) -> None:
        """Park until resolved or failed (or the caller is cancelled)."""
        if self.done:
            await trio.lowlevel.checkpoint()
            return
        self.task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self.task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


class Proposal(Waiter):
    __slots__ = ("command",)

    def __init__(self, command: bytes) -> None:
        # Waiter.__init__ spelled out: one per proposal, 10 % of the leader's samples.
        self.done = False
        self.task = None
        self.callback = None
        self.result = None
        self.error = None
        self.term = 0
        self.index = 0
        self.deadline = math.inf
        self.what = ""
        self.command = command


class Read(Waiter):
    __slots__ = ("query",)

    def __init__(self, query: Callable[[Any], Any]) -> None:
        super().__init__()
        self.query = query


class MemberChange(Waiter):
    __slots__ = ("kind", "node_id", "context", "promote", "committed")

    def __init__(self, kind: EntryType, node_id: int, context: bytes, promote: bool) -> None:
        super().__init__()
        self.kind = kind
        self.node_id = node_id
        self.context = context
        self.promote = promote
        self.committed = False  # its own entry (index and term) is known committed


class LeaderTransfer(Waiter):
    """A caller of ``Node.transfer_leadership``; ``target`` None until chosen."""

    __slots__ = ("target",)

    def __init__(self, target: int | None) -> None:
        super().__init__()
        self.target = target


class Deadlines:
    """The deadlines of waiters; the main loop's tick fails those passed.

    One deque per timeout: waiters of one timeout arrive in deadline order,
    so each deque stays sorted without a heap.
    """

    def __init__(self) -> None:
        self._queues: dict[float, collections.deque[Waiter]] = {}

    def __bool__(self) -> bool:
        return bool(self._queues)

    def add(self, waiter: Waiter, now: float, timeout: float, what: str) -> None:
        """Fail ``waiter`` (``what`` names it) if not done ``timeout`` seconds after ``now``."""
        waiter.deadline = now + timeout
        waiter.what = what
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = collections.deque()
        queue.append(waiter)

    def expire(self, now: float) -> Iterator[Waiter]:
        """Fail every waiter whose deadline has passed (its outcome is
        unknown: ProposalTimeout) and yield it.

        Done waiters are dropped from the front of their deque as they are
        met, which keeps a deque about as long as the calls in flight.
        """
        # A list: a failed waiter's callback may add a waiter of a new timeout.
        for timeout, queue in list(self._queues.items()):
            while queue:
                waiter = queue[0]
                if not waiter.done:
                    if waiter.deadline > now:
                        break
                    waiter.fail(
                        ProposalTimeout(
                            f"{waiter.what} did not complete within {timeout:g} s; "
                            "its outcome is unknown"
                        )
                    )
                    yield waiter
                queue.popleft()

    def fail_all(self, error: BaseException) -> None:
        """Fail every waiter still waiting (the node stops)."""
        for queue in self._queues.values():
            for waiter in queue:
                waiter.fail(error)
        self._queues.clear()
