"""A small synchronous client of the HTTP API (standard library ``http.client``).

Theory of operation: a :class:`Client` knows one or more node URLs. Each
request goes to the node it last found to be the leader (at first, the first
URL); a 307 answer is followed to the leader's URL and remembered; a 503 (no
leader yet, a proposal lost or timed out, a node stopping) and a node that
cannot be reached are retried on the next known URL (a node cut off in a
minority answers 503 for as long as the partition lasts) with a
capped exponential backoff until ``retry_for`` seconds have passed. Writes
carry an ``Idempotency-Key`` generated once per logical request
(:func:`new_idempotency_key`) and sent unchanged on every retry, so a write
that committed before its answer was lost is applied once.

Two answers end the retries early, because waiting would not change them:
every known node refused the connection (or could not be connected to) since
the last answer from any node, so nothing is running there (unless the client
was made with ``retry_unreachable=True``, for load generators that kill whole
clusters on purpose); and a 404 or 412 without traft's JSON ``error`` body,
which comes from something that is not a traft node and must not read as
"no such key".

Connections are kept alive: one ``http.client.HTTPConnection`` per node and
per thread, reused while the server keeps it open. Before a connection is
reused it is checked for having been closed by the server; a request that
fails on a reused connection before any answer arrives is sent once more on
a new one (the server may close an idle connection just as it is reused).
``http.client`` was measured against urllib3 and httpx for this: the same
requests per second against ``traft serve`` and the least client CPU per
request (``scripts/bench_client.py``; docs/benchmarks.md).

Used by the ``traft`` client commands, the scripts and the integration
tests. Nothing here is async: scripts call it from threads, and one client
may be shared between threads (each thread has its own connections).
"""

from __future__ import annotations

import http.client
import json
import random
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

RETRYABLE = frozenset({503})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Statuses whose meaning callers act on ("no such key", "PREV does not match"):
# only believed with traft's JSON error body.
MEANINGFUL = frozenset({404, 412})


class ClientError(Exception):
    """No usable answer before the deadline (the message says what went wrong last)."""


class Unreachable(ClientError):
    """No node could be connected to; the message names every address tried."""


class NotTraft(ClientError):
    """An answer that did not come from traft (e.g. a 404 page of another server)."""


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key: 32 hex digits."""
    return uuid.uuid4().hex


@attrs.frozen
class Reply:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    def json(self) -> Any:
        """The body as JSON (``{}`` when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return {}

    @property
    def error(self) -> str:
        """The ``error`` message of a JSON error body, or the status line."""
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return str(data["error"])
        return f"HTTP {self.status}"

    @property
    def is_traft_error(self) -> bool:
        """Whether this is an error as traft sends them: JSON with an ``error`` string."""
        content_type = self.headers.get("content-type", "").partition(";")[0].strip()
        if content_type.lower() != "application/json":
            return False
        data = self.json()
        return isinstance(data, dict) and isinstance(data.get("error"), str)


def split_url(url: str) -> tuple[str, int]:
    """``http://host:port`` to ``(host, port)``.

    Raises:
        ValueError: not an ``http://`` URL with a host.
    """
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url!r}")
    return parts.hostname, parts.port or 80


