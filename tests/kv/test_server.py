"""The app behind the real HTTP server (traft.kv.server) on sockets, driven by the synchronous client and the CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import pytest
import trio

from tests.kv.fakenode import FakeNode
from traft import cli
from traft.kv.client import Client, ClientError
from traft.kv.http import KVApp
from traft.kv.server import serve_http
from traft.node.errors import ProposalLost

pytestmark = pytest.mark.timeout(30)


class Served:
    def __init__(self, node: FakeNode, url: str) -> None:
        self.node = node
        self.url = url


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Any]]:
    """Start fake nodes behind the HTTP server on 127.0.0.1, port 0; all stop at the end."""
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:

        async def start(node_id: int = 1, max_command_bytes: int = 2000) -> Served:
            node = FakeNode(node_id)
            app = KVApp(node, node.store, max_command_bytes=max_command_bytes)
            host, port = await nursery.start(
                partial(serve_http, app, "127.0.0.1", 0, shutdown=shutdown)
            )
            return Served(node, f"http://{host}:{port}")

        with trio.fail_after(20):
            yield start
        shutdown.set()


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(partial(fn, *args, **kwargs))


async def test_round_trip_over_http(servers: Callable[..., Any]) -> None:
    s = await servers()
    client = Client([s.url], retry_for=2)
    reply = await in_thread(client.request, "PUT", "/kv/a%20b", b"v", idempotency_key="k1")
    assert reply.status == 200 and reply.json() == {"index": 1}
    reply = await in_thread(client.request, "GET", "/kv/a%20b")
    assert reply.body == b"v"
    reply = await in_thread(client.request, "PUT", "/kv/big", b"x" * 5000)
    assert reply.status == 413 and "limit" in reply.error


async def test_client_follows_redirect_to_the_leader(servers: Callable[..., Any]) -> None:
    leader = await servers(1)
    follower = await servers(2)
    follower.node.role, follower.node.leader_id, follower.node.leader_url = (
        "follower",
        1,
        leader.url,
    )
    client = Client([follower.url], retry_for=2)
    reply = await in_thread(client.request, "POST", "/ticket", b"", idempotency_key="t")
    assert reply.status == 200 and reply.json()["ticket"] == 1
    assert client.leader == leader.url
    assert leader.node.store.last_ticket == 1 and follower.node.submitted == []


async def test_client_retries_503_with_the_same_key(servers: Callable[..., Any]) -> None:
    s = await servers()
    s.node.fail_with = [ProposalLost(), ProposalLost()]
    retries: list[str] = []
    client = Client([s.url], retry_for=5, on_retry=retries.append)
    reply = await in_thread(client.request, "POST", "/ticket", b"", idempotency_key="same")
    assert reply.status == 200 and len(retries) == 2 and "503" in retries[0]
    again = await in_thread(client.request, "POST", "/ticket", b"", idempotency_key="same")
    assert again.json() == reply.json() and s.node.store.last_ticket == 1


async def test_client_gives_up_with_the_last_problem(servers: Callable[..., Any]) -> None:
    s = await servers()
    s.node.role, s.node.leader_id, s.node.leader_url = "candidate", None, None
    client = Client([s.url], retry_for=0.3)
    with pytest.raises(ClientError, match="no leader"):
        await in_thread(client.request, "GET", "/kv/a")
    dead = Client(["http://127.0.0.1:1"], retry_for=0.2)
    with pytest.raises(ClientError, match="connection refused"):
        await in_thread(dead.request, "GET", "/kv/a")


async def test_client_moves_on_from_a_dead_node(servers: Callable[..., Any]) -> None:
    s = await servers()
    client = Client(["http://127.0.0.1:1", s.url], retry_for=5)
    reply = await in_thread(client.request, "GET", "/kv/a")
    assert reply.status == 404 and client.leader == s.url


async def test_client_moves_on_from_a_node_without_leader(servers: Callable[..., Any]) -> None:
    # Regression (found by scripts/nemesis): a node cut off in a minority, or removed
    # and never told, answers 503 "no leader" for as long as that lasts; the client
    # retried it alone until it gave up, although the next URL had a leader.
    lost = await servers(1)
    lost.node.role, lost.node.leader_id, lost.node.leader_url = "follower", None, None
    good = await servers(2)
    client = Client([lost.url, good.url], retry_for=5)
    reply = await in_thread(client.request, "POST", "/ticket", b"", idempotency_key="t")
    assert reply.status == 200 and client.leader == good.url


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = await in_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


async def test_cli_commands(
    servers: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s = await servers()
    url = ("--url", s.url)
    assert await run_cli(capsys, "put", "k/1", "hello", *url) == (0, "OK (index 1)\n", "")
    assert (await run_cli(capsys, "get", "k/1", *url))[:2] == (0, "hello")
    status, _, err = await run_cli(capsys, "put", "k/1", "x", "--prev", "nope", *url)
    assert status == 3 and "has another value" in err
    assert (await run_cli(capsys, "put", "k/1", "x", "--prev", "hello", *url))[0] == 0
    status, _, err = await run_cli(capsys, "get", "missing", *url)
    assert status == 3 and "not found" in err
    assert (await run_cli(capsys, "del", "k/1", *url))[1] == "OK, deleted (index 4)\n"
    assert (await run_cli(capsys, "ticket", *url))[1] == "1\n"
    status, out, _ = await run_cli(capsys, "status", *url)
    assert status == 0 and "leader" in out and s.url.partition("://")[2] in out
    status, out, _ = await run_cli(capsys, "status", "--json", *url)
    assert json.loads(out)[s.url]["id"] == 1
    status, out, _ = await run_cli(
        capsys, "member", "add", "4", "127.0.0.1:7004", "127.0.0.1:8004", *url
    )
    assert status == 0 and "node 4 added" in out and 4 in s.node.members
    status, out, _ = await run_cli(capsys, "member", "remove", "4", *url)
    assert status == 0 and 4 not in s.node.members
    # Every write carried an Idempotency-Key.
    from traft.kv.commands import decode_command

    assert all(decode_command(c).session for c in s.node.submitted)


async def test_cli_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAFT_URL", raising=False)
    status, _, err = await run_cli(capsys, "get", "a")
    assert status == 2 and "--config" in err and "Traceback" not in err
    (tmp_path / "bad.toml").write_text("cluster_id = 5\n")
    status, _, err = await run_cli(capsys, "ticket", "--config", "bad.toml")
    assert status == 2 and "cluster_id" in err
    status, _, err = await run_cli(capsys, "ticket", "--url", "ftp://x")
    assert status == 2 and "http://" in err
    status, _, err = await run_cli(
        capsys, "member", "add", "4", "nowhere", "127.0.0.1:1", "--url", "http://127.0.0.1:1"
    )
    assert status == 2 and "PEER_ADDR" in err
    status, _, err = await run_cli(
        capsys, "ticket", "--url", "http://127.0.0.1:1", "--retry-for", "0.2"
    )
    assert status == 1 and "connection refused" in err


async def test_cli_status_shows_down_nodes(
    servers: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s = await servers()
    s.node.members[2] = {"id": 2, "voting": True, "peer": "127.0.0.1:7002", "http": "127.0.0.1:1"}
    status, out, _ = await run_cli(capsys, "status", "--url", s.url)
    assert status == 0
    line = next(x for x in out.splitlines() if x.startswith("2 "))
    assert "down (connection refused)" in line
