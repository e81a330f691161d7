"""Hand-made histories for each model, unknown outcomes included.

Each test names the rule it pins down. Times are small integers; an
operation is ``[call, ret]``, and ``ret=None`` means it never returned.
"""

from __future__ import annotations

import pytest

from traft.check import HistoryError, Operation, Outcome, Value, Verdict, check_history

OK, FAIL, UNKNOWN = Outcome.OK, Outcome.FAIL, Outcome.UNKNOWN


def op(
    kind: str,
    call: float,
    ret: float | None,
    *,
    arg: Value = None,
    prev: Value = None,
    result: Value = None,
    key: str | None = None,
    outcome: Outcome | None = None,
    process: int = 0,
) -> Operation:
    if outcome is None:
        outcome = UNKNOWN if ret is None else OK
    return Operation(
        process=process,
        call=call,
        ret=ret,
        kind=kind,
        key=key,
        arg=arg,
        prev=prev,
        result=result,
        outcome=outcome,
    )


def verdict(ops: list[Operation], model: str) -> Verdict:
    return check_history(ops, model, timeout_s=10).verdict


LIN, NOT = Verdict.LINEARIZABLE, Verdict.NOT_LINEARIZABLE


# -- register ------------------------------------------------------------------


REGISTER_CASES: dict[str, tuple[list[Operation], Verdict]] = {
    "empty history": ([], LIN),
    "read of the empty register is nil": ([op("read", 0, 1, result=None)], LIN),
    "write then read it": (
        [op("write", 0, 1, arg=1), op("read", 2, 3, result=1)],
        LIN,
    ),
    "read of a value never written": (
        [op("write", 0, 1, arg=1), op("read", 2, 3, result=2)],
        NOT,
    ),
    "read nil after a completed write": (
        [op("write", 0, 1, arg=1), op("read", 2, 3, result=None)],
        NOT,
    ),
    "read overlapping a write may see it": (
        [op("write", 0, 10, arg=1), op("read", 1, 2, result=1)],
        LIN,
    ),
    "read overlapping a write may miss it": (
        [op("write", 0, 10, arg=1), op("read", 1, 2, result=None)],
        LIN,
    ),
    "stale read after a newer write completed": (
        [op("write", 0, 1, arg=1), op("write", 2, 3, arg=2), op("read", 4, 5, result=1)],
        NOT,
    ),
    "two readers cannot see the new value then the old one": (
        [
            op("write", 0, 1, arg=1),
            op("write", 2, 20, arg=2),
            op("read", 3, 4, result=2, process=1),
            op("read", 5, 6, result=1, process=2),
        ],
        NOT,
    ),
    "equal times overlap: a read called as a write returns may precede it": (
        [op("write", 0, 5, arg=1), op("read", 5, 6, result=None)],
        LIN,
    ),
    "cas that matched": (
        [
            op("write", 0, 1, arg=1),
            op("cas", 2, 3, prev=1, arg=2, result=True),
            op("read", 4, 5, result=2),
        ],
        LIN,
    ),
    "cas cannot succeed when the value differs": (
        [op("write", 0, 1, arg=1), op("cas", 2, 3, prev=5, arg=2, result=True)],
        NOT,
    ),
    "cas mismatch is a completed operation that saw another value": (
        [op("write", 0, 1, arg=1), op("cas", 2, 3, prev=5, arg=2, result=False)],
        LIN,
    ),
    "cas cannot report a mismatch when the value matched": (
        [op("write", 0, 1, arg=1), op("cas", 2, 3, prev=1, arg=2, result=False)],
        NOT,
    ),
    "a failed cas changes nothing": (
        [
            op("write", 0, 1, arg=1),
            op("cas", 2, 3, prev=5, arg=2, result=False),
            op("read", 4, 5, result=2),
        ],
        NOT,
    ),
    # Unknown outcomes.
    "unknown write that took effect": (
        [op("write", 0, None, arg=1), op("read", 5, 6, result=1)],
        LIN,
    ),
    "unknown write that never took effect": (
        [op("write", 0, None, arg=1), op("read", 100, 101, result=None)],
        LIN,
    ),
    "unknown write takes effect once: seen then unseen is a violation": (
        [op("write", 0, None, arg=1), op("read", 5, 6, result=1), op("read", 7, 8, result=None)],
        NOT,
    ),
    "unknown write may take effect late: unseen then seen": (
        [op("write", 0, None, arg=1), op("read", 5, 6, result=None), op("read", 7, 8, result=1)],
        LIN,
    ),
    "unknown write cannot take effect before its call": (
        [op("read", 0, 1, result=1), op("write", 2, None, arg=1)],
        NOT,
    ),
    "a timed-out write may take effect after the client gave up": (
        [
            op("write", 0, 3, arg=1, outcome=UNKNOWN),
            op("read", 4, 5, result=None),
            op("read", 6, 7, result=1),
        ],
        LIN,
    ),
    "a failed write never took effect": (
        [op("write", 0, 1, arg=1, outcome=FAIL), op("read", 2, 3, result=1)],
        NOT,
    ),
    "a read with unknown outcome constrains nothing": (
        [op("write", 0, 1, arg=1), op("read", 2, 3, result=7, outcome=UNKNOWN)],
        LIN,
    ),
    "unknown cas that swapped": (
        [
            op("write", 0, 1, arg=0),
            op("cas", 2, None, prev=0, arg=1),
            op("read", 4, 5, result=1),
        ],
        LIN,
    ),
    "unknown cas cannot swap from a value the register never held": (
        [
            op("write", 0, 1, arg=5),
            op("cas", 2, None, prev=0, arg=1),
            op("read", 4, 5, result=1),
        ],
        NOT,
    ),
}


