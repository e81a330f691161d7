"""Sequential specifications: what each object does when used by one client.

Linearizability is always relative to a sequential specification (Herlihy &
Wing 1990): a history is linearizable when its operations can be put in one
order, consistent with real time, that the specification accepts. The search
(``linearizability.py``) asks a model one question, over and over: "from this
state, can this operation take effect, and what is the state after it?". To
keep that question cheap, a model compiles each operation once into a
*transition*: a function from a state to the next state, or to ``REFUSED``.

Rules this file keeps:

- States are hashable and compared by value (the search memoises on them).
- Transitions are deterministic. An operation with an unknown outcome still
  has a determined effect once its linearization point is fixed (a write
  writes; a cas swaps only if the value matched); only its result is free.
- ``ignorable_when_unknown`` lists the kinds whose unknown-outcome operations
  can never help nor hurt a linearization, so the checker drops them before
  searching. Reads qualify (no effect). Tickets qualify too: a ticket of
  unknown outcome that took effect could only raise the counter, which can
  only refuse later tickets, so "it never happened" is always at least as good.

Two exact reductions, also kept here (``Model.compile``):

- *Unread values.* A written value that no operation of the partition ever
  compares the state with (no read returns it, no cas expects it, no append
  builds on it) is indistinguishable from any other such value: each
  operation behaves the same on all of them. So the register and kv models
  write one sentinel, :data:`UNREAD`, in its place, and states that differ
  only in which unread value they hold become one state for the cache.
- *Interchangeable unknown operations.* Each compiled operation carries an
  *effect* key; operations of unknown outcome with equal effects can stand
  in for one another, so the checker only ever uses the earliest-called one
  still unused (see ``linearizability.py``).

The per-key split (objects are independent, so a history is linearizable iff
each key's sub-history is: Herlihy & Wing's locality) is done by the checker
on ``Operation.key``; a model describes one object.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar, Final, NamedTuple

from traft.check.history import HistoryError, Operation, Outcome, Value

__all__ = [
    "MODELS",
    "REFUSED",
    "UNREAD",
    "Compiled",
    "KVModel",
    "Model",
    "RegisterModel",
    "TicketsModel",
    "Transition",
    "get_model",
]


class _Refused:
    """The type of :data:`REFUSED`."""

    def __repr__(self) -> str:
        return "REFUSED"


#: Returned by a transition when the operation cannot take effect in that state.
REFUSED: Final = _Refused()

#: From a state to the next state, or :data:`REFUSED`.
Transition = Callable[[Hashable], Hashable]


class _Unread:
    """The type of :data:`UNREAD`."""

    def __repr__(self) -> str:
        return "UNREAD"


#: Stands for every written value that no operation of the partition reads.
UNREAD: Final = _Unread()


class Compiled(NamedTuple):
    """An operation compiled for the search."""

    step: Transition
    effect: Hashable
    """Unknown-outcome operations with equal effects are interchangeable."""


class Model(abc.ABC):
    """A sequential specification of one object."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    ignorable_when_unknown: ClassVar[frozenset[str]]

    @abc.abstractmethod
    def initial_state(self) -> Hashable:
        """The state before any operation."""

    @abc.abstractmethod
    def transition(self, op: Operation) -> Transition:
        """Compile ``op`` into its transition function.

        Raises:
            HistoryError: the operation is not one this model knows, or its
                arguments have the wrong type.
        """

    def compile(self, ops: Sequence[Operation]) -> list[Compiled]:
        """Compile the operations of one partition for the search.

        The default compiles each on its own, with effect ``(kind, arg,
        prev)``: whatever the model, two unknown-outcome operations that
        agree on these do the same thing.

        Raises:
            HistoryError: as :meth:`transition`.
        """
        return [Compiled(self.transition(op), (op.kind, op.arg, op.prev)) for op in ops]

    @abc.abstractmethod
    def describe_state(self, state: Hashable) -> str:
        """A phrase for explanations, e.g. ``"the register holds 3"``."""

    def relevant(self, op: Operation) -> bool:
        """Whether the checker must place ``op`` in the linearization.

        Raises:
            HistoryError: ``op.kind`` is not one of this model's kinds.
        """
        if op.kind not in self.kinds:
            raise HistoryError(
                f"model {self.name} has no operation {op.kind!r} "
                f"(it knows {', '.join(sorted(self.kinds))})"
            )
        if op.outcome is Outcome.FAIL:
            return False
        return not (op.outcome is Outcome.UNKNOWN and op.kind in self.ignorable_when_unknown)


def _read(expected: Value) -> Transition:
    def step(state: Hashable) -> Hashable:
        return state if state == expected else REFUSED

    return step


def _write(value: Hashable) -> Transition:
    def step(state: Hashable) -> Hashable:
        return value

    return step


def _cas(op: Operation, new: Hashable) -> Transition:
    prev = op.prev
    if op.outcome is Outcome.UNKNOWN:

        def maybe_swap(state: Hashable) -> Hashable:
            return new if state == prev else state

        return maybe_swap
    if op.result:

        def swap(state: Hashable) -> Hashable:
            return new if state == prev else REFUSED

        return swap

    def mismatch(state: Hashable) -> Hashable:
        return state if state != prev else REFUSED

    return mismatch


