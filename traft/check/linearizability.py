"""The linearizability search: Wing & Gong's algorithm with Lowe's memoisation.

Theory of operation
-------------------
A history is linearizable (Herlihy & Wing 1990) when each operation can be
given an instant inside its interval ``[call, ret]`` at which it takes effect,
such that the operations, run one at a time in the order of those instants,
are accepted by the object's sequential specification (``models.py``).

Wing & Gong (1993, "Testing and verifying concurrent objects") search for such
an order depth first. The call and return events of all operations are put in
one list sorted by time. Walking the list from its head, every *call* met is
an operation that may take effect next (it has been invoked and nothing
forces anything else first); the first *return* met belongs to an operation
that must take effect before anything that was called after it, so the walk
stops there. When the model accepts a candidate, the search commits to it: it
pushes (operation, state before) on a stack, *lifts* the operation's call and
return out of the list (a doubly linked list, so lifting and putting back are
O(1)) and starts again from the head. When it meets a return, no remaining
candidate works: it pops the last choice, *unlifts* it and tries the next
candidate after it. The history is linearizable once every completed operation
has been lifted; it is not once the stack is empty at a return.

The search is exponential in the worst case. Lowe (2017, "Testing for
linearizability", Concurrency and Computation: Practice and Experience)
observed that two branches that have linearized the same *set* of operations
and reached the same model state have the same future, so a cache of visited
``(set of linearized operations, state)`` pairs prunes every branch but the
first. Sets are Python ints used as bitsets; states are hashable values. This
is also how Porcupine (Athalye, MIT licence) checks Jepsen histories.

More reductions, all exact (they never change a verdict):

- *Per-key partitioning*. Operations on different keys act on independent
  objects, and linearizability is local (Herlihy & Wing, Theorem 1): the
  history is linearizable iff each key's sub-history is. Each key is searched
  on its own, which turns one exponential search into many small ones.
- *Unknown outcomes*. An operation whose outcome is unknown may take effect at
  any instant after its call, or never. It gets no return event (its return
  is at +infinity, so it never blocks the walk), its result is not checked,
  and the search succeeds as soon as every *completed* operation is lifted:
  the unknown ones still in the list are those that never took effect.
  Unknown operations that cannot change the state (reads) are dropped first.
- *No-op unknowns*. An unknown operation is never linearized at a point where
  it would leave the state unchanged (a cas whose ``prev`` does not match, a
  delete of an absent key): dropping it from such a linearization leaves a
  valid one. Without this rule every subset of such operations would be a
  separate cache entry.
- *Interchangeable unknowns*. Unknown operations with equal effects (say, two
  timed-out ``put(x, 1)``) can take each other's places, so only the
  earliest-called unused one of each class is a candidate (``_search``).
- *Unread values* (``models.py``). Written values that no operation compares
  the state with are one value as far as the model can tell, so the register
  and kv models merge them, and with them their cache entries.

Limits. Refuting a long history on one key with many unknown operations
whose values *are* read can still take exponential time: each one may or may
not have taken effect before each point. The time budget then gives
``UNKNOWN``. Spreading operations over more keys keeps each search small.

Equal times: calls sort before returns, so operations that touch at an
instant count as concurrent; the checker never invents an order that the
timestamps do not prove.

Explanations. When the search fails, the deepest point it reached (the most
completed operations linearized) is kept, in the spirit of Porcupine's partial
linearizations: the linearizable prefix found there, the state after it, the
operation whose return stopped the walk, and what each open operation would do
next. That is the smallest story of why no order exists.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Hashable, Iterable

import attrs

from traft.check.history import HistoryError, Operation, Outcome
from traft.check.models import REFUSED, Compiled, Model, Transition, get_model

__all__ = [
    "CheckResult",
    "Verdict",
    "Violation",
    "check_history",
]

# The deadline is looked at once every this many search steps.
_CLOCK_EVERY = 2048
# How many prefix and candidate lines an explanation shows at most.
_SHOW_PREFIX = 12
_SHOW_CANDIDATES = 16


class Verdict(enum.Enum):
    """The answer of a check."""

    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not-linearizable"
    UNKNOWN = "unknown"


@attrs.frozen(kw_only=True)
class Violation:
    """Why one key's sub-history is not linearizable (see the module docstring)."""

    key: str | None
    operations: int
    prefix: tuple[Operation, ...]
    state: str
    blocked: Operation
    open_ops: tuple[tuple[Operation, bool], ...]
    """Each operation that could have been ordered next, and whether the model
    accepts it after the prefix (accepted ones lead only to refuted branches)."""

    def explain(self) -> str:
        """The violation as human-readable text."""
        where = "" if self.key is None else f" on key {self.key!r}"
        lines = [
            f"Not linearizable{where}: no order of its {self.operations} operations "
            "is consistent with real time and the model."
        ]
        n = len(self.prefix)
        lines.append(
            f"Longest linearizable prefix found: {n} operation{'s' if n != 1 else ''}"
            + (":" if n else ".")
        )
        start = max(0, n - _SHOW_PREFIX)
        if start:
            lines.append(f"  ... ({start} earlier operations)")
        for i in range(start, n):
            lines.append(f"  {i + 1:4d}. {self.prefix[i].describe()}")
        lines.append(f"after which {self.state}.")
        ret = self.blocked.ret
        lines.append(
            f"Then {self.blocked.describe()} must take effect before it returns at {ret:g}, "
            "but none of the operations that could go next leads to a linearization:"
        )
        for op, accepted in self.open_ops[:_SHOW_CANDIDATES]:
            why = (
                "possible next, but every continuation after it fails"
                if accepted
                else f"cannot take effect when {self.state}"
            )
            lines.append(f"  {op.describe()}: {why}")
        hidden = len(self.open_ops) - _SHOW_CANDIDATES
        if hidden > 0:
            lines.append(f"  ... ({hidden} more)")
        return "\n".join(lines)