@pytest.mark.parametrize("name", list(REGISTER_CASES))
def test_register(name: str) -> None:
    ops, expected = REGISTER_CASES[name]
    assert verdict(ops, "register") is expected


# -- kv --------------------------------------------------------------------------


KV_CASES: dict[str, tuple[list[Operation], Verdict]] = {
    "keys are independent": (
        [op("put", 0, 1, key="x", arg="1"), op("get", 2, 3, key="y", result="")],
        LIN,
    ),
    "get of an absent key may be '' (Jepsen) or None (traft)": (
        [op("get", 0, 1, key="x", result=""), op("get", 2, 3, key="x", result=None)],
        LIN,
    ),
    "get None where '' was put": (
        [op("put", 0, 1, key="x", arg=""), op("get", 2, 3, key="x", result=None)],
        NOT,
    ),
    "get '' where '' was put": (
        [op("put", 0, 1, key="x", arg=""), op("get", 2, 3, key="x", result="")],
        LIN,
    ),
    "concurrent appends in either order": (
        [
            op("append", 0, 5, key="x", arg="a", process=1),
            op("append", 1, 6, key="x", arg="b", process=2),
            op("get", 7, 8, key="x", result="ba"),
        ],
        LIN,
    ),
    "append order must follow real time": (
        [
            op("append", 0, 1, key="x", arg="a"),
            op("append", 2, 3, key="x", arg="b"),
            op("get", 4, 5, key="x", result="ba"),
        ],
        NOT,
    ),
    "a get missing a completed append": (
        [
            op("append", 0, 1, key="x", arg="a"),
            op("append", 2, 3, key="x", arg="b"),
            op("get", 4, 5, key="x", result="a"),
        ],
        NOT,
    ),
    "append to an absent key starts from ''": (
        [op("append", 0, 1, key="x", arg="a"), op("get", 2, 3, key="x", result="a")],
        LIN,
    ),
    "delete makes the key absent": (
        [
            op("put", 0, 1, key="x", arg="1"),
            op("delete", 2, 3, key="x"),
            op("get", 4, 5, key="x", result=None),
        ],
        LIN,
    ),
    "a get after delete cannot see the old value": (
        [
            op("put", 0, 1, key="x", arg="1"),
            op("delete", 2, 3, key="x"),
            op("get", 4, 5, key="x", result="1"),
        ],
        NOT,
    ),
    "cas with prev None creates an absent key": (
        [
            op("cas", 0, 1, key="x", prev=None, arg="a", result=True),
            op("get", 2, 3, key="x", result="a"),
        ],
        LIN,
    ),
    "cas with prev None cannot succeed on a present key": (
        [
            op("put", 0, 1, key="x", arg="z"),
            op("cas", 2, 3, key="x", prev=None, arg="a", result=True),
        ],
        NOT,
    ),
    "cas fails when current != prev": (
        [
            op("put", 0, 1, key="x", arg="z"),
            op("cas", 2, 3, key="x", prev="y", arg="a", result=False),
            op("get", 4, 5, key="x", result="z"),
        ],
        LIN,
    ),
    "two cas from the same value cannot both succeed": (
        [
            op("put", 0, 1, key="x", arg="0"),
            op("cas", 2, 10, key="x", prev="0", arg="1", result=True, process=1),
            op("cas", 3, 11, key="x", prev="0", arg="2", result=True, process=2),
        ],
        NOT,
    ),
    "unknown put on one key, violation on another": (
        [
            op("put", 0, None, key="x", arg="1"),
            op("put", 0, 1, key="y", arg="1"),
            op("get", 2, 3, key="y", result="2"),
        ],
        NOT,
    ),
    "unknown delete may take effect later": (
        [
            op("put", 0, 1, key="x", arg="1"),
            op("delete", 2, None, key="x"),
            op("get", 3, 4, key="x", result="1"),
            op("get", 5, 6, key="x", result=None),
        ],
        LIN,
    ),
    "a failed put is ignored": (
        [
            op("put", 0, 1, key="x", arg="1", outcome=FAIL),
            op("get", 2, 3, key="x", result="1"),
        ],
        NOT,
    ),
}


