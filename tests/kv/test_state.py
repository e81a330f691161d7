"""KVStore: results against a dumb model, sessions, expiry, snapshots."""

from __future__ import annotations

from typing import Any

import attrs
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from traft.kv.commands import (
    Command,
    Conflict,
    Delete,
    Issued,
    KeyReused,
    NextTicket,
    Put,
    Rejected,
    Written,
    encode_command,
)
from traft.kv.state import KVStore, SnapshotError

# A small alphabet so that keys, values and sessions collide often.
keys = st.sampled_from(["a", "b", "c/d", "é"])
values = st.sampled_from([b"", b"1", b"2", b"x" * 10])
sessions = st.none() | st.sampled_from(["s1", "s2", "s3", "s4", "s5"])
ops = st.one_of(
    st.builds(Put, key=keys, value=values, prev=st.none() | values),
    st.builds(Delete, key=keys, prev=st.none() | values),
    st.just(NextTicket()),
)
commands = st.lists(st.builds(Command, op=ops, session=sessions), max_size=60)
gaps = st.lists(st.integers(1, 3), min_size=60, max_size=60)


class Model:
    """The specification, written as plainly as possible."""

    def __init__(self, retain: int, max_sessions: int) -> None:
        self.data: dict[str, bytes] = {}
        self.ticket = 0
        self.sessions: list[tuple[str, int, Any, Any]] = []  # (key, index, op, result)
        self.retain = retain
        self.max_sessions = max_sessions

    def apply(self, index: int, cmd: Command) -> Any:
        self.sessions = [s for s in self.sessions if s[1] > index - self.retain]
        for key, first, op, result in self.sessions:
            if key == cmd.session:
                return result if op == cmd.op else KeyReused(index=first)
        op = cmd.op
        if isinstance(op, NextTicket):
            self.ticket += 1
            result: Any = Issued(index=index, ticket=self.ticket)
        else:
            current = self.data.get(op.key)
            if op.prev is not None and op.prev != current:
                result = Conflict(index=index, exists=current is not None)
            else:
                if isinstance(op, Put):
                    self.data[op.key] = op.value
                else:
                    self.data.pop(op.key, None)
                result = Written(index=index, existed=current is not None)
        if cmd.session is not None:
            self.sessions.append((cmd.session, index, op, result))
            self.sessions = self.sessions[-self.max_sessions :]
        return result


def _indexes(gap_list: list[int]) -> list[int]:
    out, index = [], 0
    for gap in gap_list:  # gaps: entries the KV never sees (no-ops, membership)
        index += gap
        out.append(index)
    return out


@given(commands, gaps, st.integers(1, 20), st.integers(1, 4))
def test_store_matches_model(
    cmds: list[Command], gap_list: list[int], retain: int, max_sessions: int
) -> None:
    store = KVStore(retain_entries=retain, max_sessions=max_sessions)
    model = Model(retain, max_sessions)
    for index, cmd in zip(_indexes(gap_list), cmds, strict=False):
        assert store.apply(index, encode_command(cmd)) == model.apply(index, cmd)
        assert dict(store.items()) == model.data
        assert store.last_ticket == model.ticket
        assert store.session_count == len(model.sessions)


@given(commands, gaps, st.data())
def test_snapshot_restore_at_any_point(
    cmds: list[Command], gap_list: list[int], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(cmds)))
    retain = data.draw(st.integers(1, 30))
    indexes = _indexes(gap_list)
    whole = KVStore(retain_entries=retain)
    first = KVStore(retain_entries=retain)
    results_whole = [whole.apply(i, encode_command(c)) for i, c in zip(indexes, cmds, strict=False)]
    for i, c in zip(indexes[:split], cmds[:split], strict=False):
        first.apply(i, encode_command(c))
    restored = KVStore(retain_entries=retain)
    restored.apply(1000, encode_command(Command(op=Put(key="junk", value=b"old"))))
    restored.restore(first.snapshot())
    assert restored.digest() == first.digest()
    results_rest = [
        restored.apply(i, encode_command(c))
        for i, c in zip(indexes[split:], cmds[split:], strict=False)
    ]
    assert results_rest == results_whole[split:]
    assert restored.digest() == whole.digest()
    assert dict(restored.items()) == dict(whole.items())
    assert restored.summary() == whole.summary()


@given(st.lists(st.builds(Command, op=ops, session=st.uuids().map(str)), max_size=30), st.data())
def test_retries_apply_once(cmds: list[Command], data: st.DataObject) -> None:
    """Every write retried any number of times, in any order: the state is as if once."""
    retried = KVStore()
    index = 0
    first_index: list[int] = []
    answers: list[tuple[int, Any]] = []  # (which command, its answer)
    for k, cmd in enumerate(cmds):
        index += 1
        first_index.append(index)
        answers.append((k, retried.apply(index, encode_command(cmd))))
        # Retry some earlier commands (a client that timed out and tries again).
        for j in data.draw(st.lists(st.integers(0, k), max_size=3)):
            index += 1
            answers.append((j, retried.apply(index, encode_command(cmds[j]))))
    once = KVStore()
    firsts = [once.apply(i, encode_command(c)) for i, c in zip(first_index, cmds, strict=True)]
    assert all(answer == firsts[k] for k, answer in answers)
    assert dict(retried.items()) == dict(once.items())
    assert retried.last_ticket == once.last_ticket