@attrs.frozen(kw_only=True)
class CheckResult:
    """The outcome of :func:`check_history`."""

    verdict: Verdict
    explanation: str
    operations: int
    """Operations the search had to place (failed and ignorable ones excluded)."""
    partitions: int
    states: int
    """Distinct (linearized set, state) pairs visited, summed over partitions."""
    elapsed_s: float
    violation: Violation | None = None

    @property
    def linearizable(self) -> bool:
        """True only for a definite "linearizable" verdict."""
        return self.verdict is Verdict.LINEARIZABLE


class _Status(enum.Enum):
    OK = 0
    VIOLATION = 1
    TIMEOUT = 2


@attrs.define
class _Deepest:
    """The deepest point a failed search reached."""

    depth: int = -1
    prefix: list[int] = attrs.Factory(list)
    state: Hashable = None
    blocked: int = -1


def check_history(
    ops: Iterable[Operation],
    model: Model | str,
    *,
    timeout_s: float | None = None,
) -> CheckResult:
    """Decide whether a history is linearizable with respect to ``model``.

    ``model`` is a :class:`~traft.check.models.Model` or one of the names
    ``"register"``, ``"kv"``, ``"tickets"``. The history is split per
    ``Operation.key`` and each part searched on its own. With ``timeout_s``,
    the search gives up after about that many seconds in total and the verdict
    is ``UNKNOWN`` unless a violation was already found.

    Raises:
        HistoryError: an operation is invalid or not one the model knows.
        ValueError: ``model`` names no model.
    """
    started = time.monotonic()
    deadline = None if timeout_s is None else started + timeout_s
    spec = get_model(model)
    parts: dict[str | None, list[Operation]] = {}
    for op in ops:
        op.validate()
        if spec.relevant(op):
            parts.setdefault(op.key, []).append(op)
    total = sum(len(p) for p in parts.values())
    states = 0
    timed_out: list[str | None] = []
    for key in sorted(parts, key=lambda k: (k is not None, k or "")):
        part = parts[key]
        compiled = spec.compile(part)
        status, explored, deepest = _search(part, compiled, spec.initial_state(), deadline)
        states += explored
        if status is _Status.VIOLATION:
            violation = _violation(key, part, compiled, spec, deepest)
            return CheckResult(
                verdict=Verdict.NOT_LINEARIZABLE,
                explanation=violation.explain(),
                operations=total,
                partitions=len(parts),
                states=states,
                elapsed_s=time.monotonic() - started,
                violation=violation,
            )
        if status is _Status.TIMEOUT:
            timed_out.append(key)
    elapsed = time.monotonic() - started
    if timed_out:
        keys = ", ".join("the unkeyed operations" if k is None else repr(k) for k in timed_out[:5])
        more = f" and {len(timed_out) - 5} more" if len(timed_out) > 5 else ""
        explanation = (
            f"Undecided: the search did not finish within {timeout_s:g} s "
            f"for {len(timed_out)} of {len(parts)} partitions: {keys}{more}. "
            f"{states} states visited; no violation found."
        )
        verdict = Verdict.UNKNOWN
    else:
        explanation = (
            f"Linearizable: {total} operations in {len(parts)} "
            f"partition{'s' if len(parts) != 1 else ''}, {states} state{'s' if states != 1 else ''} visited."
        )
        verdict = Verdict.LINEARIZABLE
    return CheckResult(
        verdict=verdict,
        explanation=explanation,
        operations=total,
        partitions=len(parts),
        states=states,
        elapsed_s=elapsed,
    )


def _never(state: Hashable) -> Hashable:
    """The transition of a node that is not a call (never used)."""
    return REFUSED


