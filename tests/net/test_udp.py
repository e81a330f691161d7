"""UdpEndpoint over real loopback sockets. Every test runs under ``trio.fail_after``."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Callable

import pytest
import trio

from net import (
    IN_DROP_REASONS,
    Datagram,
    EnvelopeCodec,
    FaultInjector,
    UdpEndpoint,
)

TIMEOUT_S = 5
KEY = b"loopback key"


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            yield nursery
            nursery.cancel_scope.cancel()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition``: for kernel-side effects that no trio event announces."""
    while not condition():
        await trio.sleep(0.001)


def check_in_counters(endpoint: UdpEndpoint) -> None:
    stats = endpoint.stats
    dropped = sum(stats[f"dropped_in_{reason}"] for reason in IN_DROP_REASONS)
    messages_in = stats["datagrams_in"] - stats["fragments_in"] + stats["reassembled"]
    assert messages_in == stats["delivered"] + dropped


async def pair(nursery: trio.Nursery, **kwargs: object) -> tuple[UdpEndpoint, UdpEndpoint]:
    one = UdpEndpoint(1, cluster_id=77, **kwargs)  # type: ignore[arg-type]
    two = UdpEndpoint(2, cluster_id=77, **kwargs)  # type: ignore[arg-type]
    one.set_peer(2, await nursery.start(two.serve))
    two.set_peer(1, await nursery.start(one.serve))
    return one, two


def raw_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_two_endpoints_exchange_datagrams(nursery: trio.Nursery) -> None:
    one, two = await pair(nursery, key=KEY)
    host, port = one.address or ("", 0)
    assert host == "127.0.0.1" and port > 0
    for i in range(100):
        one.send(2, b"ping %d" % i, kind=1)
    for i in range(100):
        datagram = await two.receive_channel.receive()
        assert datagram == Datagram(1, 1, b"ping %d" % i, (host, port))
    two.send(1, b"pong")
    assert (await one.receive_channel.receive()).payload == b"pong"
    assert one.stats["datagrams_out"] == 100 and two.stats["delivered"] == 100
    assert one.stats["bytes_out"] == two.stats["bytes_in"]


async def test_bad_datagrams_are_dropped_and_counted_by_reason(nursery: trio.Nursery) -> None:
    node = UdpEndpoint(1, cluster_id=77, key=KEY, max_datagram=512)
    address = await nursery.start(node.serve)
    good = EnvelopeCodec(77, key=KEY)
    bad = [
        b"\x00",  # short
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # magic
        b"tR\x09" + good.encode(2, b"x")[3:],  # version
        EnvelopeCodec(78, key=KEY).encode(2, b"x"),  # cluster
        EnvelopeCodec(77, key=b"forged").encode(2, b"x"),  # auth
        EnvelopeCodec(77).encode(2, b"x"),  # auth: unauthenticated
        good.encode(2, b"x" * 600),  # oversize for this node
    ]
    with raw_socket() as sock:
        for raw in bad:
            sock.sendto(raw, address)
        sock.sendto(good.encode(2, b"sentinel"), address)
        # Loopback keeps one socket's datagrams in order: the sentinel comes last.
        datagram = await node.receive_channel.receive()
    assert datagram.payload == b"sentinel" and datagram.sender_id == 2
    assert {k: v for k, v in node.stats.items() if k.startswith("dropped_in") and v} == {
        "dropped_in_short": 1,
        "dropped_in_magic": 1,
        "dropped_in_version": 1,
        "dropped_in_cluster": 1,
        "dropped_in_auth": 2,
        "dropped_in_oversize": 1,
    }
    check_in_counters(node)


async def test_overflow_is_dropped_and_counted(nursery: trio.Nursery) -> None:
    one, two = await pair(nursery, queue_size=4)
    for i in range(20):
        one.send(2, b"%d" % i)
    await wait_until(lambda: two.stats["datagrams_in"] == 20)
    assert two.stats["dropped_in_overflow"] == 16
    assert [(await two.receive_channel.receive()).payload for _ in range(4)] == [
        b"0",
        b"1",
        b"2",
        b"3",
    ]
    check_in_counters(two)


