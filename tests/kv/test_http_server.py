"""The HTTP/1.1 server (traft.kv.server) on real sockets, byte by byte.

Each test speaks raw HTTP to a server in front of a fake node, with short
limits, and checks what comes back and whether the connection stays open.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import httptools
import pytest
import trio

from tests.kv.fakenode import FakeNode
from traft.kv.http import KVApp, Request
from traft.kv.server import Limits, serve_http

pytestmark = pytest.mark.timeout(30)

LIMITS = Limits(
    max_target_bytes=2048,
    max_head_bytes=4096,
    max_headers=20,
    header_timeout=0.5,
    body_timeout=0.5,
    send_timeout=0.5,
    idle_timeout=1.0,
    max_connections=3,
    grace=1.0,
)


class Answer:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""

    def json(self) -> Any:
        return json.loads(self.body)


class Peer:
    """A client connection that reads responses with httptools."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.answers: list[Answer] = []
        self._current = Answer()
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current.headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self._current.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._current.body += body

    def on_message_complete(self) -> None:
        self.answers.append(self._current)
        self._current = Answer()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read(self, n: int = 1) -> list[Answer]:
        """The next ``n`` answers."""
        while len(self.answers) < n:
            data = await self.stream.receive_some(65536)
            if not data:
                self.closed = True
                raise AssertionError(f"closed after {len(self.answers)} answers")
            self._parser.feed_data(data)
        out, self.answers = self.answers[:n], self.answers[n:]
        return out

    async def raw(self) -> bytes:
        """Whatever arrives next (b"" at end of stream)."""
        return await self.stream.receive_some(65536)

    async def is_closed(self) -> bool:
        """Whether the server closed the connection (after anything still buffered)."""
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return True
            if not data:
                return True
            self._parser.feed_data(data)


class Served:
    def __init__(self, node: FakeNode, app: KVApp, port: int, shutdown: trio.Event) -> None:
        self.node = node
        self.app = app
        self.port = port
        self.shutdown = shutdown

    async def connect(self) -> Peer:
        return Peer(await trio.open_tcp_stream("127.0.0.1", self.port))


@pytest.fixture
async def server() -> AsyncIterator[Callable[..., Any]]:
    async with trio.open_nursery() as nursery:

        async def start(limits: Limits = LIMITS, node: FakeNode | None = None) -> Served:
            node = node or FakeNode()
            app = KVApp(node, node.store, max_command_bytes=1000)
            shutdown = trio.Event()
            _, port = await nursery.start(
                partial(serve_http, app, "127.0.0.1", 0, shutdown=shutdown, limits=limits)
            )
            return Served(node, app, port, shutdown)

        with trio.fail_after(20):
            yield start
        nursery.cancel_scope.cancel()


