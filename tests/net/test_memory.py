"""The in-memory network: UDP's endpoint surface, faults applied, all under the autojump clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from net import (
    IN_DROP_REASONS,
    STAT_KEYS,
    Datagram,
    EnvelopeCodec,
    FaultInjector,
    MemoryEndpoint,
    MemoryNetwork,
    PayloadTooLarge,
)
from net.fragments import FRAGMENT_HEADER_SIZE, split

# Every test takes ``autojump_clock``: pytest-trio runs a test on that clock only
# when the test asks for the fixture by argument (``usefixtures`` is not enough).
Clock = trio.testing.MockClock


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def serve(nursery: trio.Nursery, *endpoints: MemoryEndpoint) -> None:
    for endpoint in endpoints:
        assert await nursery.start(endpoint.serve) == endpoint.address


def drain(endpoint: MemoryEndpoint) -> list[bytes]:
    """Everything queued for ``endpoint`` right now (memory delivery is synchronous)."""
    payloads = []
    while True:
        try:
            payloads.append(endpoint.receive_channel.receive_nowait().payload)
        except trio.WouldBlock:
            return payloads


def check_in_counters(endpoint: MemoryEndpoint) -> None:
    stats = endpoint.stats
    dropped = sum(stats[f"dropped_in_{reason}"] for reason in IN_DROP_REASONS)
    messages_in = stats["datagrams_in"] - stats["fragments_in"] + stats["reassembled"]
    assert messages_in == stats["delivered"] + dropped


async def test_endpoints_exchange_datagrams(nursery: trio.Nursery, autojump_clock: Clock) -> None:
    network = MemoryNetwork(cluster_id=9, key=b"k")
    one, two = network.endpoint(1), network.endpoint(2)
    await serve(nursery, one, two)
    assert network.serving() == [1, 2]
    one.send(2, b"ping", kind=4)
    assert await two.receive_channel.receive() == Datagram(1, 4, b"ping", ("memory", 1))
    two.send(1, b"pong")
    assert (await one.receive_channel.receive()).payload == b"pong"
    assert sorted(one.stats) == sorted(STAT_KEYS)
    assert one.stats["datagrams_out"] == 1 and one.stats["delivered"] == 1
    assert one.stats["bytes_out"] == two.stats["bytes_in"]


async def test_every_inbound_drop_reason_is_counted(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    network = MemoryNetwork(cluster_id=9, key=b"k", max_datagram=200, queue_size=1)
    node = network.endpoint(1)
    await serve(nursery, node)
    good = network.codec
    network.inject(1, b"")  # short
    network.inject(1, b"XX" + good.encode(2, b"x")[2:])  # magic
    network.inject(1, b"tR\x02" + good.encode(2, b"x")[3:])  # version
    network.inject(1, EnvelopeCodec(10, key=b"k").encode(2, b"x"))  # cluster
    network.inject(1, EnvelopeCodec(9, key=b"other").encode(2, b"x"))  # auth
    network.inject(1, EnvelopeCodec(9).encode(2, b"x"))  # auth: no tag
    network.inject(1, b"tR" + bytes(250))  # oversize
    network.inject(1, good.encode(2, b"first"))  # delivered, fills the channel
    network.inject(1, good.encode(2, b"second"))  # overflow
    assert {k: v for k, v in node.stats.items() if k.startswith("dropped_in") and v} == {
        "dropped_in_short": 1,
        "dropped_in_magic": 1,
        "dropped_in_version": 1,
        "dropped_in_cluster": 1,
        "dropped_in_auth": 2,
        "dropped_in_oversize": 1,
        "dropped_in_overflow": 1,
    }
    check_in_counters(node)
    assert drain(node) == [b"first"]


async def test_overflow_of_the_bounded_channel_is_dropped_and_counted(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    network = MemoryNetwork()
    sender, receiver = network.endpoint(1), network.endpoint(2, queue_size=3)
    await serve(nursery, sender, receiver)
    for i in range(10):
        sender.send(2, b"%d" % i)
    assert receiver.stats["dropped_in_overflow"] == 7
    assert drain(receiver) == [b"0", b"1", b"2"]
    sender.send(2, b"after")
    assert drain(receiver) == [b"after"]
    check_in_counters(receiver)


async def test_a_closed_receive_channel_counts_closed(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    network = MemoryNetwork()
    sender, receiver = network.endpoint(1), network.endpoint(2)
    await serve(nursery, sender, receiver)
    await receiver.receive_channel.aclose()
    sender.send(2, b"x")
    assert receiver.stats["dropped_in_closed"] == 1


async def test_partitions_one_way_two_way_and_heal(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    faults = FaultInjector(random.Random(1))
    network = MemoryNetwork(faults=faults)
    a, b, c = (network.endpoint(i) for i in (1, 2, 3))
    await serve(nursery, a, b, c)

    faults.partition({1}, {2}, one_way=True)
    a.send(2, b"a->b")
    b.send(1, b"b->a")
    assert drain(b) == [] and drain(a) == [b"b->a"]

    faults.partition({3}, {1, 2})
    for src in (a, b, c):
        for dst in (1, 2, 3):
            if src.node_id != dst:
                src.send(dst, b"%d->%d" % (src.node_id, dst))
    assert drain(a) == [b"2->1"]
    assert drain(b) == []
    assert drain(c) == []

    faults.heal()
    a.send(2, b"healed")
    c.send(1, b"healed")
    assert drain(b) == [b"healed"] and drain(a) == [b"healed"]
    # A forged datagram claiming a partitioned sender is cut on receipt too.
    faults.partition({1}, {2})
    network.inject(2, network.codec.encode(1, b"forged"))
    assert drain(b) == [] and b.stats["dropped_in_partition"] == 1


async def test_duplicate_and_reorder_reach_the_receiver(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    faults = FaultInjector(random.Random(1))
    network = MemoryNetwork(faults=faults)
    a, b = network.endpoint(1), network.endpoint(2)
    await serve(nursery, a, b)
    faults.set(dupe=1.0)
    a.send(2, b"twice")
    assert drain(b) == [b"twice", b"twice"]
    faults.set(dupe=0.0, reorder=1.0)
    for payload in (b"1", b"2", b"3", b"4"):
        a.send(2, payload)
    assert drain(b) == [b"2", b"1", b"4", b"3"]


async def test_delay_uses_trio_time(nursery: trio.Nursery, autojump_clock: Clock) -> None:
    faults = FaultInjector(random.Random(1))
    network = MemoryNetwork(faults=faults)
    a, b = network.endpoint(1), network.endpoint(2)
    await serve(nursery, a, b)
    faults.set(delay_ms=(50, 50))
    start = trio.current_time()
    a.send(2, b"late")
    datagram = await b.receive_channel.receive()
    assert datagram.payload == b"late"
    assert trio.current_time() - start == pytest.approx(0.050)


async def test_delay_range_scrambles_order_deterministically(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    async def run(seed: int) -> list[bytes]:
        faults = FaultInjector(random.Random(seed))
        faults.set(delay_ms=(1, 100))
        network = MemoryNetwork(faults=faults)
        a, b = network.endpoint(1), network.endpoint(2)
        async with trio.open_nursery() as inner:
            await serve(inner, a, b)
            for i in range(50):
                a.send(2, b"%d" % i)
            received = [(await b.receive_channel.receive()).payload for _ in range(50)]
            inner.cancel_scope.cancel()
        return received

    first = await run(7)
    assert sorted(first) == sorted(b"%d" % i for i in range(50))
    assert first != [b"%d" % i for i in range(50)]
    assert await run(7) == first


async def test_delayed_datagrams_die_with_their_sender(autojump_clock: Clock) -> None:
    faults = FaultInjector(random.Random(1))
    faults.set(delay_ms=(10, 10))
    network = MemoryNetwork(faults=faults)
    receiver = network.endpoint(2)
    async with trio.open_nursery() as outer:
        await serve(outer, receiver)
        async with trio.open_nursery() as inner:
            sender = network.endpoint(1)
            await serve(inner, sender)
            sender.send(2, b"in flight")
            inner.cancel_scope.cancel()
        await trio.sleep(1)
        assert drain(receiver) == []
        outer.cancel_scope.cancel()


async def test_restart_ends_the_old_channel_and_a_new_endpoint_takes_over(
    autojump_clock: Clock,
) -> None:
    network = MemoryNetwork()
    peer = network.endpoint(2)
    async with trio.open_nursery() as outer:
        await serve(outer, peer)
        old = network.endpoint(1)
        async with trio.open_nursery() as inner:
            await serve(inner, old)
            with pytest.raises(ValueError):
                await inner.start(network.endpoint(1).serve)
            inner.cancel_scope.cancel()
        assert [d async for d in old.receive_channel] == []  # ended, not hung
        peer.send(1, b"lost")  # nobody serves node 1: the datagram vanishes
        old.send(2, b"from the dead")
        assert old.stats["dropped_out_closed"] == 1
        new = network.endpoint(1)
        await serve(outer, new)
        peer.send(1, b"hello again")
        assert drain(new) == [b"hello again"]
        outer.cancel_scope.cancel()


async def test_an_endpoint_serves_once(nursery: trio.Nursery, autojump_clock: Clock) -> None:
    endpoint = MemoryNetwork().endpoint(1)
    await serve(nursery, endpoint)
    with pytest.raises(RuntimeError):
        await endpoint.serve()


async def test_routing_table_overrides_the_default_route(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    network = MemoryNetwork()
    a, b, c = (network.endpoint(i) for i in (1, 2, 3))
    await serve(nursery, a, b, c)
    a.set_peer(2, network.address(3))  # misconfigured on purpose
    a.send(2, b"x")
    assert drain(c) == [b"x"] and drain(b) == []
    assert a.peers == {2: ("memory", 3)}
    a.remove_peer(2)
    a.send(2, b"y")
    assert drain(b) == [b"y"]
    with pytest.raises(ValueError):
        a.set_peer(4, ("127.0.0.1", 4))


async def test_payload_too_large_is_the_callers_error(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    network = MemoryNetwork(max_datagram=100, max_message=1000)
    a = network.endpoint(1)
    await serve(nursery, a)
    a.send(1, b"x" * a.max_message)  # to itself, in fragments
    assert drain(a) == [b"x" * a.max_message]
    with pytest.raises(PayloadTooLarge):
        a.send(1, b"x" * (a.max_message + 1))


async def test_large_payloads_cross_a_faulty_network_whole_or_not_at_all(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    faults = FaultInjector(random.Random(5))
    faults.set(drop=0.02, dupe=0.2, reorder=0.3, delay_ms=(0.0, 5.0))
    network = MemoryNetwork(cluster_id=3, key=b"k", max_datagram=1200, faults=faults)
    a, b, c = network.endpoint(1), network.endpoint(2), network.endpoint(3)
    await serve(nursery, a, b, c)
    sent = {random.Random(i).randbytes(5000 + 997 * i) for i in range(20)}
    for i, payload in enumerate(sorted(sent)):
        (a if i % 2 else c).send(2, payload, kind=7)
    await trio.sleep(1)
    datagrams = []
    while True:
        try:
            datagrams.append(b.receive_channel.receive_nowait())
        except trio.WouldBlock:
            break
    received = [d.payload for d in datagrams]
    assert {d.kind for d in datagrams} == {7}
    assert set(received) <= sent  # nothing corrupted, nothing invented
    assert len(received) == len(set(received))  # nothing twice
    assert len(received) >= 5  # most survive a 2% loss of ~10 fragments each
    assert faults.stats["duplicated"] and faults.stats["reordered"] and faults.stats["dropped"]
    assert b.stats["dropped_fragment_duplicate"] > 0
    check_in_counters(b)


async def test_a_forged_fragment_cannot_poison_reassembly(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    network = MemoryNetwork(cluster_id=3, key=b"k", max_datagram=200)
    a, b = network.endpoint(1), network.endpoint(2)
    await serve(nursery, a, b)
    forger = EnvelopeCodec(3, key=b"not the key", max_datagram=200)
    payload = bytes(range(256)) * 4
    # Node 1's fragments, each preceded by a twin forged without the key: the
    # same fragment header, other bytes.
    chunk = network.codec.max_payload - FRAGMENT_HEADER_SIZE
    real = [network.codec.encode(1, f, 0, fragment=True) for f in split(payload, chunk, 42)]
    for datagram in real:
        header_and_junk = datagram[21:41] + b"\xff" * (len(datagram) - 41 - 16)
        network.inject(2, forger.encode(1, header_and_junk, 0, fragment=True))
        network.inject(2, datagram)
    assert drain(b) == [payload]
    assert b.stats["dropped_in_auth"] == len(real)
    check_in_counters(b)


async def test_a_restarted_sender_is_not_mistaken_for_its_previous_life(
    nursery: trio.Nursery, autojump_clock: Clock
) -> None:
    network = MemoryNetwork(max_datagram=200)
    b = network.endpoint(2)
    await serve(nursery, b)
    old, new = b"o" * 1000, b"n" * 1000
    async with trio.open_nursery() as inner:
        first = network.endpoint(1)
        await serve(inner, first)
        first.send(2, old)
        inner.cancel_scope.cancel()
    second = network.endpoint(1)
    await serve(nursery, second)
    second.send(2, new)
    assert drain(b) == [old, new]
