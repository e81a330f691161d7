"""The datagram envelope: round trips, every rejection reason, authentication, garbage."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from net.envelope import (
    FLAG_FRAGMENT,
    HEADER_SIZE,
    MAGIC,
    MAX_UDP_DATAGRAM,
    PROTOCOL_VERSION,
    REASONS,
    TAG_SIZE,
    Envelope,
    EnvelopeCodec,
    MalformedDatagram,
    PayloadTooLarge,
    cluster_id_from,
)

KEY = b"cluster secret"
U64_MAX = (1 << 64) - 1

plain = EnvelopeCodec(42)
keyed = EnvelopeCodec(42, key=KEY)


def reason_of(codec: EnvelopeCodec, datagram: bytes | bytearray | memoryview) -> str:
    with pytest.raises(MalformedDatagram) as info:
        codec.decode(datagram)
    assert info.value.reason in REASONS
    return info.value.reason


def header(
    *,
    magic: bytes = MAGIC,
    version: int = PROTOCOL_VERSION,
    flags: int = 0,
    kind: int = 0,
    cluster: int = 42,
    sender: int = 1,
) -> bytes:
    return struct.pack(">2sBBBQQ", magic, version, flags, kind, cluster, sender)


# -- round trips ----------------------------------------------------------------


@pytest.mark.parametrize("codec", [plain, keyed], ids=["plain", "keyed"])
@pytest.mark.parametrize("sender_id", [0, 1, U64_MAX])
@pytest.mark.parametrize("payload", [b"", b"x", bytes(range(256)) * 4])
def test_round_trip(codec: EnvelopeCodec, sender_id: int, payload: bytes) -> None:
    datagram = codec.encode(sender_id, payload, kind=7)
    assert codec.decode(datagram) == Envelope(sender_id, 7, payload)


def test_layout_is_as_documented() -> None:
    datagram = keyed.encode(3, b"abc", kind=9)
    assert datagram[:HEADER_SIZE] == header(flags=1, kind=9, sender=3)
    assert datagram[HEADER_SIZE:-TAG_SIZE] == b"abc"
    signed = datagram[:-TAG_SIZE]
    assert datagram[-TAG_SIZE:] == hmac.new(KEY, signed, hashlib.sha256).digest()[:TAG_SIZE]
    assert plain.encode(3, b"abc", kind=9) == header(kind=9, sender=3) + b"abc"


def test_the_largest_payload_fits_and_one_more_byte_does_not() -> None:
    codec = EnvelopeCodec(1, key=KEY, max_datagram=100)
    assert codec.max_payload == 100 - HEADER_SIZE - TAG_SIZE
    datagram = codec.encode(1, b"p" * codec.max_payload)
    assert len(datagram) == 100
    assert codec.decode(datagram).payload == b"p" * codec.max_payload
    with pytest.raises(PayloadTooLarge):
        codec.encode(1, b"p" * (codec.max_payload + 1))


def test_decode_copies_the_payload_out_of_a_reused_buffer() -> None:
    buffer = bytearray(keyed.encode(5, b"first"))
    envelope = keyed.decode(memoryview(buffer))
    buffer[:] = bytes(len(buffer))
    assert envelope.payload == b"first"


@pytest.mark.parametrize("sender_id, kind", [(-1, 0), (1 << 64, 0), (1, 256), (1, -1)])
def test_encode_rejects_out_of_range_fields(sender_id: int, kind: int) -> None:
    with pytest.raises(ValueError):
        plain.encode(sender_id, b"", kind)


# -- rejection reasons ----------------------------------------------------------


def test_short() -> None:
    assert reason_of(plain, b"") == "short"
    assert reason_of(plain, plain.encode(1, b"")[:-1]) == "short"
    # Keyed: a tagged header with fewer than TAG_SIZE bytes after it.
    assert reason_of(keyed, header(flags=1) + b"t" * (TAG_SIZE - 1)) == "short"


def test_magic() -> None:
    assert reason_of(plain, header(magic=b"GE") + b"T / HTTP/1.1") == "magic"


def test_version_and_unknown_flags() -> None:
    assert reason_of(plain, header(version=PROTOCOL_VERSION + 1)) == "version"
    assert reason_of(plain, header(flags=0x80)) == "version"


def test_cluster() -> None:
    assert reason_of(plain, EnvelopeCodec(43).encode(1, b"hi")) == "cluster"
    assert reason_of(keyed, EnvelopeCodec(43, key=KEY).encode(1, b"hi")) == "cluster"


def test_oversize() -> None:
    small = EnvelopeCodec(42, max_datagram=64)
    assert reason_of(small, plain.encode(1, b"p" * 64)) == "oversize"
    assert small.decode(plain.encode(1, b"p" * (64 - HEADER_SIZE))).payload == b"p" * 43


def test_auth_good_bad_missing_and_unexpected() -> None:
    good = keyed.encode(1, b"payload")
    assert keyed.decode(good).payload == b"payload"
    # Missing: an untagged datagram to a keyed receiver.
    assert reason_of(keyed, plain.encode(1, b"payload")) == "auth"
    # Bad: a wrong key, a flipped payload bit, a flipped tag bit.
    assert reason_of(keyed, EnvelopeCodec(42, key=b"other").encode(1, b"payload")) == "auth"
    tampered = bytearray(good)
    tampered[HEADER_SIZE] ^= 1
    assert reason_of(keyed, tampered) == "auth"
    tampered = bytearray(good)
    tampered[-1] ^= 1
    assert reason_of(keyed, tampered) == "auth"
    # A forged sender id, keeping the tag, is caught too.
    assert reason_of(keyed, header(flags=1, sender=2) + good[HEADER_SIZE:]) == "auth"
    # Stripping the tag and clearing the flag does not help either.
    assert reason_of(keyed, header() + b"payload") == "auth"
    # Unexpected: a tagged datagram to a receiver without a key.
    assert reason_of(plain, good) == "auth"


def test_malformed_datagram_carries_its_reason() -> None:
    error = MalformedDatagram("auth", "bad tag")
    assert error.reason == "auth"
    assert str(error) == "auth: bad tag"


# -- configuration --------------------------------------------------------------


def test_cluster_id_from() -> None:
    assert cluster_id_from(0) == 0
    assert cluster_id_from(U64_MAX) == U64_MAX
    expected = int.from_bytes(hashlib.sha256(b"prod-east").digest()[:8], "big")
    assert cluster_id_from("prod-east") == expected
    assert cluster_id_from("prod-east") != cluster_id_from("prod-west")
    for bad in (-1, 1 << 64, True, 1.5, b"bytes", None):
        with pytest.raises(ValueError):
            cluster_id_from(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cluster_id": -1},
        {"cluster_id": 1 << 64},
        {"cluster_id": 1, "key": b""},
        {"cluster_id": 1, "max_datagram": HEADER_SIZE},
        {"cluster_id": 1, "key": KEY, "max_datagram": HEADER_SIZE + TAG_SIZE},
        {"cluster_id": 1, "max_datagram": MAX_UDP_DATAGRAM + 1},
    ],
)
def test_codec_rejects_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EnvelopeCodec(**kwargs)  # type: ignore[arg-type]


# -- properties -----------------------------------------------------------------

u64 = st.integers(min_value=0, max_value=U64_MAX)


@given(sender_id=u64, kind=st.integers(0, 255), payload=st.binary(max_size=2000))
def test_round_trip_property(sender_id: int, kind: int, payload: bytes) -> None:
    for codec in (plain, keyed):
        assert codec.decode(codec.encode(sender_id, payload, kind)) == Envelope(
            sender_id, kind, payload
        )


@given(garbage=st.binary(max_size=300))
def test_garbage_raises_only_malformed_datagram(garbage: bytes) -> None:
    for codec in (plain, keyed, EnvelopeCodec(42, max_datagram=64)):
        try:
            codec.decode(garbage)
        except MalformedDatagram as e:
            assert e.reason in REASONS


@given(
    prefix=st.sampled_from([header(), header(flags=1), header(cluster=7)]),
    tail=st.binary(max_size=100),
)
def test_garbage_behind_a_plausible_header_raises_only_malformed_datagram(
    prefix: bytes, tail: bytes
) -> None:
    for codec in (plain, keyed):
        try:
            codec.decode(prefix + tail)
        except MalformedDatagram as e:
            assert e.reason in REASONS


@given(payload=st.binary(max_size=200), data=st.data())
def test_any_single_byte_change_to_a_keyed_datagram_is_rejected(
    payload: bytes, data: st.DataObject
) -> None:
    datagram = bytearray(keyed.encode(9, payload, kind=3))
    position = data.draw(st.integers(0, len(datagram) - 1), label="position")
    datagram[position] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(MalformedDatagram):
        keyed.decode(datagram)


def test_the_fragment_flag_travels_in_the_header_under_the_tag() -> None:
    datagram = keyed.encode(3, b"part", 9, fragment=True)
    assert datagram[:HEADER_SIZE] == header(flags=FLAG_FRAGMENT | 1, kind=9, sender=3)
    assert keyed.decode(datagram) == Envelope(3, 9, b"part", fragment=True)
    assert plain.decode(plain.encode(3, b"part", fragment=True)).fragment
    assert not plain.decode(plain.encode(3, b"part")).fragment
    # Flipping the flag breaks the tag: a whole message cannot pass as a fragment.
    flipped = datagram[:3] + bytes([datagram[3] & ~FLAG_FRAGMENT]) + datagram[4:]
    assert reason_of(keyed, flipped) == "auth"