def _compile_writes(
    model: RegisterModel | KVModel, ops: Sequence[Operation], observed: set[Value] | None
) -> list[Compiled]:
    """Compile ``ops``, writing :data:`UNREAD` for values outside ``observed``.

    ``observed`` holds every value some operation compares the state with;
    ``None`` turns the reduction off.
    """
    compiled = []
    for op in ops:
        written: Hashable = op.arg
        if observed is not None and op.arg is not None and op.arg not in observed:
            written = UNREAD
        if op.kind in ("write", "put", "delete", "cas"):
            value = None if op.kind == "delete" else written
            step = _cas(op, value) if op.kind == "cas" else _write(value)
            model.relevant(op)
            kind = "cas" if op.kind == "cas" else "write"
            compiled.append(Compiled(step, (kind, value, op.prev)))
        else:
            compiled.append(Compiled(model.transition(op), (op.kind, op.arg, op.prev)))
    return compiled


def _describe_value(value: Hashable) -> str:
    return "a value no operation reads" if value is UNREAD else repr(value)


class RegisterModel(Model):
    """A single register: ``read``, ``write``, ``cas``; it starts empty (nil)."""

    name = "register"
    kinds = frozenset({"read", "write", "cas"})
    ignorable_when_unknown = frozenset({"read"})

    def initial_state(self) -> Hashable:
        return None

    def transition(self, op: Operation) -> Transition:
        self.relevant(op)
        if op.kind == "read":
            return _read(op.result)
        if op.kind == "write":
            return _write(op.arg)
        return _cas(op, op.arg)

    def compile(self, ops: Sequence[Operation]) -> list[Compiled]:
        observed: set[Value] = set()
        for op in ops:
            if op.kind == "read" and op.outcome is Outcome.OK:
                observed.add(op.result)
            elif op.kind == "cas":
                observed.add(op.prev)
        return _compile_writes(self, ops, observed)

    def describe_state(self, state: Hashable) -> str:
        if state is None:
            return "the register is empty"
        return f"the register holds {_describe_value(state)}"


class KVModel(Model):
    """One key of a key-value store (the checker splits a history per key).

    Operations: ``get``, ``put``, ``append`` (string concatenation, an absent
    key counting as ``""``), ``delete`` and ``cas`` (traft's compare-and-set:
    a put that fails when the current value is not ``prev``; ``prev=None``
    expects the key to be absent). A key starts absent; a ``get`` of an absent
    key may be recorded as returning ``None`` or ``""`` (the Jepsen kv
    convention), but a ``get`` that returns ``None`` where ``""`` was put is
    a violation.
    """

    name = "kv"
    kinds = frozenset({"get", "put", "append", "delete", "cas"})
    ignorable_when_unknown = frozenset({"get"})

    def initial_state(self) -> Hashable:
        return None

    def transition(self, op: Operation) -> Transition:
        self.relevant(op)
        if op.kind == "get":
            if op.result is None or op.result == "":
                empty = op.result

                def get_empty(state: Hashable) -> Hashable:
                    return state if state is None or state == empty else REFUSED

                return get_empty
            return _read(op.result)
        if op.kind == "put":
            return _write(op.arg)
        if op.kind == "delete":
            return _write(None)
        if op.kind == "append":
            suffix = op.arg
            if not isinstance(suffix, str):
                raise HistoryError(f"append needs a string argument, not {suffix!r}")

            def append(state: Hashable) -> Hashable:
                if state is None:
                    return suffix
                if isinstance(state, str):
                    return state + suffix
                return REFUSED

            return append
        return _cas(op, op.arg)

    def compile(self, ops: Sequence[Operation]) -> list[Compiled]:
        if any(op.kind == "append" for op in ops):
            return _compile_writes(self, ops, None)  # appends build on every value
        observed: set[Value] = set()
        for op in ops:
            if op.kind == "get" and op.outcome is Outcome.OK:
                observed.add(op.result)
            elif op.kind == "cas":
                observed.add(op.prev)
        return _compile_writes(self, ops, observed)

    def describe_state(self, state: Hashable) -> str:
        if state is None:
            return "the key is absent"
        return f"the key holds {_describe_value(state)}"


class TicketsModel(Model):
    """A ticket dispenser: each ``ticket`` returns a unique, increasing integer.

    The sequential specification is "each ticket is greater than every ticket
    issued before it" (not "exactly one more": tickets taken by operations
    whose outcome is unknown leave gaps). The state is the last ticket issued.
    So a history is linearizable iff its tickets are distinct and a ticket
    that returned before another was called is the smaller one.
    """

    name = "tickets"
    kinds = frozenset({"ticket"})
    ignorable_when_unknown = frozenset({"ticket"})

    def initial_state(self) -> Hashable:
        return None

    def transition(self, op: Operation) -> Transition:
        self.relevant(op)
        number = op.result
        if not isinstance(number, int) or isinstance(number, bool):
            raise HistoryError(f"a ticket must be an integer, not {number!r}")

        def take(state: Hashable) -> Hashable:
            if state is None or number > state:  # type: ignore[operator]
                return number
            return REFUSED

        return take

    def describe_state(self, state: Hashable) -> str:
        return (
            "no ticket has been issued" if state is None else f"the last ticket issued is {state!r}"
        )


MODELS: dict[str, Model] = {m.name: m for m in (RegisterModel(), KVModel(), TicketsModel())}


def get_model(model: Model | str) -> Model:
    """Return ``model`` itself, or the model with that name.

    Raises:
        ValueError: there is no model of that name.
    """
    if isinstance(model, Model):
        return model
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(
            f"unknown model {model!r} (choose from {', '.join(sorted(MODELS))})"
        ) from None
