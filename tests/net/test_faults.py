"""The fault injector's decisions (pure, seeded) and the delay line (autojump clock)."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from net.faults import DelayLine, FaultInjector


def injector(seed: int = 1) -> FaultInjector:
    return FaultInjector(random.Random(seed))


def fates(faults: FaultInjector, n: int, src: int = 1, dst: int = 2) -> list[list[bytes]]:
    """Route n numbered datagrams; return what came out for each, delays dropped."""
    return [[copy for _, copy in faults.route(src, dst, b"%d" % i)] for i in range(n)]


def test_a_fresh_injector_lets_everything_through_at_once() -> None:
    faults = injector()
    for i in range(100):
        assert faults.route(1, 2, b"%d" % i) == [(0.0, b"%d" % i)]
    assert faults.stats == {
        "routed": 100,
        "partitioned": 0,
        "dropped": 0,
        "duplicated": 0,
        "reordered": 0,
        "delayed": 0,
    }


def test_same_seed_same_decisions() -> None:
    runs = []
    for _ in range(2):
        faults = injector(seed=1234)
        faults.set(drop=0.2, dupe=0.2, reorder=0.2, delay_ms=(1, 20))
        runs.append([faults.route(1, 2, b"%d" % i) for i in range(500)])
    assert runs[0] == runs[1]
    other = injector(seed=4321)
    other.set(drop=0.2, dupe=0.2, reorder=0.2, delay_ms=(1, 20))
    assert [other.route(1, 2, b"%d" % i) for i in range(500)] != runs[0]


def test_drop() -> None:
    faults = injector()
    faults.set(drop=1.0)
    assert fates(faults, 10) == [[]] * 10
    faults.set(drop=0.25)
    lost = sum(1 for fate in fates(faults, 4000) if not fate)
    assert 800 < lost < 1200
    assert faults.stats["dropped"] == 10 + lost


def test_duplicate() -> None:
    faults = injector()
    faults.set(dupe=1.0)
    assert faults.route(1, 2, b"x") == [(0.0, b"x"), (0.0, b"x")]
    assert faults.stats["duplicated"] == 1


def test_reorder_holds_a_datagram_until_the_next_one_on_its_link_overtakes_it() -> None:
    faults = injector()
    faults.set(reorder=1.0)
    assert fates(faults, 4) == [[], [b"1", b"0"], [], [b"3", b"2"]]
    assert faults.stats["reordered"] == 2


def test_reorder_is_per_link() -> None:
    faults = injector()
    faults.set(reorder=1.0)
    assert faults.route(1, 2, b"a") == []
    assert faults.route(1, 3, b"b") == []  # another link, held on its own
    assert faults.route(2, 1, b"c") == []
    assert faults.route(1, 2, b"d") == [(0.0, b"d"), (0.0, b"a")]
    assert faults.route(1, 3, b"e") == [(0.0, b"e"), (0.0, b"b")]


def test_a_held_datagram_waits_for_one_that_gets_through() -> None:
    faults = injector()
    faults.set(reorder=1.0)
    assert faults.route(1, 2, b"held") == []
    faults.set(reorder=0.0, drop=1.0)
    assert faults.route(1, 2, b"lost") == []
    faults.set(drop=0.0)
    assert faults.route(1, 2, b"next") == [(0.0, b"next"), (0.0, b"held")]


def test_duplicate_and_reorder_send_one_copy_now_and_one_later() -> None:
    faults = injector()
    faults.set(dupe=1.0, reorder=1.0)
    assert faults.route(1, 2, b"a") == [(0.0, b"a")]
    assert faults.route(1, 2, b"b") == [(0.0, b"b"), (0.0, b"b"), (0.0, b"a")]


def test_delay_is_drawn_from_the_range_for_each_copy() -> None:
    faults = injector()
    faults.set(delay_ms=(5, 15), dupe=0.5)
    delays = [delay for i in range(1000) for delay, _ in faults.route(1, 2, b"%d" % i)]
    assert len(delays) > 1000  # some duplicates
    assert all(5.0 <= d <= 15.0 for d in delays)
    assert min(delays) < 6.0 and max(delays) > 14.0
    assert faults.stats["delayed"] == len(delays)


def test_two_way_partition() -> None:
    faults = injector()
    faults.partition({1}, {2, 3})
    for src, dst in [(1, 2), (1, 3), (2, 1), (3, 1)]:
        assert faults.blocked(src, dst)
        assert faults.route(src, dst, b"x") == []
    for src, dst in [(2, 3), (3, 2)]:
        assert not faults.blocked(src, dst)
        assert faults.route(src, dst, b"x") == [(0.0, b"x")]
    assert faults.stats["partitioned"] == 4


def test_one_way_partition() -> None:
    faults = injector()
    faults.partition({1}, {2}, one_way=True)
    assert faults.route(1, 2, b"x") == []
    assert faults.route(2, 1, b"y") == [(0.0, b"y")]


def test_heal_lifts_partitions_and_keeps_probabilities() -> None:
    faults = injector()
    faults.set(dupe=1.0)
    faults.partition({1, 2}, {3})
    faults.partition({4}, {5}, one_way=True)
    faults.heal()
    assert faults.settings()["blocked"] == []
    assert faults.route(1, 3, b"x") == [(0.0, b"x"), (0.0, b"x")]


def test_overlapping_partition_groups_are_refused() -> None:
    with pytest.raises(ValueError):
        injector().partition({1, 2}, {2, 3})


def test_set_changes_only_what_it_names_and_reset_restores_a_perfect_network() -> None:
    faults = injector()
    faults.set(drop=0.1, delay_ms=(1, 2))
    faults.set(dupe=0.3)
    faults.partition({1}, {2}, one_way=True)
    assert faults.settings() == {
        "drop": 0.1,
        "dupe": 0.3,
        "reorder": 0.0,
        "delay_ms": (1.0, 2.0),
        "blocked": [(1, 2)],
    }
    faults.set(reorder=1.0)
    faults.route(2, 1, b"held")
    faults.reset()
    assert faults.settings() == {
        "drop": 0.0,
        "dupe": 0.0,
        "reorder": 0.0,
        "delay_ms": (0.0, 0.0),
        "blocked": [],
    }
    assert faults.route(2, 1, b"x") == [(0.0, b"x")]  # the held one was discarded


@pytest.mark.parametrize(
    "kwargs",
    [
        {"drop": -0.1},
        {"dupe": 1.5},
        {"reorder": float("nan")},
        {"delay_ms": (5, 1)},
        {"delay_ms": (-1, 1)},
        {"delay_ms": (0, float("inf"))},
        {"drop": 0.5, "delay_ms": (2, 1)},
    ],
)
def test_bad_settings_are_refused_and_change_nothing(kwargs: dict[str, object]) -> None:
    faults = injector()
    before = faults.settings()
    with pytest.raises(ValueError):
        faults.set(**kwargs)  # type: ignore[arg-type]
    assert faults.settings() == before


async def test_delay_line_delivers_in_due_order_at_due_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    line = DelayLine()
    delivered: list[tuple[float, bytes]] = []
    start = trio.current_time()

    def deliver(datagram: bytes) -> None:
        delivered.append((trio.current_time() - start, datagram))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(line.run)
        line.schedule(30, deliver, b"c")
        line.schedule(10, deliver, b"a")
        line.schedule(20, deliver, b"b")
        line.schedule(20, deliver, b"b2")  # a tie goes in scheduling order
        await trio.sleep(0.015)
        assert [d for _, d in delivered] == [b"a"]
        line.schedule(1, deliver, b"early")  # earlier than anything queued
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert [d for _, d in delivered] == [b"a", b"early", b"b", b"b2", b"c"]
    times = [t for t, _ in delivered]
    assert times == pytest.approx([0.010, 0.016, 0.020, 0.020, 0.030])
    assert len(line) == 0
