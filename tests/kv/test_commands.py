"""The KV command codec: round trips, strictness, garbage in."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from traft.kv.commands import (
    MAX_KEY_BYTES,
    Command,
    Conflict,
    Delete,
    Issued,
    KeyReused,
    MalformedCommand,
    NextTicket,
    Put,
    Rejected,
    Written,
    check_key,
    check_session,
    decode_command,
    encode_command,
    op_digest,
    structure_result,
    unstructure_result,
)

keys = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"),
    min_size=1,
    max_size=20,
)
values = st.binary(max_size=50)
sessions = st.none() | st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20
)
ops = st.one_of(
    st.builds(Put, key=keys, value=values, prev=st.none() | values),
    st.builds(Delete, key=keys, prev=st.none() | values),
    st.just(NextTicket()),
)
commands = st.builds(Command, op=ops, session=sessions)
indexes = st.integers(0, 2**63 - 1)
results = st.one_of(
    st.builds(Written, index=indexes, existed=st.booleans()),
    st.builds(Conflict, index=indexes, exists=st.booleans()),
    st.builds(Issued, index=indexes, ticket=indexes),
    st.builds(KeyReused, index=indexes),
    st.builds(Rejected, index=indexes, reason=st.text(max_size=20)),
)


@given(commands)
def test_command_round_trip(command: Command) -> None:
    assert decode_command(encode_command(command)) == command


@given(results)
def test_result_round_trip(result: object) -> None:
    packed = msgpack.unpackb(msgpack.packb(unstructure_result(result)), raw=False)  # type: ignore[arg-type]
    assert structure_result(packed) == result


@given(st.binary(max_size=64))
def test_garbage_raises_only_malformed(data: bytes) -> None:
    try:
        decode_command(data)
    except MalformedCommand:
        pass


@given(commands, st.data())
def test_mutated_commands_raise_only_malformed(command: Command, data: st.DataObject) -> None:
    raw = bytearray(encode_command(command))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    try:
        decode_command(bytes(raw))
    except MalformedCommand:
        pass


@pytest.mark.parametrize(
    "obj",
    [
        ["p", {"k": "a", "v": "not bytes", "p": None}, None],
        ["p", {"k": "a", "v": b"x", "p": None, "extra": 1}, None],
        ["p", {"k": "", "v": b"x", "p": None}, None],
        ["p", {"k": "a\n", "v": b"x", "p": None}, None],
        ["d", {"k": "a"}, 5],
        ["d", {"k": "a", "p": None}, "has space"],
        ["Put", {"k": "a", "v": b"x", "p": None}, None],
        ["t", {}],
        ["t", {}, None, None],
        {"t": {}},
        ["p", {"k": True, "v": b"x", "p": None}, None],
    ],
)
def test_strictness(obj: object) -> None:
    with pytest.raises(MalformedCommand):
        decode_command(msgpack.packb(obj))


def test_tags_are_stable() -> None:
    # The log is forever: these bytes must decode the same in every version.
    assert encode_command(Command(op=Put(key="a", value=b"1"), session="s1")) == (
        b"\x93\xa1p\x83\xa1k\xa1a\xa1v\xc4\x011\xa1p\xc0\xa2s1"
    )
    assert encode_command(Command(op=NextTicket())) == b"\x93\xa1t\x80\xc0"


def test_digest_tells_operations_apart() -> None:
    assert op_digest(Put(key="a", value=b"1")) == op_digest(Put(key="a", value=b"1"))
    assert op_digest(Put(key="a", value=b"1")) != op_digest(Put(key="a", value=b"2"))
    assert op_digest(Put(key="a", value=b"")) != op_digest(Delete(key="a"))


def test_key_and_session_limits() -> None:
    check_key("a" * MAX_KEY_BYTES)
    check_key("a/b c?d%")
    for bad in ("", "a" * (MAX_KEY_BYTES + 1), "é" * (MAX_KEY_BYTES // 2 + 1), "a\x00", "\x7f"):
        with pytest.raises(ValueError):
            check_key(bad)
    check_session("abc-123")
    for bad in ("", "a b", "x" * 129, "é"):
        with pytest.raises(ValueError):
            check_session(bad)
