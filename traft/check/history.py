"""The operation model: what a recorded history is made of.

A history is a set of client operations, each with a real-time interval
``[call, ret]``, what the client asked for and what it was told. This module
keeps the rules of that model; the checker (``linearizability.py``) and the
parsers (``formats.py``) only build and read these values.

The three outcomes, in Jepsen's sense:

``Outcome.OK``
    The operation completed and ``result`` is what it returned. A
    compare-and-set whose comparison failed *completed*: it is ``OK`` with
    ``result=False`` (the store did not hold ``prev`` at its linearization
    point). A ticket is ``OK`` with its integer in ``result``.
``Outcome.FAIL``
    The operation definitely did not take effect and returned nothing to
    check (for example it was rejected by a follower before being proposed).
    The checker ignores it.
``Outcome.UNKNOWN``
    The client does not know (a timeout, a crash, a lost reply). The operation
    may take effect at any instant after ``call`` or never, and its result is
    not checked. ``ret`` may be set (when the client gave up) or ``None``; the
    checker treats it as +infinity either way, because a request in flight can
    still take effect after its client stopped waiting.

Times are plain floats in any unit; only their order matters. Equal times
count as *overlapping* (a call at the instant another operation returns may be
ordered before it), so a recorder that wants strict real-time order must give
distinct times: :class:`History` does that by default with an event counter.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator

import attrs

__all__ = [
    "KINDS",
    "History",
    "HistoryError",
    "Operation",
    "Outcome",
    "Value",
]

#: A value held by a register or a key, or returned by a read: a JSON scalar.
#: ``None`` means "no value" (an empty register, an absent key).
Value = str | int | float | bool | None

#: Every operation kind the models know, with what its fields mean.
KINDS: dict[str, str] = {
    "read": "register read; result = the value read (None when empty)",
    "write": "register write of arg",
    "cas": "compare-and-set: if the current value == prev, set it to arg; result = True/False",
    "get": "kv get of key; result = the value (None or '' when absent)",
    "put": "kv put of arg at key",
    "append": "kv append of arg to the string at key ('' when absent)",
    "delete": "kv delete of key",
    "ticket": "take a ticket; result = a unique integer, increasing in real time",
}

_SCALARS = (str, int, float, bool, type(None))


class HistoryError(ValueError):
    """A history (or one operation of it) breaks the rules of the model."""


class Outcome(enum.Enum):
    """What the client learnt about an operation (see the module docstring)."""

    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


@attrs.frozen(kw_only=True)
class Operation:
    """One client operation of a history.

    ``arg`` is the value written (``write``, ``put``, ``append``) or the new
    value of a ``cas``; ``prev`` is the value a ``cas`` expects (``None``: the
    key must be absent or the register empty). ``key`` partitions a history
    into independent objects (``None`` for a single register or counter).
    """

    process: int
    call: float
    ret: float | None
    kind: str
    key: str | None = None
    arg: Value = None
    prev: Value = None
    result: Value = None
    outcome: Outcome = Outcome.OK

    def validate(self) -> None:
        """Check the operation against the rules of the model.

        Raises:
            HistoryError: the kind is unknown, a value is not a scalar, an
                ``OK`` or ``FAIL`` operation has no return time, a return
                precedes its call, or a ``cas``/``ticket`` result has the
                wrong type.
        """
        if self.kind not in KINDS:
            raise HistoryError(f"unknown operation kind {self.kind!r}")
        for name in ("arg", "prev", "result"):
            value = getattr(self, name)
            if not isinstance(value, _SCALARS):
                raise HistoryError(f"{self.kind}: {name} must be a scalar, not {value!r}")
        if self.ret is None:
            if self.outcome is not Outcome.UNKNOWN:
                raise HistoryError(
                    f"{self.kind} by process {self.process}: outcome {self.outcome.value} "
                    "needs a return time (use outcome unknown for operations that never returned)"
                )
        elif self.ret < self.call:
            raise HistoryError(
                f"{self.kind} by process {self.process} returns at {self.ret} "
                f"before its call at {self.call}"
            )
        if self.outcome is Outcome.OK:
            if self.kind == "cas" and not isinstance(self.result, bool):
                raise HistoryError(
                    f"cas with outcome ok needs result true/false, not {self.result!r}"
                )
            if self.kind == "ticket" and (
                not isinstance(self.result, int) or isinstance(self.result, bool)
            ):
                raise HistoryError(
                    f"ticket with outcome ok needs an integer result, not {self.result!r}"
                )

    def describe(self) -> str:
        """A short human-readable form, e.g. ``p3 cas('k', 1 -> 2) = ok [1.0, 2.5]``."""
        where = f"{self.key!r}, " if self.key is not None else ""
        if self.kind in ("read", "ticket"):
            call = f"{self.kind}({where.rstrip(', ')})"
        elif self.kind in ("get", "delete"):
            call = f"{self.kind}({self.key!r})"
        elif self.kind == "cas":
            call = f"cas({where}{_show(self.prev)} -> {_show(self.arg)})"
        else:
            call = f"{self.kind}({where}{_show(self.arg)})"
        if self.outcome is Outcome.UNKNOWN:
            told = " = ? (outcome unknown)"
        elif self.outcome is Outcome.FAIL:
            told = " = failed"
        elif self.kind == "cas":
            told = " = ok" if self.result else " = mismatch"
        elif self.kind in ("read", "get", "ticket"):
            told = f" = {_show(self.result)}"
        else:
            told = " = ok"
        ret = "..." if self.ret is None else _num(self.ret)
        return f"p{self.process} {call}{told} [{_num(self.call)}, {ret}]"


def _show(value: Value) -> str:
    return "nil" if value is None else repr(value)


def _num(t: float) -> str:
    return f"{t:g}"


@attrs.define
class _Pending:
    process: int
    call: float
    kind: str
    key: str | None
    arg: Value
    prev: Value


class History:
    """Records a history as it happens, Jepsen style: invoke, then complete.

    ``clock`` gives the time of each event; by default a counter of recorded
    events, so that every event has its own instant and the history keeps the
    exact real-time order in which it was recorded. Pass the simulator's
    virtual clock instead to keep its times (equal times then overlap).

    Example::

        h = History()
        op = h.invoke(1, "put", key="x", arg="v")
        h.ok(op)
        op = h.invoke(2, "get", key="x")
        h.ok(op, result="v")
        check_history(h.operations(), "kv")
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._events = 0
        self._pending: dict[int, _Pending] = {}
        self._done: list[tuple[int, Operation]] = []
        self._next_handle = 0

    def _now(self) -> float:
        self._events += 1
        return self._clock() if self._clock is not None else self._events

    def invoke(
        self,
        process: int,
        kind: str,
        *,
        key: str | None = None,
        arg: Value = None,
        prev: Value = None,
    ) -> int:
        """Record the call of an operation; returns a handle for its completion.

        Raises:
            HistoryError: ``kind`` is not one of :data:`KINDS`.
        """
        if kind not in KINDS:
            raise HistoryError(f"unknown operation kind {kind!r}")
        handle = self._next_handle
        self._next_handle += 1
        self._pending[handle] = _Pending(process, self._now(), kind, key, arg, prev)
        return handle

    def ok(self, handle: int, result: Value = None) -> None:
        """Record that the operation completed and returned ``result``.

        Raises:
            HistoryError: the handle is not pending, or the operation is invalid.
        """
        self._finish(handle, Outcome.OK, result)

    def fail(self, handle: int) -> None:
        """Record that the operation definitely did not take effect.

        Raises:
            HistoryError: the handle is not pending.
        """
        self._finish(handle, Outcome.FAIL, None)

    def info(self, handle: int) -> None:
        """Record that the client gave up without knowing the outcome.

        Raises:
            HistoryError: the handle is not pending.
        """
        self._finish(handle, Outcome.UNKNOWN, None)

    def _finish(self, handle: int, outcome: Outcome, result: Value) -> None:
        try:
            p = self._pending.pop(handle)
        except KeyError:
            raise HistoryError(f"operation handle {handle} is not pending") from None
        op = Operation(
            process=p.process,
            call=p.call,
            ret=self._now(),
            kind=p.kind,
            key=p.key,
            arg=p.arg,
            prev=p.prev,
            result=result,
            outcome=outcome,
        )
        op.validate()
        self._done.append((handle, op))

    def operations(self) -> list[Operation]:
        """Every recorded operation in call order; those still pending are UNKNOWN."""
        ops = list(self._done)
        for handle, p in self._pending.items():
            ops.append(
                (
                    handle,
                    Operation(
                        process=p.process,
                        call=p.call,
                        ret=None,
                        kind=p.kind,
                        key=p.key,
                        arg=p.arg,
                        prev=p.prev,
                        outcome=Outcome.UNKNOWN,
                    ),
                )
            )
        ops.sort(key=lambda item: item[0])
        return [op for _, op in ops]

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations())

    def __len__(self) -> int:
        return len(self._done) + len(self._pending)


def validate_all(ops: Iterable[Operation]) -> list[Operation]:
    """Validate every operation and return them as a list.

    Raises:
        HistoryError: an operation breaks the rules (see :meth:`Operation.validate`).
    """
    result = list(ops)
    for op in result:
        op.validate()
    return result
