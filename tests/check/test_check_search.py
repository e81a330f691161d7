"""The search itself: explanations, the time budget, partitions, the recorder."""

from __future__ import annotations

import time

from traft.check import History, Operation, Outcome, Verdict, Violation, check_history


def write(call: float, ret: float | None, value: int, process: int = 0) -> Operation:
    return Operation(
        process=process,
        call=call,
        ret=ret,
        kind="write",
        arg=value,
        outcome=Outcome.OK if ret is not None else Outcome.UNKNOWN,
    )


def read(call: float, ret: float, value: int | None, process: int = 0) -> Operation:
    return Operation(process=process, call=call, ret=ret, kind="read", result=value)


def test_explanation_names_prefix_state_and_blocked_operation() -> None:
    ops = [write(0, 1, 1), write(2, 3, 2), read(4, 5, 1, process=7)]
    result = check_history(ops, "register")
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    v = result.violation
    assert v is not None
    assert v.prefix == (ops[0], ops[1])
    assert v.blocked == ops[2]
    assert v.state == "the register holds 2"
    text = result.explanation
    assert "Longest linearizable prefix found: 2 operations" in text
    assert "after which the register holds 2." in text
    assert "p7 read() = 1 [4, 5] must take effect before it returns at 5" in text
    assert "cannot take effect when the register holds 2" in text


def test_explanation_lists_operations_that_could_go_next() -> None:
    ops = [write(0, 10, 1, process=1), write(0, 10, 2, process=2), read(1, 2, 3, process=3)]
    result = check_history(ops, "register")
    assert result.violation is not None
    assert result.violation.blocked == ops[2]
    assert result.violation.open_ops[0] == (ops[2], False)
    # Candidates the model accepts are those whose every continuation was refuted.
    violation = Violation(
        key=None,
        operations=3,
        prefix=(),
        state="the register is empty",
        blocked=ops[2],
        open_ops=((ops[2], False), (ops[0], True)),
    )
    text = violation.explain()
    assert "Longest linearizable prefix found: 0 operations." in text
    assert "p1 write(1) = ok [0, 10]: possible next, but every continuation after it fails" in text


def test_violation_reports_its_key() -> None:
    ops = [
        Operation(process=0, call=0, ret=1, kind="put", key="good", arg="1"),
        Operation(process=0, call=0, ret=1, kind="put", key="bad", arg="1"),
        Operation(process=0, call=2, ret=3, kind="get", key="bad", result="2"),
    ]
    result = check_history(ops, "kv")
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.violation is not None and result.violation.key == "bad"
    assert "on key 'bad'" in result.explanation
    assert result.partitions == 2


def _hard_history(n: int) -> list[Operation]:
    """n concurrent writes of unknown outcome, n concurrent reads each seeing
    one of them, then a read of a value none wrote.

    Every value is read, and every order of writes and reads must be refuted
    before the last read is: far beyond any budget for n = 20.
    """
    ops = [write(0, None, i, process=i) for i in range(n)]
    ops += [read(1, 100, i, process=100 + i) for i in range(n)]
    ops.append(read(200, 201, -1, process=999))
    return ops


def test_time_budget_gives_unknown() -> None:
    started = time.monotonic()
    result = check_history(_hard_history(20), "register", timeout_s=0.3)
    elapsed = time.monotonic() - started
    assert result.verdict is Verdict.UNKNOWN
    assert not result.linearizable
    assert elapsed < 2.0
    assert "did not finish within 0.3 s" in result.explanation


def test_violation_on_one_key_beats_a_timeout_on_another() -> None:
    hard = [
        Operation(
            process=o.process,
            call=o.call,
            ret=o.ret,
            kind={"write": "put", "read": "get"}[o.kind],
            key="a",
            arg=None if o.arg is None else str(o.arg),
            result=None if o.result is None else str(o.result),
            outcome=o.outcome,
        )
        for o in _hard_history(20)
    ]
    bad = [
        Operation(process=1, call=0, ret=1, kind="put", key="b", arg="x"),
        Operation(process=1, call=2, ret=3, kind="get", key="b", result="y"),
    ]
    result = check_history(hard + bad, "kv", timeout_s=0.3)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.violation is not None and result.violation.key == "b"


def test_unknown_operations_alone_are_linearizable() -> None:
    ops = [write(0, None, i) for i in range(50)]
    assert check_history(ops, "register").verdict is Verdict.LINEARIZABLE


def test_result_counts_only_relevant_operations() -> None:
    ops = [
        write(0, 1, 1),
        Operation(process=0, call=2, ret=3, kind="write", arg=2, outcome=Outcome.FAIL),
        Operation(process=0, call=2, ret=None, kind="read", outcome=Outcome.UNKNOWN),
        read(4, 5, 1),
    ]
    result = check_history(ops, "register")
    assert result.verdict is Verdict.LINEARIZABLE
    assert result.operations == 2


