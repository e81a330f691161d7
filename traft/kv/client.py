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

Used by the ``traft`` client commands, the scripts and the integration
tests. Nothing here is async: scripts call it from threads.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

RETRYABLE = frozenset({503})
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class ClientError(Exception):
    """No usable answer before the deadline (the message says what went wrong last)."""


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


class Client:
    """A client of a traft cluster's HTTP API.

    Args:
        urls: node URLs (``http://host:port``); any node will do.
        timeout: seconds to wait for one HTTP answer.
        retry_for: seconds to keep retrying 503s and unreachable nodes.
        on_retry: called with a short reason before each retry (for progress output).
        rng: the source of backoff jitter.
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
    ) -> None:
        if not urls:
            raise ValueError("at least one URL is needed")
        self.urls = [base_url(u) for u in urls]
        self.leader: str | None = None
        self.timeout = timeout
        self.retry_for = retry_for
        self.max_redirects = max_redirects
        self.on_retry = on_retry
        self._rng = rng or random.Random()
        self._next = 0

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
            ClientError: still no such answer after ``retry_for`` seconds.
        """
        deadline = time.monotonic() + (self.retry_for if retry_for is None else retry_for)
        all_headers = dict(headers or {})
        if idempotency_key is not None:
            all_headers["Idempotency-Key"] = idempotency_key
        attempt = 0
        url = self.leader or self.urls[self._next % len(self.urls)]
        redirects = 0
        while True:
            try:
                reply = self._once(method, url + path, body, all_headers, timeout)
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{url}: {_describe(exc)}"
                if self.leader == url:
                    self.leader = None
                self._next += 1
                url = self.urls[self._next % len(self.urls)]
            else:
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
                    self._next += 1
                    url = self.urls[self._next % len(self.urls)]
                else:
                    if reply.status < 300 or reply.status in (404, 412):
                        self.leader = url
                    return reply
            attempt += 1
            delay = min(0.05 * 2 ** min(attempt, 10), 1.0) * (0.5 + self._rng.random())
            if time.monotonic() + delay > deadline:
                raise ClientError(f"gave up after {attempt} attempt(s): {problem}")
            if self.on_retry is not None:
                self.on_retry(problem)
            time.sleep(delay)

    def _once(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Reply:
        host, port = split_url(url)
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(host, port, timeout=timeout or self.timeout)
        try:
            conn.request(method, target or "/", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                data,
                url,
            )
        finally:
            conn.close()

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
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(f"{url}: {_describe(exc)}") from None
        data = reply.json()
        if reply.status != 200 or not isinstance(data, dict):
            raise ClientError(f"{url}: {reply.status} {reply.error}")
        return data


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__
