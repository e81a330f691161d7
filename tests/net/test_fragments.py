"""Fragmentation and reassembly (net.fragments): loss, duplication, reordering, bounds."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from net.fragments import (
    FRAGMENT_HEADER_SIZE,
    FRAGMENT_STAT_KEYS,
    PARTIAL_OVERHEAD,
    RECENT,
    Reassembler,
    split,
)

CHUNK = 16


def payload_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def check_counters(r: Reassembler) -> None:
    """Every fragment is accounted for: used, dropped for a reason, or held."""
    stats = r.stats
    dropped = sum(stats[k] for k in FRAGMENT_STAT_KEYS if k.startswith("dropped_fragment_"))
    assert stats["fragments_in"] == stats["fragments_used"] + dropped + r.pending_fragments
    assert r.pending_bytes == sum(p.charge for p in r._partials.values())


def test_split_cuts_into_numbered_chunks_that_join_back() -> None:
    data = payload_of(50)
    fragments = split(data, CHUNK, message_id=7)
    assert len(fragments) == 4
    header = struct.Struct(">QIIHH")
    for index, fragment in enumerate(fragments):
        assert header.unpack_from(fragment) == (7, 50, zlib.crc32(data), index, 4)
    assert b"".join(f[FRAGMENT_HEADER_SIZE:] for f in fragments) == data


def test_split_refuses_what_needs_no_fragments_and_bad_ids() -> None:
    with pytest.raises(ValueError):
        split(b"x" * CHUNK, CHUNK, 0)
    with pytest.raises(ValueError):
        split(b"x" * 40, CHUNK, 1 << 64)


@given(
    size=st.integers(CHUNK + 1, 8 * CHUNK),
    data=st.data(),
)
def test_any_order_with_duplicates_gives_the_message_once(size: int, data: st.DataObject) -> None:
    message = payload_of(size, size)
    fragments = split(message, CHUNK, message_id=3)
    extra = data.draw(st.lists(st.sampled_from(fragments), max_size=len(fragments)))
    order = data.draw(st.permutations(fragments + extra))
    r = Reassembler(max_message=1000)
    out = [m for m in (r.add(1, 0, f) for f in order) if m is not None]
    assert out == [message]
    assert r.pending_messages() == 0 and r.pending_bytes == 0
    assert r.stats["dropped_fragment_duplicate"] == len(extra)
    check_counters(r)


@given(size=st.integers(CHUNK + 1, 8 * CHUNK), data=st.data())
def test_a_lost_fragment_loses_the_message_and_nothing_else(size: int, data: st.DataObject) -> None:
    message = payload_of(size, size)
    fragments = split(message, CHUNK, message_id=3)
    lost = data.draw(st.sets(st.integers(0, len(fragments) - 1), min_size=1))
    kept = [f for i, f in enumerate(fragments) if i not in lost]
    r = Reassembler(max_message=1000)
    assert all(r.add(1, 0, f) is None for f in data.draw(st.permutations(kept)))
    assert r.pending_messages() == (1 if kept else 0)
    check_counters(r)


@given(data=st.data())
def test_interleaved_messages_from_several_senders_each_arrive_intact(
    data: st.DataObject,
) -> None:
    sent: dict[tuple[int, int], bytes] = {}
    stream: list[tuple[int, bytes]] = []
    for sender in (1, 2):
        for message_id in range(data.draw(st.integers(1, 3))):
            size = data.draw(st.integers(CHUNK + 1, 5 * CHUNK))
            message = payload_of(size, sender * 100 + message_id)
            sent[sender, message_id] = message
            stream += [(sender, f) for f in split(message, CHUNK, message_id)]
    dropped_message = data.draw(st.sampled_from(sorted(sent)))
    stream = [  # lose the first fragment of one message
        (s, f)
        for s, f in stream
        if not ((s, struct.unpack_from(">Q", f)[0]) == dropped_message and f[16:18] == b"\x00\x00")
    ]
    stream += data.draw(st.lists(st.sampled_from(stream), max_size=6))  # duplicates
    r = Reassembler(max_message=1000)
    received = []
    for sender, fragment in data.draw(st.permutations(stream)):
        message = r.add(sender, 5, fragment)
        if message is not None:
            received.append((sender, message))
    expected = {(s, m) for (s, i), m in sent.items() if (s, i) != dropped_message}
    assert sorted(received) == sorted(expected)
    check_counters(r)


def test_a_reused_id_never_mixes_old_fragments_into_a_new_message() -> None:
    # A sender restarted and numbers its messages from the same id again.
    old = split(payload_of(40, 1), CHUNK, message_id=9)
    new = split(payload_of(40, 2), CHUNK, message_id=9)
    r = Reassembler(max_message=1000)
    assert r.add(1, 0, old[0]) is None and r.add(1, 0, old[1]) is None
    assert r.add(1, 0, new[1]) is None  # ends the old partial
    assert r.stats["dropped_fragment_mismatch"] == 2
    assert r.add(1, 0, new[0]) is None
    assert r.add(1, 0, new[2]) == payload_of(40, 2)
    # Equal ids and lengths but different bytes: the CRC tells them apart.
    r2 = Reassembler(max_message=1000)
    assert r2.add(1, 0, old[0]) is None
    assert r2.add(1, 0, new[1]) is None
    check_counters(r2)


def test_chunks_whose_bytes_do_not_add_up_are_refused() -> None:
    # Same id, total and CRC claimed, but a chunk of the wrong size (a forger
    # without the key on an unkeyed cluster, or a sender with another chunk size).
    good = split(payload_of(40, 1), CHUNK, message_id=1)
    bloated = good[1] + b"x" * 20
    r = Reassembler(max_message=1000)
    assert r.add(1, 0, good[0]) is None
    assert r.add(1, 0, bloated) is None  # 16 + 36 > 40 bytes
    assert r.pending_messages() == 0
    short = good[1][:-3]
    assert r.add(1, 0, good[0]) is None
    assert r.add(1, 0, short) is None
    assert r.add(1, 0, good[2]) is None  # all indexes, but 3 bytes short: CRC/length fail
    assert r.pending_messages() == 0 and r.stats["reassembled"] == 0
    # Right header, right length, one bit flipped: only the CRC catches it.
    flipped = good[1][:-1] + bytes([good[1][-1] ^ 1])
    assert [r.add(1, 0, f) for f in (good[0], flipped, good[2])] == [None, None, None]
    assert r.stats["reassembled"] == 0 and r.stats["dropped_fragment_mismatch"] == 8
    check_counters(r)


def test_a_late_duplicate_of_a_delivered_message_starts_nothing() -> None:
    fragments = split(payload_of(40), CHUNK, message_id=4)
    r = Reassembler(max_message=1000)
    assert [r.add(1, 0, f) for f in fragments][-1] == payload_of(40)
    assert r.add(1, 0, fragments[1]) is None
    assert r.pending_messages() == 0
    assert r.stats["dropped_fragment_duplicate"] == 1


def test_the_recent_memory_is_bounded_per_sender() -> None:
    r = Reassembler(max_message=1000)
    first = split(payload_of(40), CHUNK, message_id=0)
    for message_id in range(RECENT + 1):
        for f in split(payload_of(40), CHUNK, message_id):
            r.add(1, 0, f)
    # Id 0 has been forgotten: its late duplicate opens a partial again.
    assert r.add(1, 0, first[0]) is None
    assert r.pending_messages(1) == 1


@given(
    garbage=st.binary(max_size=60),
    prefix=st.sampled_from([b"", struct.pack(">QIIHH", 1, 40, 0, 0, 3)]),
)
def test_garbage_never_raises_and_never_completes(garbage: bytes, prefix: bytes) -> None:
    r = Reassembler(max_message=1000)
    assert r.add(1, 0, prefix + garbage) is None
    check_counters(r)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ((1, 40, 0, 3, 3), "malformed"),  # index out of range
        ((1, 40, 0, 0, 1), "malformed"),  # one fragment is not a fragmented message
        ((1, 2, 0, 0, 3), "malformed"),  # more fragments than bytes
        ((1, 5000, 0, 0, 3), "oversize"),
    ],
)
def test_bad_headers_are_dropped_and_named(
    header: tuple[int, int, int, int, int], reason: str
) -> None:
    r = Reassembler(max_message=1000)
    assert r.add(1, 0, struct.pack(">QIIHH", *header) + b"x") is None
    assert r.stats[f"dropped_fragment_{reason}"] == 1
    assert r.pending_messages() == 0


def test_each_sender_is_held_to_its_bound_oldest_evicted_first() -> None:
    max_message = 100
    r = Reassembler(max_message=max_message)  # per peer: 2 * (100 + overhead)
    messages = [split(payload_of(100, i), CHUNK, message_id=i) for i in range(4)]
    for fragments in messages:
        for f in fragments[:-1]:  # every message lacks its last fragment
            r.add(1, 0, f)
            assert r.pending_bytes <= r.per_peer_bytes
    assert r.pending_messages(1) == 2
    assert r.stats["dropped_fragment_evicted"] == 2 * (len(messages[0]) - 1)
    # The survivors are the newest: their last fragments complete them.
    assert r.add(1, 0, messages[3][-1]) == payload_of(100, 3)
    assert r.add(1, 0, messages[2][-1]) == payload_of(100, 2)
    assert r.add(1, 0, messages[0][-1]) is None
    check_counters(r)


def test_one_chatty_sender_cannot_push_out_what_others_hold_beyond_the_total() -> None:
    need = 100 + PARTIAL_OVERHEAD
    r = Reassembler(max_message=100, per_peer_bytes=need, total_bytes=3 * need)
    for sender in (1, 2, 3):
        for f in split(payload_of(100, sender), CHUNK, message_id=0)[:-1]:
            r.add(sender, 0, f)
    assert r.pending_messages() == 3
    # A fourth sender needs room: the oldest partial (sender 1's) goes.
    for f in split(payload_of(100, 4), CHUNK, message_id=0)[:-1]:
        r.add(4, 0, f)
        assert r.pending_bytes <= r.total_bytes
    assert r.pending_messages(1) == 0 and r.pending_messages() == 3
    check_counters(r)


@given(
    ops=st.lists(
        st.tuples(st.integers(1, 4), st.integers(0, 5), st.integers(17, 300), st.integers(0, 30)),
        max_size=60,
    )
)
def test_memory_stays_within_bounds_whatever_arrives(
    ops: list[tuple[int, int, int, int]],
) -> None:
    r = Reassembler(max_message=300, per_peer_bytes=700, total_bytes=1500)
    for sender, message_id, size, index in ops:
        fragments = split(payload_of(size, message_id), CHUNK, message_id)
        r.add(sender, 0, fragments[index % len(fragments)])
        assert r.pending_bytes <= r.total_bytes
        for s in range(1, 5):
            held = sum(p.charge for k, p in r._partials.items() if k[0] == s)
            assert held <= r.per_peer_bytes
        check_counters(r)


def test_bounds_too_small_for_one_message_are_refused() -> None:
    with pytest.raises(ValueError):
        Reassembler(max_message=1000, per_peer_bytes=1000)
    with pytest.raises(ValueError):
        Reassembler(max_message=100, per_peer_bytes=1000, total_bytes=999)
