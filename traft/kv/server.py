"""The HTTP/1.1 front end of ``traft serve``: a trio loop around ``httptools``.

Theory of operation
-------------------
HTTP parsing is the ``httptools`` C parser (llhttp, the parser under
uvicorn and Node.js); what this module writes by hand is the loop around it
on trio streams. Measured on the 2-core development machine, a bare "ok"
answered at 64 connections: hypercorn on trio ~1,300 req/s, this kind of
loop ~29,000 req/s (docs/benchmarks.md); per request, httptools parses in
~10 µs where pure-Python h11 takes ~500 µs.

One task per connection (:class:`_Connection`) does everything for it:

1. **read**: ``recv`` on the socket itself (:class:`_RawStream`), under one
   cancel scope per connection whose deadline moves with the phase — the
   *idle* timeout between requests (keep-alive), the *header* timeout from a
   request's first byte to the end of its headers, the *body* timeout from
   there to the end of its body, none while answering. An idle timeout
   closes the connection silently; the other two answer 408 and close.
2. **parse**: ``feed_data``; the parser's callbacks collect the URL, headers
   and body of each request and append whole requests to ``ready``. They
   enforce the size limits as bytes arrive — request target (414), head
   (431), Content-Length or chunked body beyond the app's
   :attr:`~traft.kv.http.KVApp.max_body_bytes` (413, decided from the
   header alone: a 10^12 Content-Length is refused before one byte of body
   is read) — by stopping the parser with the answer to give.
3. **answer**: the whole requests, one at a time in the order sent (a
   connection's requests take effect in order, as with Go's net/http under
   etcd's gateway), each answer written as soon as it is known. Requests
   from *different* connections wait on the node together and join one
   proposal batch or ReadIndex round (:mod:`traft.node.node`). While a
   connection's requests are handled nothing more is read from it: the
   kernel's buffers, not ours, hold what the client pipelines meanwhile.
   An answer the client does not read within ``send_timeout`` (once the
   socket's buffer is full) closes the connection.
4. ``Expect: 100-continue``: once the answers before it are written, the
   interim ``100 Continue`` goes out and the body is read; a body that is
   too large is refused with 413 instead, without the 100.

A protocol error (garbage, a bad chunk, two Content-Lengths) answers 400
and closes; so does every refusal above, since the rest of the stream
cannot be trusted or would have to be read to find the next request
(before closing, the server reads and drops what the client still sends
for a second, so that a reset does not destroy the answer in flight). An
``Upgrade`` request is answered as a plain request and the connection closed.
HTTP/1.0 and ``Connection: close`` are honoured.

Connections beyond ``max_connections`` get one 503 with ``Retry-After`` and
are closed. :func:`serve_http` stops on its shutdown event: it stops
accepting, closes idle connections at once, lets the requests in flight
finish for ``grace`` seconds (their answers say ``Connection: close``), then
cancels what is left.
"""

from __future__ import annotations

import email.utils
import errno
import http
import logging
import math
import resource
import socket
import time
from functools import partial
from typing import Any, Final

import attrs
import httptools
import trio
from prometheus_client import CollectorRegistry, Counter, Gauge

from traft.kv.http import KVApp, Request, Response

log = logging.getLogger(__name__)

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_LINES: Final = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in http.HTTPStatus
}


@attrs.frozen(kw_only=True)
class Limits:
    """The server's limits; docs/http-api.md and docs/operations.md list them too."""

    max_target_bytes: int = 8192
    """Longest request target (path and query): 414 beyond."""
    max_head_bytes: int = 16384
    """Longest request head (target and headers together): 431 beyond."""
    max_headers: int = 100
    """Most header fields in one request: 431 beyond."""
    header_timeout: float = 10.0
    """Seconds from a request's first byte to the end of its headers: 408 beyond."""
    body_timeout: float = 10.0
    """Seconds from the end of the headers to the end of the body: 408 beyond."""
    send_timeout: float = 10.0
    """Seconds an answer that does not fit the socket's buffer may take to be read
    by the client; then the connection is closed."""
    idle_timeout: float = 30.0
    """Seconds a keep-alive connection may wait for its next request; then it is closed."""
    max_connections: int = 1024
    """Connections served at once; one more gets 503 and is closed."""
    grace: float = 2.0
    """Seconds the requests in flight get to finish when the server stops."""
    receive_bytes: int = 65536
    """Bytes read from a connection at a time."""