def base_url(url: str) -> str:
    """The ``http://host:port`` part of a URL."""
    host, port = split_url(url)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _ConnectFailed(Exception):
    """The TCP connection could not be made (the node is down or not there)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Client:
    """A client of a traft cluster's HTTP API.

    Args:
        urls: node URLs (``http://host:port``); any node will do.
        timeout: seconds to wait for one HTTP answer (and for a connection).
        retry_for: seconds to keep retrying 503s and unreachable nodes.
        on_retry: called with a short reason before each retry (for progress output).
        rng: the source of backoff jitter.
        retry_unreachable: keep retrying, within ``retry_for``, when no node at all
            can be connected to (by default that fails at once: see the module doc).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 10.0,
        retry_for: float = 30.0,
        max_redirects: int = 5,
        on_retry: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
        retry_unreachable: bool = False,
    ) -> None:
        if not urls:
            raise ValueError("at least one URL is needed")
        self.urls = [base_url(u) for u in urls]
        self.leader: str | None = None
        self.timeout = timeout
        self.retry_for = retry_for
        self.max_redirects = max_redirects
        self.on_retry = on_retry
        self.retry_unreachable = retry_unreachable
        self._rng = rng or random.Random()
        self._next = 0
        self._local = threading.local()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        retry_for: float | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send a request to the leader, following redirects and retrying.

        Returns the first answer that is neither a redirect nor a 503.

        Raises:
            Unreachable: no node could be connected to (unless ``retry_unreachable``).
            NotTraft: a 404 or 412 that is not traft's (the address is not a traft node).
            ClientError: still no such answer after ``retry_for`` seconds.
        """
        deadline = time.monotonic() + (self.retry_for if retry_for is None else retry_for)
        all_headers = dict(headers or {})
        if idempotency_key is not None:
            all_headers["Idempotency-Key"] = idempotency_key
        attempt = 0
        url = self.leader or self.urls[self._next % len(self.urls)]
        redirects = 0
        # Nodes that could not be connected to since the last answer from any node.
        down: dict[str, str] = {}
        while True:
            try:
                reply = self._once(method, url + path, body, all_headers, timeout)
            except _ConnectFailed as exc:
                problem = f"{url}: {_describe(exc.cause)}"
                down[url] = _describe(exc.cause)
                if self.leader == url:
                    self.leader = None
                if not self.retry_unreachable and set(self.urls) <= set(down):
                    tried = ", ".join(f"{u} ({why})" for u, why in down.items())
                    raise Unreachable(f"no traft node could be reached: {tried}") from None
                url = self._other_than(url)
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{url}: {_describe(exc)}"
                down.clear()  # it accepted the connection: something runs there
                if self.leader == url:
                    self.leader = None
                url = self._other_than(url)
            else:
                down.clear()
                if reply.status in REDIRECTS and "location" in reply.headers:
                    target = reply.headers["location"]
                    redirects += 1
                    if redirects <= self.max_redirects:
                        url = self.leader = base_url(target)
                        continue
                    problem = f"too many redirects (last to {target})"
                    redirects = 0
                elif reply.status in RETRYABLE:
                    problem = f"{url}: {reply.status} {reply.error}"
                    # This node cannot serve now (no leader in its view: it may be cut
                    # off in a minority, or removed and never told). Ask the next one;
                    # a node that knows the leader redirects there.
                    if self.leader == url:
                        self.leader = None
                    url = self._other_than(url)
                else:
                    if reply.status in MEANINGFUL and not reply.is_traft_error:
                        raise NotTraft(_not_traft(url, reply))
                    if reply.status < 300 or reply.status in MEANINGFUL:
                        self.leader = url
                    return reply
            attempt += 1
            delay = min(0.05 * 2 ** min(attempt, 10), 1.0) * (0.5 + self._rng.random())
            if time.monotonic() + delay > deadline:
                raise ClientError(f"gave up after {attempt} attempt(s): {problem}")
            if self.on_retry is not None:
                self.on_retry(problem)
            time.sleep(delay)

    def _other_than(self, failed: str) -> str:
        """The next known URL in turn that is not ``failed`` (when there is another).

        The URL that failed is often the leader a redirect named, not the one
        at ``_next``: moving ``_next`` on alone could land on it again (a
        leader stopping after a leadership transfer answered 503, then
        refused the retry: a second backoff for nothing).
        """
        for _ in range(len(self.urls)):
            self._next += 1
            url = self.urls[self._next % len(self.urls)]
            if url != failed:
                return url
        return failed

    def _once(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Reply:
        """One request on this thread's connection to the node; no retries but one.

        Raises:
            _ConnectFailed: no connection could be made.
            OSError, http.client.HTTPException: the exchange failed.
        """
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        node = base_url(url)
        seconds = timeout or self.timeout
        conn, reused = self._connection(node, seconds)
        try:
            try:
                response = self._exchange(conn, method, target, body, headers, seconds)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                if not reused:
                    raise
                # The server closed the kept-alive connection as we reused it: it saw
                # no request on it. Once more, on a new connection.
                conn.close()
                conn, _ = self._connection(node, seconds)
                response = self._exchange(conn, method, target, body, headers, seconds)
            data = response.read()
        except BaseException:
            self._forget(node)
            raise
        if response.will_close:
            self._forget(node)
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data, url)

    @staticmethod
    def _exchange(
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> http.client.HTTPResponse:
        assert conn.sock is not None
        conn.sock.settimeout(timeout)
        conn.request(method, target, body=body, headers=headers)
        return conn.getresponse()

    def _connection(self, node: str, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's open connection to ``node`` (and whether it served before).

        Raises:
            _ConnectFailed: there was none and none could be made.
        """
        pool = self._pool()
        conn = pool.pop(node, None)
        if conn is not None and conn.sock is not None and not _closed_by_peer(conn.sock):
            pool[node] = conn
            return conn, True
        if conn is not None:
            conn.close()
        host, port = split_url(node)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise _ConnectFailed(exc) from None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pool[node] = conn
        return conn, False

    def _pool(self) -> dict[str, http.client.HTTPConnection]:
        """This thread's open connections, by node."""
        pool: dict[str, http.client.HTTPConnection] | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def _forget(self, node: str) -> None:
        conn = self._pool().pop(node, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close this thread's connections (others close when their thread's data goes)."""
        pool = self._pool()
        for conn in pool.values():
            conn.close()
        pool.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_status(self, url: str, *, timeout: float = 2.0, digest: bool = False) -> dict[str, Any]:
        """One node's ``/status``, without redirects or retries.

        Raises:
            ClientError: the node cannot be reached or answered badly.
        """
        try:
            reply = self._once(
                "GET",
                base_url(url) + ("/status?digest=1" if digest else "/status"),
                None,
                {},
                timeout,
            )
        except _ConnectFailed as exc:
            raise ClientError(f"{url}: {_describe(exc.cause)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(f"{url}: {_describe(exc)}") from None
        data = reply.json()
        if reply.status != 200 or not isinstance(data, dict):
            raise ClientError(f"{url}: {reply.status} {reply.error}")
        return data


def _closed_by_peer(sock: socket.socket) -> bool:
    # An idle kept-alive connection has nothing to read; if it is readable, the
    # server closed it (or broke the protocol): either way, do not reuse it.
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _not_traft(url: str, reply: Reply) -> str:
    content_type = reply.headers.get("content-type", "no content type")
    return (
        f"{url}: {reply.status} from something that is not a traft node "
        f"({content_type}, no JSON error); is {url} a traft node's HTTP address?"
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror})" if exc.strerror else "unknown host"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed the connection without answering"
    return type(exc).__name__