def _search(
    ops: list[Operation], compiled: list[Compiled], initial: Hashable, deadline: float | None
) -> tuple[_Status, int, _Deepest]:
    """Wing & Gong's search with Lowe's cache over one partition.

    An unknown-outcome operation is never linearized where it would leave the
    state as it is: dropping it from such a linearization leaves a valid one.
    Unknown-outcome operations with the same effect are interchangeable: if a
    linearization uses some of them, it can use the earliest-called ones
    instead, each in the place of one of the others (the k-th place used is
    after k of their calls). So one of them is a candidate only once the
    previous one of its class, in call order, is linearized.
    """
    deepest = _Deepest()
    # Events (time, 0 = call / 1 = return, op index): calls first at equal times.
    events: list[tuple[float, int, int]] = []
    completed = 0
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        if op.outcome is Outcome.OK:
            assert op.ret is not None  # validate() guarantees it
            events.append((op.ret, 1, i))
            completed += 1
    if completed == 0:
        return _Status.OK, 0, deepest
    events.sort()
    m = len(events)
    tail = m + 1
    # The doubly linked list: node 0 is the head, 1..m the events, m + 1 the tail.
    nxt = list(range(1, m + 2)) + [tail]
    prv = [0] + list(range(0, m + 1))
    op_of = [-1] * (m + 2)
    is_call = [False] * (m + 2)
    bit = [0] * (m + 2)
    match = [0] * (m + 2)  # call node -> its return node, 0 for unknown outcomes
    transitions: list[Transition] = [_never] * (m + 2)  # set for call nodes
    after = [0] * (m + 2)  # unknown call node -> bit of the previous one of its class
    call_node = [0] * len(ops)
    last_of_class: dict[Hashable, int] = {}
    for node, (_, kind, i) in enumerate(events, start=1):
        op_of[node] = i
        if kind == 0:
            is_call[node] = True
            bit[node] = 1 << i
            transitions[node] = compiled[i].step
            call_node[i] = node
            if ops[i].outcome is not Outcome.OK:
                effect = compiled[i].effect
                after[node] = last_of_class.get(effect, 0)
                last_of_class[effect] = bit[node]
        else:
            match[call_node[i]] = node

    state: Hashable = initial
    linearized = 0
    stack: list[tuple[int, Hashable]] = []
    seen: set[tuple[int, Hashable]] = set()
    remaining = completed
    refused = REFUSED
    countdown = _CLOCK_EVERY
    k = nxt[0]
    while True:
        countdown -= 1
        if countdown == 0:
            countdown = _CLOCK_EVERY
            if deadline is not None and time.monotonic() > deadline:
                return _Status.TIMEOUT, len(seen), deepest
        if is_call[k]:
            if after[k] and not linearized & after[k]:
                k = nxt[k]  # an earlier interchangeable operation is unused
                continue
            new_state = transitions[k](state)
            if not match[k] and new_state == state:
                # An unknown operation that changes nothing: leaving it out of
                # the linearization is as good, and saves its place for later.
                k = nxt[k]
                continue
            if new_state is not refused:
                grown = linearized | bit[k]
                memo = (grown, new_state)
                if memo not in seen:
                    seen.add(memo)
                    stack.append((k, state))
                    linearized = grown
                    state = new_state
                    # Lift the call and its return out of the list.
                    p, q = prv[k], nxt[k]
                    nxt[p] = q
                    prv[q] = p
                    r = match[k]
                    if r:
                        p, q = prv[r], nxt[r]
                        nxt[p] = q
                        prv[q] = p
                        remaining -= 1
                        if remaining == 0:
                            return _Status.OK, len(seen), deepest
                    k = nxt[0]
                    continue
            k = nxt[k]
            continue
        # A return: its operation is still open, and nothing left works before it.
        depth = completed - remaining
        if depth > deepest.depth:
            deepest.depth = depth
            deepest.prefix = [op_of[node] for node, _ in stack]
            deepest.state = state
            deepest.blocked = op_of[k]
        if not stack:
            return _Status.VIOLATION, len(seen), deepest
        k, state = stack.pop()
        linearized ^= bit[k]
        r = match[k]
        if r:
            p, q = prv[r], nxt[r]
            nxt[p] = r
            prv[q] = r
            remaining += 1
        p, q = prv[k], nxt[k]
        nxt[p] = k
        prv[q] = k
        k = nxt[k]


def _violation(
    key: str | None,
    ops: list[Operation],
    compiled: list[Compiled],
    model: Model,
    deepest: _Deepest,
) -> Violation:
    """Turn the deepest point of a failed search into a :class:`Violation`."""
    if deepest.blocked < 0:  # pragma: no cover - a failed search always meets a return
        raise HistoryError("internal error: failed search without a blocking operation")
    blocked = ops[deepest.blocked]
    assert blocked.ret is not None
    # The prefix is linearizable with the concrete transitions too (UNREAD
    # stands for values nothing tells apart), so replay it to name the state.
    state = model.initial_state()
    for i in deepest.prefix:
        state = model.transition(ops[i])(state)
    assert state is not REFUSED
    done = set(deepest.prefix)
    open_ops: list[tuple[Operation, bool]] = []
    for i, op in enumerate(ops):
        if i in done or op.call > blocked.ret:
            continue
        accepted = compiled[i].step(deepest.state) is not REFUSED
        open_ops.append((op, accepted))
    # The blocked operation first, then the others in call order.
    open_ops.sort(key=lambda item: (item[0] is not blocked, item[0].call))
    return Violation(
        key=key,
        operations=len(ops),
        prefix=tuple(ops[i] for i in deepest.prefix),
        state=model.describe_state(state),
        blocked=blocked,
        open_ops=tuple(open_ops),
    )