def put(key: str, value: bytes, *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return (
        f"PUT /kv/{key} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(value)}\r\n{head}\r\n".encode()
        + value
    )


GET_A = b"GET /kv/a HTTP/1.1\r\nHost: t\r\n\r\n"


async def test_keep_alive_and_pipelining_answer_in_order(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(put("a", b"1") + GET_A + b"POST /ticket HTTP/1.1\r\n\r\n" + GET_A)
    a, b, c, d = await peer.read(4)
    assert (a.status, a.json()) == (200, {"index": 1})
    assert (b.status, b.body) == (200, b"1")
    assert c.json()["ticket"] == 1
    assert d.body == b"1"
    assert "connection" not in d.headers and "date" in d.headers
    # The connection stays open for more.
    await peer.send(put("a", b"2") + GET_A)
    assert [x.status for x in await peer.read(2)] == [200, 200]


async def test_pipelined_requests_take_effect_in_order(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    requests = b"".join(put("k", b"%d" % i, f"Idempotency-Key: k{i}") + GET_A for i in range(20))
    await peer.send(requests + put("k?prev=19", b"last") + b"GET /kv/k HTTP/1.1\r\n\r\n")
    answers = await peer.read(42)
    assert [a.json()["index"] for a in answers[:40:2]] == list(range(1, 21))
    assert (answers[40].status, answers[41].body) == (200, b"last")


async def test_connections_reach_the_node_together(server: Callable[..., Any]) -> None:
    node = FakeNode()
    waiting: list[int] = []
    everyone = trio.Event()
    real_submit = node.submit

    async def submit(command: bytes, *, timeout: float = 5.0) -> Any:
        waiting.append(len(waiting))
        if len(waiting) == 3:
            everyone.set()
        await everyone.wait()  # only returns once all three are in the node at once
        return await real_submit(command, timeout=timeout)

    node.submit = submit  # type: ignore[method-assign]
    s = await server(node=node)
    peers = [await s.connect() for _ in range(3)]
    for i, peer in enumerate(peers):
        await peer.send(put("x", b"%d" % i))
    answers = [(await peer.read())[0] for peer in peers]
    assert [a.status for a in answers] == [200, 200, 200]


async def test_head_sends_the_length_but_no_body(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(put("a", b"hello"))
    await peer.read()
    await peer.send(b"HEAD /kv/a HTTP/1.1\r\n\r\n" + GET_A)
    # A response parser cannot know a HEAD answer has no body: read raw bytes.
    data = b""
    while b"hello" not in data:
        data += await peer.raw()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 5" in head
    assert rest.startswith(b"HTTP/1.1 200")


async def test_expect_100_continue(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(b"PUT /kv/a HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert await peer.raw() == b"HTTP/1.1 100 Continue\r\n\r\n"
    await peer.send(b"hello")
    (answer,) = await peer.read()
    assert answer.status == 200 and s.node.store.get("a") == b"hello"
    # Too large: 413 instead of the 100, and the connection is closed.
    await peer.send(b"PUT /kv/a HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
    (answer,) = await peer.read()
    assert answer.status == 413 and answer.headers["connection"] == "close"
    assert await peer.is_closed()


async def test_unknown_expectation_is_417(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(b"PUT /kv/a HTTP/1.1\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx")
    (answer,) = await peer.read()
    assert answer.status == 417 and await peer.is_closed()


async def test_chunked_request_body(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(b"PUT /kv/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    await trio.sleep(0.05)
    await peer.send(b"6\r\n world\r\n0\r\n\r\n")
    (answer,) = await peer.read()
    assert answer.status == 200 and s.node.store.get("c") == b"hello world"


async def test_chunked_body_too_large_is_413(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    chunk = b"%x\r\n%s\r\n" % (600, b"x" * 600)
    await peer.send(b"PUT /kv/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2)
    (answer,) = await peer.read()
    assert answer.status == 413 and "at most" in answer.json()["error"]
    assert await peer.is_closed()
    assert s.node.submitted == []


async def test_huge_content_length_is_refused_unread(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(b"PUT /kv/a HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\nxxxx")
    with trio.fail_after(2):
        (answer,) = await peer.read()
    body = answer.json()
    assert answer.status == 413 and "1000000000000 bytes" in body["error"]
    assert await peer.is_closed()


async def test_413_names_the_real_room_for_the_value(server: Callable[..., Any]) -> None:
    s = await server()
    room = s.app.room_for_value("some/key", b"old", "idem-1")
    peer = await s.connect()
    headers = ("Idempotency-Key: idem-1",)
    await peer.send(put("some/key?prev=old", b"v" * (room + 1), *headers))
    (answer,) = await peer.read()
    assert answer.status == 413 and answer.json()["max_value_bytes"] == room
    assert f"at most {room} bytes" in answer.json()["error"]
    peer = await s.connect()
    await peer.send(put("some/key", b"old") + put("some/key?prev=old", b"v" * room, *headers))
    assert [a.status for a in await peer.read(2)] == [200, 200]


async def test_room_for_value_is_exact_across_msgpack_sizes() -> None:
    for limit in (200, 300, 1000, 70_000):
        node = FakeNode()
        app = KVApp(node, node.store, max_command_bytes=limit)
        room = app.room_for_value("k", None, None)
        ok = await app.handle(Request("PUT", b"/kv/k", body=b"x" * room))
        too_much = await app.handle(Request("PUT", b"/kv/k", body=b"x" * (room + 1)))
        assert (ok.status, too_much.status) == (200, 413), limit


async def test_long_target_and_head_are_refused(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(b"GET /kv/" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n")
    (answer,) = await peer.read()
    assert answer.status == 414 and await peer.is_closed()
    peer = await s.connect()
    await peer.send(b"GET /kv/a HTTP/1.1\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n")
    (answer,) = await peer.read()
    assert answer.status == 431 and await peer.is_closed()
    peer = await s.connect()
    await peer.send(b"GET /kv/a HTTP/1.1\r\n" + b"X-A: 1\r\n" * 30 + b"\r\n")
    (answer,) = await peer.read()
    assert answer.status == 431 and await peer.is_closed()


async def test_endless_header_name_is_refused(server: Callable[..., Any]) -> None:
    # httptools buffers a header's name until its colon: the server must not.
    s = await server()
    peer = await s.connect()
    await peer.send(b"GET /kv/a HTTP/1.1\r\nX")
    try:
        for _ in range(200):
            await peer.send(b"y" * 1000)
    except trio.BrokenResourceError:
        pass  # the server may be gone before all of it is sent
    (answer,) = await peer.read()
    assert answer.status == 431 and await peer.is_closed()


async def test_garbage_is_400_and_close(server: Callable[..., Any]) -> None:
    s = await server()
    for junk in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS hello
        b"hello there\r\n\r\n",
        b"GET /kv/a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"PUT /kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        peer = await s.connect()
        await peer.send(junk)
        (answer,) = await peer.read()
        assert answer.status == 400 and "bad request" in answer.json()["error"], junk
        assert await peer.is_closed()


async def test_requests_before_garbage_are_answered(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(put("a", b"1") + b"nonsense\r\n\r\n")
    first, second = await peer.read(2)
    assert (first.status, second.status) == (200, 400)
    assert await peer.is_closed()


async def test_slow_headers_and_body_get_408(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(b"GET /kv/a HTTP/1.1\r\nHost: t\r\n")  # no end of headers
    with trio.fail_after(3):
        (answer,) = await peer.read()
    assert answer.status == 408 and "headers" in answer.json()["error"]
    assert await peer.is_closed()
    peer = await s.connect()
    await peer.send(b"PUT /kv/a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    with trio.fail_after(3):
        (answer,) = await peer.read()
    assert answer.status == 408 and "body" in answer.json()["error"]
    assert await peer.is_closed()
    assert s.node.submitted == []


async def test_trickling_headers_do_not_extend_the_deadline(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    start = trio.current_time()
    with trio.fail_after(3):
        try:
            await peer.send(b"GET /kv/a HTTP/1.1\r\n")
            for _ in range(30):
                await peer.send(b"X: y\r\n")
                await trio.sleep(0.1)
        except trio.BrokenResourceError:
            pass
        assert await peer.is_closed()
    assert trio.current_time() - start < 1.5


async def test_client_that_does_not_read_is_closed(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(put("big", b"v" * 900))
    await peer.read()
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", s.port))
    reader = Peer(trio.SocketStream(sock))
    requests = b"GET /kv/big HTTP/1.1\r\n\r\n" * 5000
    with trio.move_on_after(3):
        await reader.send(requests)  # may block: the server stops reading too
    await trio.sleep(1.5)  # nothing read meanwhile: the server gives up on the answers
    with trio.fail_after(10):
        assert await reader.is_closed()
    assert len(reader.answers) < 5000


async def test_idle_connection_is_closed(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(GET_A)
    await peer.read()
    start = trio.current_time()
    with trio.fail_after(3):
        assert await peer.is_closed()
    assert 0.8 < trio.current_time() - start < 2.5
    assert peer.answers == []  # closed without a word


async def test_connection_limit(server: Callable[..., Any]) -> None:
    s = await server()
    peers = [await s.connect() for _ in range(3)]
    for peer in peers:  # make sure all three are being served
        await peer.send(GET_A)
        await peer.read()
    extra = await s.connect()
    (answer,) = await extra.read()
    assert answer.status == 503 and answer.headers["retry-after"] == "1"
    assert "too many connections" in answer.json()["error"]
    assert await extra.is_closed()
    await peers[0].stream.aclose()
    await trio.sleep(0.1)
    again = await s.connect()
    await again.send(GET_A)
    assert (await again.read())[0].status == 404


def test_connection_limit_fits_the_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from traft.kv.server import HTTPServer

    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 4096))
    assert HTTPServer(KVApp(FakeNode()), Limits()).limits.max_connections == 192
    assert HTTPServer(KVApp(FakeNode()), LIMITS).limits.max_connections == 3


async def test_http_1_0_and_connection_close(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(b"GET /kv/a HTTP/1.0\r\n\r\n")
    (answer,) = await peer.read()
    assert answer.status == 404 and answer.headers["connection"] == "close"
    assert await peer.is_closed()
    peer = await s.connect()
    await peer.send(b"GET /kv/a HTTP/1.1\r\nConnection: close\r\n\r\n" + GET_A)
    (answer,) = await peer.read()
    assert answer.headers["connection"] == "close"
    assert await peer.is_closed() and peer.answers == []  # the second was not answered


async def test_http_1_0_keep_alive(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    request = b"GET /kv/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    await peer.send(request + request)
    first, second = await peer.read(2)
    assert first.headers["connection"] == second.headers["connection"] == "keep-alive"


async def test_upgrade_is_answered_as_plain_http_then_closed(server: Callable[..., Any]) -> None:
    s = await server()
    peer = await s.connect()
    await peer.send(b"GET /kv/a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    (answer,) = await peer.read()
    assert answer.status == 404 and await peer.is_closed()


async def test_shutdown_closes_idle_and_finishes_busy_connections(
    server: Callable[..., Any],
) -> None:
    node = FakeNode()
    release = trio.Event()
    real_read = node.read

    async def slow_read(query: Any, *, timeout: float = 5.0, forward: bool = True) -> Any:
        await release.wait()
        return await real_read(query, timeout=timeout, forward=forward)

    node.read = slow_read  # type: ignore[method-assign]
    s = await server(node=node)
    idle = await s.connect()
    await idle.send(b"POST /ticket HTTP/1.1\r\n\r\n")
    await idle.read()
    busy = await s.connect()
    await busy.send(GET_A)
    await trio.sleep(0.1)
    s.shutdown.set()
    with trio.fail_after(2):
        assert await idle.is_closed()
    release.set()
    (answer,) = await busy.read()
    assert answer.status == 404 and answer.headers["connection"] == "close"
    assert await busy.is_closed()
    with pytest.raises(OSError):
        await s.connect()


async def test_port_in_use_is_an_oserror(server: Callable[..., Any]) -> None:
    s = await server()
    node = FakeNode()
    with pytest.raises(OSError):
        await serve_http(KVApp(node), "127.0.0.1", s.port, shutdown=trio.Event(), limits=LIMITS)


async def test_asgi_adapter() -> None:
    node = FakeNode()
    app = KVApp(node, node.store, max_command_bytes=100)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run(method: str, path: bytes, body: bytes) -> tuple[int, bytes]:
        sent.clear()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        scope = {"type": "http", "method": method, "path": path.decode(), "raw_path": path}
        await app(scope, receive, send)
        return sent[0]["status"], sent[1]["body"]

    assert await run("PUT", b"/kv/a", b"v") == (200, b'{"index":1}\n')
    assert await run("GET", b"/kv/a", b"") == (200, b"v")
    status, body = await run("PUT", b"/kv/a", b"x" * 200)
    assert status == 413 and b"at most" in body
