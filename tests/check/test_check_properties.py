"""Properties of the checker, generated with Hypothesis.

1. Histories made by running a real sequential object, each operation taking
   effect at one instant inside a random (overlapping) interval, are always
   judged linearizable, whatever outcomes the clients learnt.
2. The same histories with one read of a value never written (or one ticket
   handed out twice) are always judged not linearizable.
3. On tiny random histories, the verdict equals a brute-force search over
   every order (an oracle that shares no code with the checker).

The sequential objects here are written independently of ``models.py``.
Example counts come from the Hypothesis profile in force.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traft.check import Operation, Outcome, Value, Verdict, check_history

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
NEVER_WRITTEN = "never-written"

# -- real sequential objects ------------------------------------------------------


class Register:
    def __init__(self) -> None:
        self.value: Value = None

    def draw_op(self, draw: Any) -> tuple[str, dict[str, Value]]:
        kind = draw(st.sampled_from(["read", "write", "cas"]))
        if kind == "write":
            return kind, {"arg": draw(st.integers(0, 4))}
        if kind == "cas":
            return kind, {
                "prev": draw(st.none() | st.integers(0, 4)),
                "arg": draw(st.integers(0, 4)),
            }
        return kind, {}

    def apply(self, kind: str, args: dict[str, Value], key: str | None) -> Value:
        if kind == "read":
            return self.value
        if kind == "write":
            self.value = args["arg"]
            return None
        swapped = self.value == args["prev"]
        if swapped:
            self.value = args["arg"]
        return swapped


class Store:
    KEYS = ("a", "b", "c")

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def draw_op(self, draw: Any) -> tuple[str, dict[str, Value]]:
        kind = draw(st.sampled_from(["get", "put", "append", "delete", "cas"]))
        value = draw(st.sampled_from(["x", "y", "zz", ""]))
        if kind in ("put", "append"):
            return kind, {"arg": value}
        if kind == "cas":
            return kind, {"prev": draw(st.none() | st.sampled_from(["x", "y", "xy"])), "arg": value}
        return kind, {}

    def apply(self, kind: str, args: dict[str, Value], key: str | None) -> Value:
        assert key is not None
        current = self.data.get(key)
        if kind == "get":
            return current
        if kind == "put":
            self.data[key] = str(args["arg"])
        elif kind == "append":
            self.data[key] = (current or "") + str(args["arg"])
        elif kind == "delete":
            self.data.pop(key, None)
        else:
            swapped = current == args["prev"]
            if swapped:
                self.data[key] = str(args["arg"])
            return swapped
        return None


class Dispenser:
    def __init__(self) -> None:
        self.last = 0
        self.gap = st.integers(1, 3)

    def draw_op(self, draw: Any) -> tuple[str, dict[str, Value]]:
        return "ticket", {"gap": draw(self.gap)}

    def apply(self, kind: str, args: dict[str, Value], key: str | None) -> Value:
        gap = args["gap"]
        assert isinstance(gap, int)
        self.last += gap
        return self.last


OBJECTS = {"register": Register, "kv": Store, "tickets": Dispenser}


@st.composite
def executions(draw: Any, model: str) -> list[Operation]:
    """Run the real object; operation i takes effect at instant 10 i + 5."""
    obj = OBJECTS[model]()
    ops = []
    for i in range(draw(st.integers(0, 30))):
        point = 10 * i + 5
        call = point - draw(st.integers(0, 40))
        ret = point + draw(st.integers(0, 40))
        kind, args = obj.draw_op(draw)
        key = draw(st.sampled_from(Store.KEYS)) if model == "kv" else None
        fate = draw(st.sampled_from(["ok", "ok", "ok", "ok", "unknown", "never", "fail"]))
        result = obj.apply(kind, args, key) if fate in ("ok", "unknown") else None
        outcome = {"ok": Outcome.OK, "fail": Outcome.FAIL}.get(fate, Outcome.UNKNOWN)
        if outcome is Outcome.UNKNOWN and draw(st.booleans()):
            ret = None  # never returned, rather than timed out at ret
        if model == "tickets":
            args = {}
        ops.append(
            Operation(
                process=draw(st.integers(0, 5)),
                call=call,
                ret=ret,
                kind=kind,
                key=key,
                arg=args.get("arg"),
                prev=args.get("prev"),
                result=result if outcome is Outcome.OK else None,
                outcome=outcome,
            )
        )
    return draw(st.permutations(ops))  # the input order must not matter


@SETTINGS
@given(st.sampled_from(sorted(OBJECTS)).flatmap(lambda m: st.tuples(st.just(m), executions(m))))
def test_real_executions_are_linearizable(case: tuple[str, list[Operation]]) -> None:
    model, ops = case
    result = check_history(ops, model, timeout_s=30)
    assert result.verdict is Verdict.LINEARIZABLE, result.explanation


@SETTINGS
@given(
    st.sampled_from(sorted(OBJECTS)).flatmap(lambda m: st.tuples(st.just(m), executions(m))),
    st.data(),
)
def test_corrupted_executions_are_not_linearizable(
    case: tuple[str, list[Operation]], data: st.DataObject
) -> None:
    model, ops = case
    call = data.draw(st.integers(0, 10 * len(ops) + 10), label="call")
    ret = call + data.draw(st.integers(0, 40), label="length")
    if model == "tickets":
        taken = sorted({o.result for o in ops if o.outcome is Outcome.OK}, key=str)
        number = data.draw(st.sampled_from(taken), label="duplicate") if taken else 7
        bad = [Operation(process=9, call=call, ret=ret, kind="ticket", result=number)]
        if not taken:
            bad.append(Operation(process=8, call=call, ret=ret, kind="ticket", result=number))
    elif model == "kv":
        key = data.draw(st.sampled_from(Store.KEYS), label="key")
        bad = [Operation(process=9, call=call, ret=ret, kind="get", key=key, result=NEVER_WRITTEN)]
    else:
        bad = [Operation(process=9, call=call, ret=ret, kind="read", result=99)]
    result = check_history(ops + bad, model, timeout_s=30)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.violation is not None
    assert result.violation.explain() == result.explanation


# -- differential test against brute force -------------------------------------------


def _brute_force(ops: list[Operation], model: str) -> bool:
    """Is there an order of the completed operations plus some of the unknown
    ones, respecting real time, that the sequential object accepts?"""
    completed = [o for o in ops if o.outcome is Outcome.OK]
    # Unknown reads change nothing; an unknown ticket could only raise the counter.
    unknown = [
        o for o in ops if o.outcome is Outcome.UNKNOWN and o.kind not in ("read", "get", "ticket")
    ]
    for size in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, size):
            for order in itertools.permutations(completed + list(chosen)):
                if _respects_real_time(order) and _accepted(order, model):
                    return True
    return False


def _respects_real_time(order: tuple[Operation, ...]) -> bool:
    for i, later in enumerate(order):
        for earlier in order[i + 1 :]:
            # `earlier` is placed after `later`: wrong if it returned before `later` was called.
            if (
                earlier.outcome is Outcome.OK
                and earlier.ret is not None
                and earlier.ret < later.call
            ):
                return False
    return True


def _accepted(order: tuple[Operation, ...], model: str) -> bool:
    value: Any = None
    for o in order:
        if model == "tickets":
            if value is not None and not o.result > value:
                return False
            value = o.result
        elif o.kind == "read":
            if o.result != value:
                return False
        elif o.kind == "get":
            if not (o.result == value or (value is None and o.result == "")):
                return False
        elif o.kind in ("write", "put"):
            value = o.arg
        elif o.kind == "delete":
            value = None
        elif o.kind == "append":
            value = (value or "") + str(o.arg)
        elif o.outcome is Outcome.UNKNOWN:
            if value == o.prev:
                value = o.arg
        elif o.result is True:
            if value != o.prev:
                return False
            value = o.arg
        elif value == o.prev:
            return False
    return True


@st.composite
def random_histories(draw: Any) -> tuple[str, list[Operation]]:
    model = draw(st.sampled_from(["register", "kv", "tickets"]))
    kv_appends = draw(st.booleans())
    ops = []
    for process in range(draw(st.integers(0, 6))):
        call = draw(st.integers(0, 12))
        ret = call + draw(st.integers(0, 6))
        outcome = draw(st.sampled_from([Outcome.OK, Outcome.OK, Outcome.OK, Outcome.UNKNOWN]))
        value = st.integers(0, 2)
        if model == "tickets":
            kind, arg, prev, result = "ticket", None, None, draw(st.integers(0, 4))
        elif model == "kv":
            kinds = ["get", "put", "delete", "cas"] + (["append"] if kv_appends else [])
            kind = draw(st.sampled_from(kinds))
            text = st.sampled_from(["a", "b", ""])
            arg = draw(text) if kind in ("put", "append", "cas") else None
            prev = draw(st.none() | text) if kind == "cas" else None
            if kind == "get":
                result = draw(st.none() | st.sampled_from(["a", "b", "", "ab", "ba"]))
            elif kind == "cas":
                result = draw(st.booleans())
            else:
                result = None
        else:
            kind = draw(st.sampled_from(["read", "write", "cas"]))
            arg = draw(value) if kind != "read" else None
            prev = draw(st.none() | value) if kind == "cas" else None
            if kind == "read":
                result = draw(st.none() | value)
            elif kind == "cas":
                result = draw(st.booleans())
            else:
                result = None
        if outcome is Outcome.UNKNOWN:
            result = None
        ops.append(
            Operation(
                process=process,
                call=call,
                ret=ret,
                kind=kind,
                key="k" if model == "kv" else None,
                arg=arg,
                prev=prev,
                result=result,
                outcome=outcome,
            )
        )
    return model, ops


@SETTINGS
@given(random_histories())
def test_agrees_with_brute_force(case: tuple[str, list[Operation]]) -> None:
    model, ops = case
    result = check_history(ops, model, timeout_s=30)
    assert result.verdict is not Verdict.UNKNOWN
    assert result.linearizable == _brute_force(ops, model), result.explanation
