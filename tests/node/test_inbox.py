"""traft.node.inbox.Inbox alone: peers never wait, clients get backpressure."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from traft.core import TimeoutNow
from traft.node.errors import NodeStopped
from traft.node.inbox import Inbox
from traft.node.waiters import LeaderTransfer


def reply(term: int) -> TimeoutNow:
    return TimeoutNow(term=term, leader_id=1)


async def test_a_full_peer_queue_drops_instead_of_waiting() -> None:
    inbox = Inbox(peer_capacity=2, client_capacity=1)
    assert inbox.put_peer(1, reply(1)) and inbox.put_peer(2, reply(2))
    assert not inbox.put_peer(3, reply(3))
    assert [(i, m.term) for i, m in inbox.take_peers()] == [(1, 1), (2, 2)]
    assert inbox.put_peer(3, reply(3))


async def test_client_work_waits_for_room_and_peers_still_get_in() -> None:
    inbox = Inbox(peer_capacity=4, client_capacity=1)
    first, second = LeaderTransfer(1), LeaderTransfer(2)
    queued = []

    async def client(p: LeaderTransfer) -> None:
        await inbox.put_client(p)
        queued.append(p)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client, first)
        nursery.start_soon(client, second)
        await trio.testing.wait_all_tasks_blocked()
        assert len(queued) == 1  # the second waits for room
        assert inbox.put_peer(1, reply(1))  # a full client queue does not hold peers up
        assert inbox.take_client() == queued
        await trio.testing.wait_all_tasks_blocked()
        assert len(queued) == 2
    assert inbox.take_client() == [queued[1]]


async def test_wait_returns_for_a_tick_a_wake_or_a_peer() -> None:
    inbox = Inbox(peer_capacity=4, client_capacity=4)
    for poke in (inbox.tick, inbox.wake, lambda: inbox.put_peer(1, reply(1))):
        with trio.fail_after(1):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(inbox.wait)
                await trio.testing.wait_all_tasks_blocked()
                poke()
        inbox.take_peers()
        inbox.take_tick()
        inbox.take_client()
        assert not inbox.ready()


async def test_closing_fails_waiting_clients_and_returns_queued_work() -> None:
    inbox = Inbox(peer_capacity=4, client_capacity=1)
    queued = LeaderTransfer(1)
    await inbox.put_client(queued)
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:

            async def blocked() -> None:
                with pytest.raises(NodeStopped):
                    await inbox.put_client(LeaderTransfer(2))

            nursery.start_soon(blocked)
            await trio.testing.wait_all_tasks_blocked()
            assert inbox.close() == [queued]
    with pytest.raises(NodeStopped):
        await inbox.put_client(LeaderTransfer(3))
