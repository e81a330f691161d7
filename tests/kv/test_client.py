"""The synchronous client against small standard-library servers (no traft server needed).

Kept-alive connections (and what happens when the server closes one), a 404
from something that is not traft, and every node down.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from traft import cli
from traft.kv.client import Client, ClientError, NotTraft, Unreachable
from traft.kv.localcluster import free_ports

pytestmark = pytest.mark.timeout(30)

# (method, path, handler) -> (status, headers, body); None: close without answering.
Answer = tuple[int, dict[str, str], bytes] | None


def traft_json(status: int, body: dict[str, object]) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class Server(ThreadingHTTPServer):
    """A keep-alive HTTP/1.1 server whose answers a test function gives."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, answer: Callable[[str, str, BaseHTTPRequestHandler], Answer]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self.idle_timeout: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # None: keep the connection open
        super().setup()
        self.server.connections += 1
        self.requests_here = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.requests_here += 1
        self.server.requests.append((self.command, self.path))
        answer = self.server.answer(self.command, self.path, self)
        if answer is None:
            self.close_connection = True
            return
        status, headers, body = answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _answer


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(answer: Callable[[str, str, BaseHTTPRequestHandler], Answer]) -> Server:
        server = Server(answer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def kv(method: str, path: str, handler: BaseHTTPRequestHandler) -> Answer:
    if path == "/status":
        return traft_json(200, {"id": 1, "role": "leader"})
    if path.startswith("/kv/absent"):
        return traft_json(404, {"error": "no such key", "key": path[4:]})
    if method == "GET":
        return 200, {"Content-Type": "application/octet-stream"}, b"value"
    return traft_json(200, {"index": 1})


def dead_urls(count: int) -> list[str]:
    """URLs of ports nothing listens on (connection refused)."""
    return [f"http://127.0.0.1:{port}" for port in free_ports(count, socket.SOCK_STREAM)]


def test_requests_share_one_kept_alive_connection(serve: Callable[..., Server]) -> None:
    server = serve(kv)
    with Client([server.url]) as client:
        for i in range(20):
            assert client.request("PUT", f"/kv/k{i}", b"v").status == 200
        assert client.request("GET", "/kv/k1").body == b"value"
        assert client.get_status(server.url, timeout=1.0)["role"] == "leader"
    assert server.connections == 1 and len(server.requests) == 22


def test_a_connection_the_server_closed_while_idle_is_replaced(
    serve: Callable[..., Server],
) -> None:
    server = serve(kv)
    server.idle_timeout = 0.1
    with Client([server.url], retry_for=0) as client:
        assert client.request("PUT", "/kv/a", b"v").status == 200
        time.sleep(0.4)  # the server's idle timeout closes the connection meanwhile
        assert client.request("PUT", "/kv/b", b"v").status == 200
    assert server.connections == 2 and server.requests == [("PUT", "/kv/a"), ("PUT", "/kv/b")]


def test_a_reused_connection_closed_without_answer_is_retried_once_on_a_new_one(
    serve: Callable[..., Server],
) -> None:
    def drop_second_on_a_connection(method: str, path: str, h: BaseHTTPRequestHandler) -> Answer:
        return None if h.requests_here == 2 else kv(method, path, h)  # type: ignore[attr-defined]

    server = serve(drop_second_on_a_connection)
    retries: list[str] = []
    with Client([server.url], retry_for=0, on_retry=retries.append) as client:
        assert client.request("PUT", "/kv/a", b"v").status == 200
        assert client.request("PUT", "/kv/b", b"v").status == 200
    assert server.connections == 2 and retries == []
    assert server.requests == [("PUT", "/kv/a"), ("PUT", "/kv/b"), ("PUT", "/kv/b")]


def test_a_404_from_traft_is_an_absent_key(serve: Callable[..., Server]) -> None:
    server = serve(kv)
    with Client([server.url]) as client:
        reply = client.request("GET", "/kv/absent")
    assert reply.status == 404 and reply.error == "no such key" and reply.is_traft_error


@pytest.mark.parametrize(
    "answer",
    [
        (404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"),
        (404, {}, b""),
        (404, {"Content-Type": "application/json"}, b'{"detail": "Not Found"}'),
        (412, {"Content-Type": "text/plain"}, b"precondition failed"),
    ],
)
def test_a_404_from_something_else_is_an_error_naming_the_address(
    serve: Callable[..., Server], answer: Answer
) -> None:
    server = serve(lambda *_: answer)
    with Client([server.url]) as client, pytest.raises(NotTraft) as error:
        client.request("GET", "/kv/k")
    assert server.url in str(error.value) and "not a traft node" in str(error.value)


def test_cli_get_from_something_else_is_not_key_absent(
    serve: Callable[..., Server], capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(lambda *_: (404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"))
    assert cli.main(["get", "k", "--url", server.url]) == 1
    err = capsys.readouterr().err
    assert "not found" not in err and server.url in err and "not a traft node" in err


def test_every_node_down_fails_at_once_naming_each(capsys: pytest.CaptureFixture[str]) -> None:
    urls = dead_urls(3)
    start = time.monotonic()
    with pytest.raises(Unreachable) as error:
        Client(urls, retry_for=30).request("GET", "/kv/k")
    assert time.monotonic() - start < 2
    message = str(error.value)
    assert all(f"{url} (connection refused)" in message for url in urls), message
    start = time.monotonic()
    argv = ["ticket", *(arg for url in urls for arg in ("--url", url))]
    assert cli.main(argv) == 1
    assert time.monotonic() - start < 2
    err = capsys.readouterr().err
    assert err.startswith("traft ticket: error: no traft node could be reached: ")
    assert all(url in err for url in urls)


def test_a_node_answering_503_keeps_the_retries_going(serve: Callable[..., Server]) -> None:
    # An election: one node answers "no leader", the other is down (restarting).
    server = serve(lambda *_: traft_json(503, {"error": "no leader"}))
    retries: list[str] = []
    client = Client([*dead_urls(1), server.url], retry_for=2.0, on_retry=retries.append)
    start = time.monotonic()
    with pytest.raises(ClientError, match="gave up after") as error:
        client.request("GET", "/kv/k")
    assert not isinstance(error.value, Unreachable)
    # Giving up needs now + the next backoff (at most 1.5 s) past the 2 s deadline.
    assert time.monotonic() - start > 0.5 and len(server.requests) >= 2
    assert any("no leader" in r for r in retries) and any("refused" in r for r in retries)


def test_retry_unreachable_rides_out_a_cluster_restart(serve: Callable[..., Server]) -> None:
    retries: list[str] = []
    client = Client(dead_urls(2), retry_for=0.6, retry_unreachable=True, on_retry=retries.append)
    with pytest.raises(ClientError, match="gave up after .*connection refused") as error:
        client.request("GET", "/kv/k")
    assert not isinstance(error.value, Unreachable) and len(retries) >= 2


def test_threads_sharing_a_client_use_connections_of_their_own(
    serve: Callable[..., Server],
) -> None:
    server = serve(kv)
    client = Client([server.url])
    statuses: list[int] = []

    def work() -> None:
        for i in range(10):
            statuses.append(client.request("PUT", f"/kv/k{i}", b"v").status)
        client.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert statuses == [200] * 40 and server.connections == 4


def test_after_a_503_from_the_redirected_leader_the_next_try_is_another_node(
    serve: Callable[..., Server],
) -> None:
    # A leader handing over leadership answers 503; the client must not try
    # it again next (it may be gone by then), but another node.
    leader = serve(lambda *_: traft_json(503, {"error": "leadership is being transferred"}))
    new_leader = serve(kv)
    follower = serve(lambda method, path, _: (307, {"Location": leader.url + path}, b""))
    # The leader is the URL after the follower's: moving on by position alone
    # would ask it again.
    client = Client([follower.url, leader.url, new_leader.url], retry_for=5.0)
    reply = client.request("PUT", "/kv/k", b"v")
    assert reply.status == 200
    assert len(leader.requests) == 1  # the 503, never a second try
    assert len(new_leader.requests) == 1
