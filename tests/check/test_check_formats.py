"""Parsers and the writer: traft JSON lines, Jepsen etcd logs, kv EDN lines."""

from __future__ import annotations

import io
import json

import pytest

from traft.check import FormatError, Operation, Outcome, parse_history, write_history
from traft.check.formats import detect_format, dump_operation, parse_traft

ETCD = (
    "2015-01-01 noise line that is skipped\n"
    "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
    "INFO  jepsen.util - 1\t:invoke\t:write\t4\n"
    "INFO  jepsen.util - 2\t:invoke\t:cas\t[4 0]\n"
    "INFO  jepsen.util - 0\t:ok\t:read\tnil\n"
    "INFO  jepsen.util - 1\t:ok\t:write\t4\n"
    "INFO  jepsen.util - 2\t:fail\t:cas\t[4 0]\n"
    "INFO  jepsen.util - 3\t:invoke\t:cas\t[4 1]\n"
    "INFO  jepsen.util - 3\t:ok\t:cas\t[4 1]\n"
    "INFO  jepsen.util - 4\t:invoke\t:read\tnil\n"
    "INFO  jepsen.util - 4\t:fail\t:read\t:timed-out\n"
    "INFO  jepsen.util - 5\t:invoke\t:write\t2\n"
    "INFO  jepsen.util - 5\t:info\t:write\t:timed-out\n"
    "INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n"
    "INFO  jepsen.util - 6\t:invoke\t:read\tnil\n"
    "INFO  jepsen.util - 6\t:ok\t:read\t1\n"
    "INFO  jepsen.util - 7\t:invoke\t:cas\t[1 3]\n"
)


def test_jepsen_etcd_mapping() -> None:
    ops = parse_history(ETCD, "jepsen-etcd")
    got = [(o.process, o.kind, o.call, o.ret, o.prev, o.arg, o.result, o.outcome) for o in ops]
    assert got == [
        (0, "read", 2, 5, None, None, None, Outcome.OK),
        (1, "write", 3, 6, None, 4, None, Outcome.OK),
        (2, "cas", 4, 7, 4, 0, False, Outcome.OK),  # :fail cas = completed mismatch
        (3, "cas", 8, 9, 4, 1, True, Outcome.OK),
        (4, "read", 10, 11, None, None, None, Outcome.UNKNOWN),  # timed-out read
        (5, "write", 12, 13, None, 2, None, Outcome.UNKNOWN),  # :info
        (6, "read", 15, 16, None, None, 1, Outcome.OK),
        (7, "cas", 17, None, 1, 3, None, Outcome.UNKNOWN),  # open at the end
    ]
    assert all(o.key is None for o in ops)
    assert detect_format(ETCD) == "jepsen-etcd"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "separator", [" ", "  ", " \t", "\t "], ids=["space", "spaces", "space-tab", "tab-space"]
)
def test_jepsen_etcd_fields_may_be_separated_by_any_whitespace(separator: str) -> None:
    """Issue 10 bug 9: a log whose fields are separated by spaces instead of
    tabs was refused ("no Jepsen operation lines found"); the format allows
    any run of whitespace between the fields."""
    spaced = ETCD.replace("\t", separator)
    assert "\t" not in spaced or "\t" in separator
    assert detect_format(spaced) == "jepsen-etcd"
    assert parse_history(spaced, "jepsen-etcd") == parse_history(ETCD, "jepsen-etcd")
    assert parse_history(spaced) == parse_history(ETCD, "jepsen-etcd")


@pytest.mark.timeout(30)
def test_jepsen_etcd_cas_pair_may_hold_any_whitespace() -> None:
    text = "INFO  jepsen.util - 2 :invoke :cas [4   0]\nINFO  jepsen.util - 2 :ok :cas [4\t0]\n"
    (op,) = parse_history(text, "jepsen-etcd")
    assert (op.kind, op.prev, op.arg, op.result, op.outcome) == ("cas", 4, 0, True, Outcome.OK)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("INFO  jepsen.util - 0\t:ok\t:read\t3\n", r"line 1: process 0 completes a read"),
        (
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n",
            r"line 2: process 0 invokes read while its read of line 1",
        ),
        (
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:write\t1\n",
            r"line 2: process 0 completes write but invoked read on line 1",
        ),
        ("INFO  jepsen.util - 0\t:invoke\t:write\tx\n", r"line 1: expected an integer"),
        ("INFO  jepsen.util - 0\t:invoke\t:cas\t[1]\n", r"line 1: expected \[from to\]"),
        ("hello\nworld\n", "no Jepsen operation lines"),
    ],
)
def test_jepsen_etcd_errors(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_history(text, "jepsen-etcd")


EDN = """\
{:process 0, :type :invoke, :f :get, :key "a", :value nil}
{:process 1, :type :invoke, :f :append, :key "a", :value "x 1 0 y"}
{:process 0, :type :ok, :f :get, :key "a", :value ""}
{:process 1, :type :ok, :f :append, :key "a", :value "x 1 0 y"}
{:process 2 :type :invoke :f :put :key "b" :value "say \\"hi\\""}
{:process 2, :type :info, :f :put, :key "b", :value "say \\"hi\\""}

{:process 3, :type :invoke, :f :put, :key "c", :value "v"}
{:process 3, :type :fail, :f :put, :key "c", :value "v"}
{:process 4, :type :invoke, :f :get, :key "c", :value nil}
"""


def test_edn_kv_mapping() -> None:
    ops = parse_history(EDN, "edn-kv")
    got = [(o.process, o.kind, o.key, o.call, o.ret, o.arg, o.result, o.outcome) for o in ops]
    assert got == [
        (0, "get", "a", 1, 3, None, "", Outcome.OK),
        (1, "append", "a", 2, 4, "x 1 0 y", None, Outcome.OK),
        (2, "put", "b", 5, 6, 'say "hi"', None, Outcome.UNKNOWN),
        (3, "put", "c", 8, 9, "v", None, Outcome.FAIL),
        (4, "get", "c", 10, None, None, None, Outcome.UNKNOWN),
    ]
    assert detect_format(EDN) == "edn-kv"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{:process 0, :type :invoke, :f :get, :key "a"', "one EDN map"),
        ('{:process 0, :type :invoke, :f :get, :key "a", :value [1 2]}', "unreadable EDN"),
        ('{:process "0", :type :invoke, :f :get, :key "a", :value nil}', ":process"),
        ('{:process 0, :type :begin, :f :get, :key "a", :value nil}', ":type"),
        ('{:process 0, :type :invoke, :f :cas, :key "a", :value nil}', ":f"),
        ("{:process 0, :type :invoke, :f :get, :key 1, :value nil}", ":key"),
        ('{:process 0, :type :invoke, :f :get, :key "a", :value}', "odd number"),
        ('{:process 0, :type :ok, :f :get, :key "a", :value "v"}', "never invoked"),
    ],
)
def test_edn_kv_errors(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=f"line 1: .*{message}"):
        parse_history(line + "\n", "edn-kv")


