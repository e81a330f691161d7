"""The wire codec: round trips, and garbage never raises anything but MalformedMessage."""

from __future__ import annotations

import attrs
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from traft.core import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    PreVote,
    PreVoteResponse,
    ReadIndex,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from traft.wire import TAGS, MalformedMessage, SnapshotAck, SnapshotChunk, decode, encode

u63 = st.integers(0, 2**63 - 1)
small = st.integers(0, 1000)


@st.composite
def append_entries(draw: st.DrawFn) -> AppendEntries:
    prev = draw(small)
    prev_term = draw(small)
    n = draw(st.integers(0, 20))
    terms = sorted(draw(st.lists(st.integers(prev_term, prev_term + 5), min_size=n, max_size=n)))
    term = max([prev_term, *terms]) + draw(st.integers(0, 3))
    entries = tuple(
        Entry(
            t,
            prev + 1 + k,
            draw(u63),
            draw(st.sampled_from(EntryType)),
            draw(st.binary(max_size=40)),
        )
        for k, t in enumerate(terms)
    )
    return AppendEntries(
        term=term,
        leader_id=draw(u63),
        prev_log_index=prev,
        prev_log_term=prev_term,
        entries=entries,
        leader_commit=draw(small),
        seq=draw(u63),
    )


messages = st.one_of(
    append_entries(),
    st.builds(
        AppendEntriesResponse,
        term=u63,
        success=st.booleans(),
        current_index=u63,
        commit_index=u63,
        seq=u63,
    ),
    st.builds(
        RequestVote,
        term=u63,
        candidate_id=u63,
        last_log_index=u63,
        last_log_term=u63,
        leader_transfer=st.booleans(),
    ),
    st.builds(PreVote, term=u63, candidate_id=u63, last_log_index=u63, last_log_term=u63),
    st.builds(PreVoteResponse, term=u63, vote_granted=st.booleans()),
    st.builds(TimeoutNow, term=u63, leader_id=u63),
    st.builds(ReadIndex, term=u63, read_id=u63),
    st.builds(ReadIndexResponse, term=u63, read_id=u63, index=u63, success=st.booleans()),
    st.builds(RequestVoteResponse, term=u63, vote_granted=st.booleans()),
    st.builds(
        SnapshotChunk,
        term=u63,
        leader_id=u63,
        index=u63,
        snapshot_term=u63,
        membership=st.binary(max_size=30),
        offset=u63,
        total=u63,
        checksum=st.binary(min_size=32, max_size=32),
        data=st.binary(max_size=100),
    ),
    st.builds(SnapshotAck, term=u63, index=u63, received=u63, done=st.booleans()),
)


@given(messages)
def test_round_trip(msg: object) -> None:
    assert decode(encode(msg)) == msg  # type: ignore[arg-type]


def test_old_tags_are_unchanged_and_new_ones_are_short() -> None:
    assert {tag: cls.__name__ for tag, cls in TAGS.items()} == {
        "rv": "RequestVote",
        "rvr": "RequestVoteResponse",
        "ae": "AppendEntries",
        "aer": "AppendEntriesResponse",
        "sc": "SnapshotChunk",
        "sa": "SnapshotAck",
        "pv": "PreVote",
        "pvr": "PreVoteResponse",
        "tn": "TimeoutNow",
        "ri": "ReadIndex",
        "rir": "ReadIndexResponse",
    }


def test_request_vote_without_transfer_flag_encodes_as_before_the_flag() -> None:
    vote = RequestVote(term=3, candidate_id=2, last_log_index=9, last_log_term=2)
    old = msgpack.packb(
        ["rv", {"term": 3, "candidate_id": 2, "last_log_index": 9, "last_log_term": 2}]
    )
    assert encode(vote) == old
    assert decode(old) == vote
    flagged = decode(encode(attrs.evolve(vote, leader_transfer=True)))
    assert isinstance(flagged, RequestVote) and flagged.leader_transfer


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_malformed(data: bytes) -> None:
    try:
        decode(data)
    except MalformedMessage:
        pass


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@given(
    st.sampled_from(sorted(TAGS)),
    st.dictionaries(st.sampled_from(["term", "seq", "entries", "success", "x"]), json_like),
)
def test_wrong_field_types_only_raise_malformed(tag: str, fields: dict[str, object]) -> None:
    try:
        decode(msgpack.packb([tag, fields]))
    except MalformedMessage:
        pass


