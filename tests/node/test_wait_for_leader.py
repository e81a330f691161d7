"""``Node.wait_for_leader``: the documented way to wait for an election after start."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.node.test_node import harness
from traft.node import NoLeaderError, NotLeaderError


async def test_every_node_learns_the_leader(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    async with harness(tmp_path) as h:
        nodes = [await h.start(i) for i in (1, 2, 3)]
        with pytest.raises(NoLeaderError):
            await nodes[0].submit(b"1")  # submit does not wait for an election
        with trio.fail_after(10):
            leaders = {await node.wait_for_leader(timeout=5) for node in nodes}
        (leader_id,) = leaders
        leader = h.nodes[leader_id]
        assert leader.raft is not None and leader.raft.is_leader
        assert await leader.submit(b"5") == 5
        follower = next(n for n in nodes if n is not leader)
        with pytest.raises(NotLeaderError) as info:
            await follower.submit(b"1")
        assert info.value.leader_id == leader_id


async def test_no_leader_without_a_majority(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    async with harness(tmp_path) as h:
        node = await h.start(1)  # one of three: it can never win an election
        start = trio.current_time()
        with pytest.raises(NoLeaderError):
            await node.wait_for_leader(timeout=3)
        assert 3 <= trio.current_time() - start < 3.1