def _sample() -> list[Operation]:
    return [
        Operation(process=1, call=0.5, ret=1.25, kind="put", key="k", arg="v"),
        Operation(process=2, call=1, ret=2, kind="get", key="k", result="v"),
        Operation(
            process=3,
            call=2,
            ret=None,
            kind="cas",
            key="k",
            prev=None,
            arg="w",
            outcome=Outcome.UNKNOWN,
        ),
        Operation(process=4, call=3, ret=4, kind="cas", key="k", prev="x", arg="y", result=False),
        Operation(process=5, call=3, ret=4, kind="delete", key="k", outcome=Outcome.FAIL),
        Operation(process=6, call=5, ret=6, kind="ticket", result=17),
        Operation(process=7, call=5, ret=6, kind="write", arg=3, outcome=Outcome.UNKNOWN),
    ]


def test_traft_round_trip() -> None:
    ops = _sample()
    stream = io.StringIO()
    write_history(ops, stream)
    text = stream.getvalue()
    assert detect_format(text) == "traft"
    assert parse_history(text) == ops
    first = json.loads(text.splitlines()[0])
    assert first == {
        "process": 1,
        "call": 0.5,
        "return": 1.25,
        "op": "put",
        "key": "k",
        "value": "v",
        "outcome": "ok",
    }


def test_traft_documented_example() -> None:
    """The examples of docs/history-format.md parse as documented."""
    text = "\n".join(
        [
            '{"process": 1, "call": 10, "return": 12, "op": "put", "key": "x", "value": "a", "outcome": "ok"}',
            '{"process": 2, "call": 11, "return": 14, "op": "get", "key": "x", "outcome": "ok", "result": "a"}',
            '{"process": 3, "call": 13, "return": null, "op": "cas", "key": "x", "prev": "a", "value": "b", "outcome": "unknown"}',
            '{"process": 4, "call": 15, "return": 16, "op": "cas", "key": "x", "prev": "z", "value": "c", "outcome": "ok", "result": false}',
            "",
        ]
    )
    ops = parse_traft(text.splitlines())
    assert [o.kind for o in ops] == ["put", "get", "cas", "cas"]
    assert ops[2].ret is None and ops[2].outcome is Outcome.UNKNOWN
    assert ops[3].result is False


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (
            '{"process": 1, "call": 0, "return": 1, "op": "put", "outcome": "ok", "colour": 1}',
            "unknown field 'colour'",
        ),
        ('{"process": 1, "call": 0, "return": 1, "op": "put"}', "missing field 'outcome'"),
        (
            '{"process": true, "call": 0, "return": 1, "op": "put", "outcome": "ok"}',
            "process must be an integer",
        ),
        (
            '{"process": 1, "call": "0", "return": 1, "op": "put", "outcome": "ok"}',
            "call must be a number",
        ),
        (
            '{"process": 1, "call": 0, "return": "1", "op": "put", "outcome": "ok"}',
            "return must be a number",
        ),
        (
            '{"process": 1, "call": 0, "return": 1, "op": "jump", "outcome": "ok"}',
            "unknown op 'jump'",
        ),
        (
            '{"process": 1, "call": 0, "return": 1, "op": "put", "key": 3, "outcome": "ok"}',
            "key must be a string",
        ),
        (
            '{"process": 1, "call": 0, "return": 1, "op": "put", "outcome": "maybe"}',
            "outcome must be",
        ),
        (
            '{"process": 1, "call": 0, "return": null, "op": "put", "outcome": "ok"}',
            "needs a return time",
        ),
        (
            '{"process": 1, "call": 0, "return": 1, "op": "put", "value": [1], "outcome": "ok"}',
            "scalar",
        ),
    ],
)
def test_traft_errors(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=f"line 2: .*{message}"):
        parse_history("\n" + line + "\n", "traft")


def test_detect_format() -> None:
    assert detect_format("") == "traft"
    assert detect_format('\n{"process": 1}') == "traft"
    with pytest.raises(FormatError, match="cannot tell the format"):
        detect_format("hello")
    with pytest.raises(ValueError, match="unknown history format"):
        parse_history("", "yaml")


def test_dump_operation_is_one_line() -> None:
    op = Operation(process=1, call=0, ret=1, kind="put", key="k", arg="two\nlines")
    assert "\n" not in dump_operation(op)