def _fit_to_descriptors(limits: Limits) -> Limits:
    """Lower ``max_connections`` to what the process's file descriptor limit allows.

    Past ``ulimit -n`` accept() fails and trio retries it every 100 ms,
    logging each time; a connection over the limit should get its 503 instead.
    64 descriptors stay for the node (UDP socket, log segments, snapshots).
    """
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - no such limit here
        return limits
    if soft == resource.RLIM_INFINITY or soft - 64 >= limits.max_connections:
        return limits
    allowed = max(soft - 64, 1)
    log.warning(
        "serving at most %d HTTP connections, not %d: the file descriptor limit is %d "
        "(raise it with ulimit -n)",
        allowed,
        limits.max_connections,
        soft,
    )
    return attrs.evolve(limits, max_connections=allowed)


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing; ``_Connection.refusal`` says why."""


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "traft_http_connections",
            "HTTP connections open now.",
            registry=registry,
        )
        self.refused = Counter(
            "traft_http_connections_refused",
            "HTTP connections refused with 503 because max_connections were open.",
            registry=registry,
        )
        self.errors = Counter(
            "traft_http_protocol_errors",
            "Requests the HTTP server answered itself and then closed the connection: "
            "400 unparsable, 408 too slow, 413 body too large, 414 target too long, "
            "417 unknown Expect, 431 head too large.",
            ["status"],
            registry=registry,
        )


class _Date:
    """The ``Date`` header, formatted once a second."""

    def __init__(self) -> None:
        self.second = 0
        self.value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = email.utils.formatdate(now, usegmt=True).encode()
        return self.value


class HTTPServer:
    """Serves one :class:`~traft.kv.http.KVApp` on any number of trio listeners."""

    def __init__(self, app: KVApp, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = _fit_to_descriptors(limits or Limits())
        self.draining = False
        self._connections: set[_Connection] = set()
        self._date = _Date()
        registry: CollectorRegistry | None = getattr(app.node, "registry", None)
        self._metrics = _Metrics(registry if registry is not None else CollectorRegistry())

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def handle_connection(self, stream: trio.SocketStream) -> None:
        """Serve one accepted connection until it closes (the caller closes the stream)."""
        if len(self._connections) >= self.limits.max_connections or self.draining:
            self._metrics.refused.inc()
            message = "too many connections" if not self.draining else "the server is stopping"
            body = b'{"error":"%s; retry shortly"}\n' % message.encode()
            response = Response(
                503, [(b"content-type", b"application/json"), (b"retry-after", b"1")], body
            )
            with trio.move_on_after(1):
                try:
                    await stream.send_all(self.render(response, head_only=False, close=True))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            return
        # From here on the socket is driven directly (see _RawStream); trio's
        # stream, detached, closes nothing when the caller closes it.
        sock = socket.socket(fileno=stream.socket.detach())
        sock.setblocking(False)
        connection = _Connection(self, _RawStream(sock, self.limits.send_timeout))
        self._connections.add(connection)
        self._metrics.open.inc()
        try:
            await connection.run()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                log.warning("HTTP connection failed: %s", exc)
        except Exception:
            log.exception("HTTP connection failed (a bug)")
        finally:
            self._connections.discard(connection)
            self._metrics.open.dec()
        if connection.refused:
            await _linger(sock)
        sock.close()

    def drain(self) -> None:
        """Stop serving: idle connections close now, busy ones after their answers."""
        self.draining = True
        for connection in list(self._connections):
            connection.drain()

    def render(
        self, response: Response, *, head_only: bool, close: bool, http10: bool = False
    ) -> bytes:
        """The bytes of an answer: status line, headers, ``content-length``, body."""
        status = response.status
        line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status
        parts = [line, b"date: ", self._date.get(), b"\r\n"]
        for name, value in response.headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-length: %d\r\n" % len(response.body))
        if close:
            parts.append(b"connection: close\r\n")
        elif http10:  # an HTTP/1.0 client that asked for keep-alive is told it has it
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        if not head_only:
            parts.append(response.body)
        return b"".join(parts)

    def count_error(self, status: int) -> None:
        self._metrics.errors.labels(str(status)).inc()


async def _linger(sock: socket.socket) -> None:
    """Close the way out and read what the client still sends, for a second at most.

    After a refusal the client may still be sending (the body of a 10^12
    Content-Length): closing with unread data makes the kernel send a reset
    that can destroy the answer in flight before the client reads it.
    """
    with trio.move_on_after(1):
        try:
            sock.shutdown(socket.SHUT_WR)
            received = 0
            while received < 1 << 20:
                await trio.lowlevel.wait_readable(sock)
                data = sock.recv(65536)
                if not data:
                    break
                received += len(data)
        except OSError:
            pass


class _RawStream:
    """A connected TCP socket driven with trio's ``wait_readable``/``wait_writable``.

    The two calls the connection loop makes, with the semantics of
    ``trio.SocketStream``'s (``b""`` at end of stream, ``BrokenResourceError``
    when the peer is gone) but without its conflict detector, context manager
    and extra checkpoints: on the request path those were a tenth of the
    leader's samples (docs/benchmarks.md, *HTTP path*). ``receive_some`` is a
    checkpoint, so a client that keeps the socket full cannot starve the loop.
    """

    __slots__ = ("sock", "send_timeout")

    def __init__(self, sock: socket.socket, send_timeout: float) -> None:
        self.sock = sock
        self.send_timeout = send_timeout

    async def receive_some(self, max_bytes: int) -> bytes:
        sock = self.sock
        try:
            data = sock.recv(max_bytes)
        except BlockingIOError:
            pass
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        else:
            await trio.lowlevel.checkpoint()
            return data
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                return sock.recv(max_bytes)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc

    async def send_all(self, data: bytes) -> None:
        sock = self.sock
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        if sent == len(data):
            return
        view = memoryview(data)
        with trio.move_on_after(self.send_timeout):
            while sent < len(data):
                await trio.lowlevel.wait_writable(sock)
                try:
                    sent += sock.send(view[sent:])
                except BlockingIOError:
                    continue
                except OSError as exc:
                    raise trio.BrokenResourceError(str(exc)) from exc
            return
        raise trio.BrokenResourceError("the client did not read its answer in time")


def _error(status: int, message: str) -> Response:
    body = b'{"error":"%s"}\n' % message.replace('"', "'").encode()
    return Response(status, [(b"content-type", b"application/json")], body)


class _Connection:
    """One client connection: the parser's callbacks build requests, ``run`` answers them."""

    def __init__(self, server: HTTPServer, stream: _RawStream) -> None:
        self.server = server
        self.app = server.app
        self.limits = server.limits
        self.stream = stream
        self.parser = httptools.HttpRequestParser(self)
        # Whole requests, whether the connection stays open after each, and
        # whether it is an HTTP/1.0 keep-alive one.
        self.ready: list[tuple[Request, bool, bool]] = []
        self.refusal: Response | None = None  # answer this, then close
        self.refused = False  # the refusal was sent: linger before closing
        self.closing = False  # close once ``ready`` is answered
        self.last_seen = False  # a request said Connection: close (or was HTTP/1.0)
        self.scope = trio.CancelScope()  # replaced by run()'s
        self.idle = False  # waiting for the next request: drain() may close it
        # The request being parsed.
        self.in_message = False
        self.headers_done = False
        self.deadline = 0.0
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.head_fed = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.max_body = self.app.max_body_bytes
        self.want_continue = False

    def drain(self) -> None:
        if self.idle:
            self.scope.cancel()

    # --- parser callbacks (called from inside feed_data) ------------------------

    def on_message_begin(self) -> None:
        self.in_message = True
        self.headers_done = False
        self.deadline = trio.current_time() + self.limits.header_timeout
        self.target = b""
        self.headers = []
        self.head_bytes = 0
        self.head_fed = -1  # this chunk is counted whole below
        self.body = []
        self.body_bytes = 0
        self.want_continue = False

    def on_url(self, url: bytes) -> None:
        self.target += url
        self.head_bytes += len(url)
        if len(self.target) > self.limits.max_target_bytes:
            self._refuse(414, f"the request target is longer than {self.limits.max_target_bytes}")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.limits.max_head_bytes:
            self._refuse(431, f"the request head is longer than {self.limits.max_head_bytes} bytes")
        if len(self.headers) > self.limits.max_headers:
            self._refuse(431, f"more than {self.limits.max_headers} header fields")

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.deadline = trio.current_time() + self.limits.body_timeout
        length: int | None = None
        chunked = False
        expect: bytes | None = None
        for name, value in self.headers:
            if name == b"content-length":
                length = int(value)  # llhttp checked the digits and refused duplicates
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect":
                expect = value.lower()
        if length is not None and length > self.max_body:
            self.refusal = self.app.too_large(self._request(b""), length)
            raise _Stop
        if expect is not None:
            if expect != b"100-continue":
                self._refuse(417, "the only expectation served is 100-continue")
            self.want_continue = chunked or bool(length)

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.max_body:
            self.refusal = self.app.too_large(self._request(b""))
            raise _Stop
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        self.want_continue = False
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        keep_alive = bool(self.parser.should_keep_alive())
        if not self.last_seen:
            http10 = keep_alive and self.parser.get_http_version() == "1.0"
            self.ready.append((self._request(body), keep_alive, http10))
        if not keep_alive:
            self.last_seen = self.closing = True

    def _request(self, body: bytes) -> Request:
        path, _, query = self.target.partition(b"?")
        return Request(self.parser.get_method().decode("latin-1"), path, query, self.headers, body)

    def _refuse(self, status: int, message: str) -> None:
        self.refusal = _error(status, message)
        raise _Stop

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        # One cancel scope for the connection's whole life, its deadline
        # moved before and after each read, instead of a scope per read:
        # entering and leaving scopes was a tenth of the leader's samples.
        with trio.CancelScope() as scope:
            self.scope = scope
            await self._loop()
        if scope.cancelled_caught and self.in_message:
            self.server.count_error(408)
            phase = "body" if self.headers_done else "headers"
            await self._send(
                _error(408, f"the request's {phase} did not arrive in time"),
                head_only=False,
                close=True,
            )
        # Otherwise: idle for too long, or the server is stopping.

    async def _loop(self) -> None:
        stream = self.stream
        parser = self.parser
        guard = self.limits.max_head_bytes + self.limits.receive_bytes
        while True:
            data = await self._receive()
            if data is None:
                return
            try:
                parser.feed_data(data)
            except httptools.HttpParserCallbackError:
                if self.refusal is None:
                    raise  # a bug in a callback: the connection's task logs it
                self.closing = True
            except httptools.HttpParserUpgrade:
                self.closing = True  # answer what came before; the rest is not HTTP
            except httptools.HttpParserError as exc:
                self.refusal = _error(400, f"bad request: {exc}")
                self.closing = True
            if self.in_message and not self.headers_done and self.refusal is None:
                # httptools collects a header's name and value before its
                # callback runs: bound what it can hold (this chunk may also
                # hold whole requests before the one begun, hence the margin).
                self.head_fed = len(data) if self.head_fed < 0 else self.head_fed + len(data)
                if self.head_fed > guard:
                    self.refusal = _error(431, "the request head is too large")
                    self.closing = True
            if self.ready:
                await self._answer()
                if self.in_message:
                    # The next request's clock ran while the ones before it
                    # were answered and nothing was read: restart it.
                    timeout = (
                        self.limits.body_timeout
                        if self.headers_done
                        else self.limits.header_timeout
                    )
                    self.deadline = trio.current_time() + timeout
            if self.last_seen:
                return  # whatever followed the last request is not looked at
            if self.refusal is not None:
                self.server.count_error(self.refusal.status)
                self.refused = True
                await self._send(self.refusal, head_only=False, close=True)
                return
            if self.closing or self.server.draining and not self.in_message:
                return
            if self.want_continue:
                self.want_continue = False
                await stream.send_all(_CONTINUE)

    async def _receive(self) -> bytes | None:
        """The next bytes, or None when the client closed.

        The connection's scope fires at the read's deadline (the idle
        timeout between requests, the header or body timeout within one) or
        when the server drains an idle connection; ``run`` sorts out which.
        """
        scope = self.scope
        if self.in_message:
            scope.deadline = self.deadline
        else:
            scope.deadline = trio.current_time() + self.limits.idle_timeout
            if self.server.draining:
                scope.cancel()
            self.idle = True
        try:
            data = await self.stream.receive_some(self.limits.receive_bytes)
        finally:
            self.idle = False
        scope.deadline = math.inf  # answering is bounded by the node's own timeouts
        return data or None

    async def _answer(self) -> None:
        """Answer every whole request in ``ready``, one after the other, in order.

        One at a time, as Go's net/http (under etcd's gateway) does: a
        connection's requests take effect in the order it sent them, and
        each answer is written as soon as it is known. Batching comes from
        the many connections waiting on the node at once.
        """
        batch, self.ready = self.ready, []
        last = len(batch) - 1
        for i, (request, keep_alive, http10) in enumerate(batch):
            response = await self.app.handle(request)
            # The refusal that may follow says "close" itself.
            close = i == last and (not keep_alive or self.refusal is None and self.server.draining)
            await self._send(
                response, head_only=request.method == "HEAD", close=close, http10=http10
            )

    async def _send(
        self, response: Response, *, head_only: bool, close: bool, http10: bool = False
    ) -> None:
        data = self.server.render(response, head_only=head_only, close=close, http10=http10)
        await self.stream.send_all(data)


async def serve_http(
    app: KVApp,
    host: str,
    port: int,
    *,
    shutdown: trio.Event,
    limits: Limits | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` (0: any free port) until ``shutdown`` is set.

    Reports the bound ``(host, port)`` through ``task_status`` once listening.
    On shutdown: stops accepting, closes idle connections, gives the requests
    in flight ``limits.grace`` seconds, then cancels them.

    Raises:
        OSError: the address cannot be bound.
    """
    server = HTTPServer(app, limits)
    listeners = await trio.open_tcp_listeners(port, host=host)
    sockname: Any = listeners[0].socket.getsockname()
    async with trio.open_nursery() as handlers:
        async with trio.open_nursery() as acceptors:
            acceptors.start_soon(
                partial(
                    trio.serve_listeners,
                    server.handle_connection,
                    listeners,
                    handler_nursery=handlers,
                )
            )
            task_status.started((sockname[0], sockname[1]))
            await shutdown.wait()
            acceptors.cancel_scope.cancel()
        server.drain()
        handlers.cancel_scope.deadline = trio.current_time() + server.limits.grace