def _ae(**changes: object) -> AppendEntries:
    base: dict[str, object] = {
        "term": 2,
        "leader_id": 1,
        "prev_log_index": 4,
        "prev_log_term": 1,
        "entries": (Entry(1, 5, 9, EntryType.NORMAL, b"a"), Entry(2, 6, 9, EntryType.NORMAL, b"b")),
        "leader_commit": 4,
        "seq": 1,
    }
    base.update(changes)
    return AppendEntries(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "msg",
    [
        _ae(prev_log_index=3),  # gap after prev
        _ae(
            entries=(Entry(2, 5, 9, EntryType.NORMAL, b"a"), Entry(1, 6, 9, EntryType.NORMAL, b"b"))
        ),  # term decreases
        _ae(term=1),  # entry term above the message term
        _ae(
            entries=(Entry(1, 5, 9, EntryType.NORMAL, b"a"), Entry(1, 7, 9, EntryType.NORMAL, b"b"))
        ),  # index gap
    ],
)
def test_inconsistent_append_entries_are_refused(msg: AppendEntries) -> None:
    with pytest.raises(MalformedMessage):
        decode(encode(msg))


@pytest.mark.parametrize("bad", [-1, 2**63, 1.0, "1", True])
def test_numbers_must_be_non_negative_ints(bad: object) -> None:
    data = msgpack.packb(["rvr", {"term": bad, "vote_granted": True}])
    with pytest.raises(MalformedMessage):
        decode(data)


def test_tags_are_explicit_and_short() -> None:
    assert all(len(tag) <= 3 for tag in TAGS)
    assert len(set(TAGS.values())) == len(TAGS)


def _append_entries_with(entries: list[object]) -> bytes:
    fields = {
        "term": 5,
        "leader_id": 1,
        "prev_log_index": 9,
        "prev_log_term": 2,
        "entries": entries,
        "leader_commit": 3,
        "seq": 1,
    }
    return msgpack.packb(["ae", fields])  # type: ignore[no-any-return]


GOOD_ENTRY = [3, 10, 7, 0, b"d"]


@pytest.mark.parametrize(
    "entries",
    [
        [GOOD_ENTRY, "not an array"],
        [GOOD_ENTRY, [3, 11, 7, 0]],  # four fields
        [GOOD_ENTRY, [3, 11, 7, 0, b"d", 1]],  # six
        [[True, 10, 7, 0, b"d"]],  # a bool is not an int
        [[3, 10.0, 7, 0, b"d"]],
        [[3, 10, -1, 0, b"d"]],  # negative id
        [[3, 10, 1 << 63, 0, b"d"]],
        [[3, 10, 7, -1, b"d"]],  # entry type out of range
        [[3, 10, 7, 99, b"d"]],
        [[3, 10, 7, 0, "text"]],  # data must be bytes
        [GOOD_ENTRY, [3, 12, 7, 0, b"d"]],  # a gap
        [[3, 11, 7, 0, b"d"]],  # does not follow prev_log_index
        [[4, 10, 7, 0, b"d"], [3, 11, 7, 0, b"d"]],  # terms go down
        [[1, 10, 7, 0, b"d"]],  # below prev_log_term
        [[6, 10, 7, 0, b"d"]],  # above the message's term
        "not a list",
    ],
)
def test_each_bad_entry_is_refused(entries: list[object]) -> None:
    with pytest.raises(MalformedMessage):
        decode(_append_entries_with(entries))


def test_good_entries_decode_to_entries() -> None:
    msg = decode(_append_entries_with([GOOD_ENTRY, [5, 11, 8, 1, b""], [5, 12, 0, 0, b"x"]]))
    assert isinstance(msg, AppendEntries)
    assert [tuple(e) for e in msg.entries] == [
        (3, 10, 7, EntryType(0), b"d"),
        (5, 11, 8, EntryType(1), b""),
        (5, 12, 0, EntryType(0), b"x"),
    ]
    assert all(type(e) is Entry for e in msg.entries)
    assert decode(_append_entries_with([])) == AppendEntries(
        term=5, leader_id=1, prev_log_index=9, prev_log_term=2, entries=(), leader_commit=3, seq=1
    )