@pytest.mark.parametrize("name", list(KV_CASES))
def test_kv(name: str) -> None:
    ops, expected = KV_CASES[name]
    assert verdict(ops, "kv") is expected


# -- tickets --------------------------------------------------------------------------


def ticket(call: float, ret: float | None, number: int | None, **kw: object) -> Operation:
    return op("ticket", call, ret, result=number, **kw)  # type: ignore[arg-type]


TICKET_CASES: dict[str, tuple[list[Operation], Verdict]] = {
    "sequential tickets increase": ([ticket(0, 1, 1), ticket(2, 3, 2), ticket(4, 5, 3)], LIN),
    "gaps are allowed": ([ticket(0, 1, 1), ticket(2, 3, 5), ticket(4, 5, 9)], LIN),
    "a later ticket cannot be smaller": ([ticket(0, 1, 2), ticket(2, 3, 1)], NOT),
    "concurrent tickets in any order": ([ticket(0, 3, 2), ticket(1, 2, 1)], LIN),
    "tickets are unique even when concurrent": ([ticket(0, 3, 4), ticket(1, 2, 4)], NOT),
    "tickets are unique when sequential": ([ticket(0, 1, 4), ticket(2, 3, 4)], NOT),
    "unknown ticket ops leave gaps": (
        [ticket(0, 1, 5), ticket(2, None, None), ticket(3, 4, 7)],
        LIN,
    ),
    "unknown ticket ops cannot excuse a decrease": (
        [ticket(0, 1, 5), ticket(2, None, None), ticket(3, 4, 4)],
        NOT,
    ),
    "failed ticket ops are ignored": (
        [ticket(0, 1, 5), ticket(2, 3, None, outcome=FAIL), ticket(4, 5, 6)],
        LIN,
    ),
    "order through a chain of overlaps": (
        # a < b in real time, c overlaps both: c may sit between them.
        [ticket(0, 2, 1), ticket(5, 7, 3), ticket(1, 6, 2)],
        LIN,
    ),
    "each key is its own counter": (
        [ticket(0, 1, 5, key="a"), ticket(2, 3, 1, key="b")],
        LIN,
    ),
}


@pytest.mark.parametrize("name", list(TICKET_CASES))
def test_tickets(name: str) -> None:
    ops, expected = TICKET_CASES[name]
    assert verdict(ops, "tickets") is expected


# -- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "bad", "message"),
    [
        ("register", op("get", 0, 1, key="x", result=""), "no operation 'get'"),
        ("kv", op("read", 0, 1), "no operation 'read'"),
        ("tickets", op("ticket", 0, 1, result="seven"), "integer"),
        ("tickets", op("ticket", 0, 1, result=True), "integer"),
        ("register", op("cas", 0, 1, prev=1, arg=2, result=None), "true/false"),
        ("register", op("write", 0, None, arg=1, outcome=OK), "needs a return time"),
        ("register", op("write", 5, 1, arg=1), "before its call"),
        ("register", op("frobnicate", 0, 1), "unknown operation kind"),
        ("kv", op("append", 0, 1, key="x", arg=3), "string"),
    ],
)
def test_invalid_operations_raise(model: str, bad: Operation, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        check_history([bad], model)


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        check_history([], "queue")