def test_sessions_expire_by_log_position() -> None:
    store = KVStore(retain_entries=10)
    ticket = encode_command(Command(op=NextTicket(), session="k"))
    assert store.apply(5, ticket) == Issued(index=5, ticket=1)
    assert store.apply(14, ticket) == Issued(index=5, ticket=1)  # 9 entries later: kept
    store.apply(15, b"\xc0")  # any entry moves the position
    assert store.session("k") is None


def test_sessions_expire_exactly_at_retain_entries() -> None:
    store = KVStore(retain_entries=10)
    ticket = encode_command(Command(op=NextTicket(), session="k"))
    assert store.apply(5, ticket) == Issued(index=5, ticket=1)
    assert store.apply(14, ticket) == Issued(index=5, ticket=1)
    assert store.session("k") is not None
    assert store.apply(15, ticket) == Issued(index=15, ticket=2)  # forgotten: a new ticket


def test_max_sessions_drops_the_oldest() -> None:
    store = KVStore(max_sessions=2)
    for i, s in enumerate(["a", "b", "c"], start=1):
        store.apply(i, encode_command(Command(op=NextTicket(), session=s)))
    assert store.session("a") is None
    assert store.session("b") is not None and store.session("c") is not None


def test_reused_key_with_another_command() -> None:
    store = KVStore()
    store.apply(1, encode_command(Command(op=Put(key="a", value=b"1"), session="s")))
    result = store.apply(2, encode_command(Command(op=Put(key="a", value=b"2"), session="s")))
    assert result == KeyReused(index=1)
    assert store.get("a") == b"1"


def test_invalid_entry_is_rejected_everywhere_alike() -> None:
    store = KVStore()
    result = store.apply(1, b"\x93\xa1p\x80\xc0")
    assert isinstance(result, Rejected) and result.index == 1
    assert store.applied_index == 1 and len(store) == 0


def test_applying_an_old_index_is_a_bug() -> None:
    store = KVStore()
    store.apply(3, encode_command(Command(op=NextTicket())))
    with pytest.raises(AssertionError):
        store.apply(3, encode_command(Command(op=NextTicket())))


def test_large_snapshot_streams_in_chunks() -> None:
    store = KVStore()
    for i in range(1, 3001):
        store.apply(
            i, encode_command(Command(op=Put(key=f"k{i}", value=bytes(100)), session=f"s{i}"))
        )
    chunks = list(store.snapshot())
    assert len(chunks) > 3 and all(len(c) < 70_000 for c in chunks)
    restored = KVStore()
    restored.restore(iter(chunks))
    assert restored.digest() == store.digest() and len(restored) == 3000
    # Fed byte by byte, too.
    whole = b"".join(chunks)
    again = KVStore()
    again.restore(whole[i : i + 1] for i in range(len(whole)))
    assert again.digest() == store.digest()


def test_snapshot_is_a_consistent_copy() -> None:
    store = KVStore()
    store.apply(1, encode_command(Command(op=Put(key="a", value=b"1"))))
    stream = store.snapshot()
    store.apply(2, encode_command(Command(op=Put(key="b", value=b"2"))))
    restored = KVStore()
    restored.restore(stream)
    assert dict(restored.items()) == {"a": b"1"} and restored.applied_index == 1


def _good_snapshot() -> bytes:
    store = KVStore()
    store.apply(1, encode_command(Command(op=Put(key="a", value=b"1"), session="s")))
    return b"".join(store.snapshot())


@pytest.mark.parametrize(
    "stream",
    [
        b"",
        b"\xc1",
        msgpack.packb(["traft-kv", 2, 0, 0, 0, 0]),
        msgpack.packb(["other", 1, 0, 0, 0, 0]),
        msgpack.packb(["traft-kv", 1, 0, 0, 1, 0]),
        msgpack.packb(["traft-kv", 1, 0, 0, 1, 0]) + msgpack.packb(["a", "str"]),
        msgpack.packb(["traft-kv", 1, 0, 0, 1, 0]) + msgpack.packb(["", b"x"]),
        msgpack.packb(["traft-kv", 1, 0, 0, 2, 0])
        + msgpack.packb(["a", b"x"])
        + msgpack.packb(["a", b"y"]),
        msgpack.packb(["traft-kv", 1, 0, 0, 0, 1]) + msgpack.packb(["s", 1, b"d", ["w", {}]]),
        msgpack.packb(["traft-kv", 1, -1, 0, 0, 0]),
        _good_snapshot() + b"\xc0",
        _good_snapshot() + b"\x92",
        _good_snapshot()[:-1],
    ],
)
def test_bad_snapshots_are_refused_and_change_nothing(stream: bytes) -> None:
    store = KVStore()
    store.apply(7, encode_command(Command(op=Put(key="keep", value=b"me"))))
    before = store.digest()
    with pytest.raises(SnapshotError):
        store.restore([stream])
    assert store.digest() == before


@given(st.binary(max_size=100))
def test_garbage_snapshot_raises_only_snapshot_error(data: bytes) -> None:
    try:
        KVStore().restore([data])
    except SnapshotError:
        pass


def test_results_are_small_frozen_values() -> None:
    for result in (Written(index=1, existed=False), Issued(index=1, ticket=1)):
        assert attrs.has(type(result))
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            result.index = 2  # type: ignore[misc]


def test_state_machine_reads_no_clock_or_randomness() -> None:
    """Sessions expire by log position only: the replicated code imports no clock."""
    import ast
    from pathlib import Path

    import traft.kv

    banned = {"time", "datetime", "random", "os", "trio", "secrets", "uuid"}
    for name in ("state.py", "commands.py"):
        path = Path(traft.kv.__file__).with_name(name)
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & banned, (name, imported & banned)