def test_history_recorder_keeps_real_time_order() -> None:
    h = History()
    a = h.invoke(1, "put", key="x", arg="1")
    h.ok(a)
    b = h.invoke(2, "get", key="x")
    c = h.invoke(3, "put", key="x", arg="2")
    h.ok(b, result="1")
    h.info(c)
    d = h.invoke(4, "delete", key="x")
    h.fail(d)
    e = h.invoke(5, "cas", key="x", prev="2", arg="3")
    ops = h.operations()
    assert len(h) == 5
    assert [o.process for o in ops] == [1, 2, 3, 4, 5]
    assert [(o.call, o.ret) for o in ops] == [(1, 2), (3, 5), (4, 6), (7, 8), (9, None)]
    assert [o.outcome for o in ops] == [
        Outcome.OK,
        Outcome.OK,
        Outcome.UNKNOWN,
        Outcome.FAIL,
        Outcome.UNKNOWN,
    ]
    assert ops[1].result == "1"
    assert e == 4
    assert check_history(h, "kv").verdict is Verdict.LINEARIZABLE


def test_history_recorder_uses_the_given_clock() -> None:
    now = [0.0]
    h = History(clock=lambda: now[0])
    a = h.invoke(1, "write", arg=1)
    now[0] = 5.0
    h.ok(a)
    (only,) = h.operations()
    assert (only.call, only.ret) == (0.0, 5.0)


def test_history_recorder_rejects_bad_use() -> None:
    import pytest

    from traft.check import HistoryError

    h = History()
    with pytest.raises(HistoryError, match="unknown operation kind"):
        h.invoke(1, "frob")
    a = h.invoke(1, "ticket")
    h.ok(a, result=3)
    with pytest.raises(HistoryError, match="not pending"):
        h.ok(a, result=4)
    b = h.invoke(1, "ticket")
    with pytest.raises(HistoryError, match="integer"):
        h.ok(b, result="x")


def test_describe() -> None:
    assert write(0, 1, 3, process=2).describe() == "p2 write(3) = ok [0, 1]"
    assert write(0.5, None, 3).describe() == "p0 write(3) = ? (outcome unknown) [0.5, ...]"
    cas = Operation(process=1, call=0, ret=1, kind="cas", key="k", prev=None, arg="v", result=False)
    assert cas.describe() == "p1 cas('k', nil -> 'v') = mismatch [0, 1]"
    get = Operation(process=1, call=0, ret=1, kind="get", key="k", result="v")
    assert get.describe() == "p1 get('k') = 'v' [0, 1]"


def test_interchangeable_unknown_operations_are_used_in_call_order() -> None:
    """20 unknown write(1)s and 20 unknown write(2)s, both values read: without
    the symmetry rule the search would try every subset of them (alternating
    1, 2, 1, ... never makes one a no-op) before refuting the read of 3."""
    ops = [write(i, None, 1 + i % 2, process=i) for i in range(40)]
    ops += [read(0, 200, 1, process=97), read(0, 200, 2, process=98)]
    ops.append(read(300, 301, 3, process=99))
    result = check_history(ops, "register", timeout_s=5)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.states < 20_000


def test_unread_values_are_merged() -> None:
    """Unknown writes of values nobody reads all lead to one state."""
    ops = [write(i, None, 1000 + i, process=i) for i in range(60)]
    ops += [write(0, 1, 1, process=97), read(100, 101, 1, process=98)]
    ops.append(read(102, 103, 2, process=99))
    result = check_history(ops, "register", timeout_s=5)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.states < 1000


def test_compile_writes_unread_values_as_one_sentinel() -> None:
    from traft.check.models import UNREAD, KVModel, RegisterModel

    ops = [write(0, 1, 5), write(0, 1, 6), read(2, 3, 6)]
    compiled = RegisterModel().compile(ops)
    assert compiled[0].step(None) is UNREAD
    assert compiled[1].step(None) == 6
    assert compiled[0].effect == ("write", UNREAD, None)

    def kv(kind: str, arg: str | None = None, result: str | None = None) -> Operation:
        return Operation(process=0, call=0, ret=1, kind=kind, key="k", arg=arg, result=result)

    with_append = [kv("put", "x"), kv("append", "y"), kv("get", result="xy")]
    assert KVModel().compile(with_append)[0].step(None) == "x"  # appends read every value
    without = [kv("put", "x"), kv("get", result="z")]
    assert KVModel().compile(without)[0].step(None) is UNREAD


def test_explanation_names_the_concrete_value_of_an_unread_state() -> None:
    ops = [write(0, 1, 7), read(2, 3, 8)]
    result = check_history(ops, "register")
    assert "after which the register holds 7." in result.explanation


def test_unknown_operations_that_change_nothing_are_not_tried() -> None:
    """60 unknown cas from a value the register never holds again: without the
    no-op rule every subset of them would be a separate cache entry."""
    ops = [write(0, 1, 5, process=97)]
    ops += [
        Operation(
            process=i,
            call=2 + i,
            ret=None,
            kind="cas",
            prev=5,
            arg=6 + i % 2,
            outcome=Outcome.UNKNOWN,
        )
        for i in range(60)
    ]
    ops += [write(1, 2, 7, process=98), read(100, 101, 7, process=98), read(102, 103, 9)]
    result = check_history(ops, "register", timeout_s=5)
    assert result.verdict is Verdict.NOT_LINEARIZABLE
    assert result.states < 1000