async def test_a_failing_peer_never_stops_sends_to_the_others(nursery: trio.Nursery) -> None:
    one, two = await pair(nursery)
    with raw_socket() as sock:
        dead_port = sock.getsockname()[1]
    one.set_peer(3, ("127.0.0.1", dead_port))  # nobody listens any more
    one.set_peer(4, ("255.255.255.255", 9))  # broadcast without SO_BROADCAST: EACCES
    for i in range(50):
        one.send(3, b"to the dead %d" % i)
        one.send(4, b"refused %d" % i)
        one.send(5, b"unknown %d" % i)
        one.send(2, b"%d" % i)
    assert [(await two.receive_channel.receive()).payload for _ in range(50)] == [
        b"%d" % i for i in range(50)
    ]
    assert one.stats["dropped_out_no_route"] == 50
    assert one.stats["dropped_out_error"] == 50
    assert one.stats["datagrams_out"] == 100  # to the dead port, and to node 2


async def test_partition_also_cuts_the_receive_path(nursery: trio.Nursery) -> None:
    faults = FaultInjector(random.Random(3))
    one = UdpEndpoint(1, cluster_id=77)
    two = UdpEndpoint(2, cluster_id=77, faults=faults)
    one.set_peer(2, await nursery.start(two.serve))
    await nursery.start(one.serve)
    faults.partition({2}, {1})  # configured only in node 2's process
    one.send(2, b"cut")
    await wait_until(lambda: two.stats["datagrams_in"] == 1)
    assert two.stats["dropped_in_partition"] == 1
    faults.heal()
    one.send(2, b"through")
    assert (await two.receive_channel.receive()).payload == b"through"


async def test_faults_apply_to_the_send_path(nursery: trio.Nursery) -> None:
    faults = FaultInjector(random.Random(3))
    faults.set(dupe=1.0, delay_ms=(5, 10))
    one = UdpEndpoint(1, cluster_id=77, faults=faults)
    two = UdpEndpoint(2, cluster_id=77)
    one.set_peer(2, await nursery.start(two.serve))
    await nursery.start(one.serve)
    one.send(2, b"twice, later")
    for _ in range(2):
        assert (await two.receive_channel.receive()).payload == b"twice, later"
    assert faults.stats["duplicated"] == 1 and faults.stats["delayed"] == 2


async def test_stopping_closes_the_channel_and_later_sends_count_closed() -> None:
    with trio.fail_after(TIMEOUT_S):
        node = UdpEndpoint(1, cluster_id=77, peers={2: ("127.0.0.1", 9)})
        async with trio.open_nursery() as nursery:
            await nursery.start(node.serve)
            assert node.address is not None
            nursery.cancel_scope.cancel()
        assert node.address is None
        assert [d async for d in node.receive_channel] == []
        node.send(2, b"too late")
        assert node.stats["dropped_out_closed"] == 1


async def test_binding_a_taken_port_raises() -> None:
    with trio.fail_after(TIMEOUT_S), raw_socket() as sock:
        node = UdpEndpoint(1, cluster_id=77, bind=sock.getsockname())
        async with trio.open_nursery() as nursery:
            with pytest.raises(OSError):
                await nursery.start(node.serve)


@pytest.mark.parametrize(
    "address", [("localhost", 7000), ("::1", 7000), ("127.0.0.1", 0), ("127.0.0.1", 70000)]
)
def test_peer_addresses_must_be_ipv4_literals_with_a_port(address: tuple[str, int]) -> None:
    node = UdpEndpoint(1, cluster_id=77)
    with pytest.raises(ValueError):
        node.set_peer(2, address)
    with pytest.raises(ValueError):
        UdpEndpoint(1, cluster_id=77, peers={2: address})


@pytest.mark.parametrize(
    "kwargs",
    [{"recv_batch": 0}, {"queue_size": 0}, {"max_datagram": 70000}, {"key": b""}],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        UdpEndpoint(1, cluster_id=77, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        UdpEndpoint(-1, cluster_id=77)


def test_sends_before_serving_are_dropped_and_counted() -> None:
    faults = FaultInjector(random.Random(3))
    node = UdpEndpoint(1, cluster_id=77, peers={2: ("127.0.0.1", 9)}, faults=faults)
    node.send(2, b"too early")
    assert node.stats["dropped_out_closed"] == 1
    assert faults.stats["routed"] == 0  # never reached the fault injector


async def test_a_one_mebibyte_payload_crosses_loopback_in_fragments(nursery: trio.Nursery) -> None:
    one, two = await pair(nursery, key=KEY)
    payload = random.Random(1).randbytes(1 << 20)
    one.send(2, payload, kind=3)
    datagram = await two.receive_channel.receive()
    assert (datagram.sender_id, datagram.kind, datagram.payload) == (1, 3, payload)
    assert one.stats["datagrams_out"] == two.stats["fragments_in"] > 1
    assert two.stats["reassembled"] == 1
    check_in_counters(two)
