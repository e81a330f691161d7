"""The KV service's HTTP/1.1 API: a small ASGI app served by hypercorn on trio.

Theory of operation
-------------------
:class:`KVApp` turns each request into one call on the node —
``node.submit(command)`` for writes, ``node.read(query)`` for reads (both
linearizable), the membership calls for ``/members`` — and the node's answer
or error into a status code and a small JSON body. It keeps no state of its
own besides metrics; the node and the :class:`~traft.kv.state.KVStore` it
replicates hold everything. HTTP parsing is hypercorn's; this module only
routes ASGI scopes. :func:`serve_http` runs the app on a trio listener until
a shutdown event is set.

The table (docs/http-api.md has the full reference):

=============================  =============================================
``PUT /kv/{key}`` body=value    200 ``{"index": N}``; ``?prev=V``: 412 unless
                                the current value is V
``GET /kv/{key}``               200 value (octet-stream), 404 when absent
``DELETE /kv/{key}``            200 ``{"index": N, "deleted": bool}``
``POST /ticket``                200 ``{"ticket": N, "index": N}``
``GET /status``                 this node's view (``?digest=1`` adds the
                                state's SHA-256)
``GET /metrics``                Prometheus text
``POST /members``               ``{"id", "peer", "http"}``: add a node
``DELETE /members/{id}``        remove a node
``GET|POST /faults``            network fault control, only under
                                ``traft serve --enable-faults`` (404
                                otherwise; see :mod:`traft.kv.faultctl`)
=============================  =============================================

Errors, every one with a JSON body ``{"error": ...}``: a write or read on a
follower answers 307 with ``Location`` the leader's URL for the same path
and query; no known leader, a proposal lost to a new term, a proposal not
committed in time, or a node shutting down answer 503 with ``Retry-After``
(retrying a write with the same ``Idempotency-Key`` is always safe); a bad
key, parameter or header 400; a body or command too large 413; an
Idempotency-Key reused for a different request 422; a refused membership
change 409; an unknown path 404; a wrong method 405 with ``Allow``.

Limits: a key is 1..1024 bytes of UTF-8 without control characters (``/``
is allowed and percent-escapes are decoded); an Idempotency-Key is 1..128
printable ASCII characters; the encoded command (key, value, prev and
idempotency key together) must fit ``max_command_bytes``, by default
``cluster.max_datagram - 2101`` under ``traft serve`` so that any entry fits
one datagram (the node refuses larger commands too: 413 as well).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar, cast
from urllib.parse import unquote_to_bytes

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

import net
from traft.kv.commands import (
    Command,
    Conflict,
    Delete,
    Issued,
    KeyReused,
    NextTicket,
    Op,
    Put,
    Written,
    check_key,
    check_session,
    encode_command,
)
from traft.kv.faultctl import FaultRequestError, apply_fault_request, describe_faults
from traft.kv.state import KVStore
from traft.node.config import ConfigError, parse_address
from traft.node.errors import (
    LeadershipTransferring,
    MemberChangeError,
    NodeStopped,
    NoLeaderError,
    NotLeaderError,
    ProposalLost,
    ProposalTimeout,
    TransferFailed,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
Handler = Callable[[Scope, Receive], Awaitable[Answer]]

DEFAULT_MAX_COMMAND_BYTES: Final = 60_000 - 2101  # what traft serve uses by default
RETRY_AFTER_S: Final = 1
_JSON: Final = b"application/json"
_METHODS: Final = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD"})


class NodeAPI(Protocol):
    """What the app needs of a node (:class:`traft.node.node.Node` has it)."""

    async def submit(self, command: bytes, *, timeout: float = 5.0) -> Any: ...

    async def read(self, query: Callable[[Any], T], *, timeout: float = 5.0) -> T: ...

    async def add_member(
        self,
        node_id: int,
        peer: tuple[str, int],
        http: tuple[str, int],
        *,
        timeout: float = 30.0,
    ) -> None: ...

    async def remove_member(self, node_id: int, *, timeout: float = 30.0) -> None: ...

    def status(self) -> dict[str, Any]: ...

    @property
    def registry(self) -> CollectorRegistry: ...


class HTTPError(Exception):
    """An answer other than 200, raised inside a handler."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []
        self.body = {"error": message, **extra}


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "traft_http_requests",
            "HTTP requests answered, by method, route and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "traft_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


class KVApp:
    """The ASGI application.

    Args:
        node: the node (anything with :class:`NodeAPI`'s surface).
        store: the node's state machine, for ``/status``'s local numbers.
        max_command_bytes: the largest encoded command (413 beyond).
        timeout: seconds to wait for a write or read to commit (503 beyond).
        member_timeout: seconds to wait for a membership change.
        faults: the node endpoint's fault injector, served on ``/faults``
            (fault testing only); None: ``/faults`` is 404.
    """

    def __init__(
        self,
        node: NodeAPI,
        store: KVStore | None = None,
        *,
        max_command_bytes: int = DEFAULT_MAX_COMMAND_BYTES,
        timeout: float = 5.0,
        member_timeout: float = 30.0,
        faults: net.FaultInjector | None = None,
    ) -> None:
        self.node = node
        self.faults = faults
        self.store = store
        self.max_command_bytes = max_command_bytes
        self.timeout = timeout
        self.member_timeout = member_timeout
        self._metrics = _Metrics(node.registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not served; hypercorn closes the connection
        start = time.perf_counter()
        method = scope["method"]
        route = "other"
        try:
            route, handler, allowed = self._route(scope)
            if method not in allowed:
                raise HTTPError(
                    405,
                    f"method {method} not allowed here",
                    headers=[(b"allow", ", ".join(sorted(allowed)).encode())],
                )
            status, headers, body = await handler(scope, receive)
        except HTTPError as exc:
            status, headers = exc.status, [(b"content-type", _JSON), *exc.headers]
            body = _json(exc.body)
        except Exception:
            log.exception("unexpected error answering %s %s", method, scope.get("path"))
            status, headers, body = 500, [(b"content-type", _JSON)], _json({"error": "internal"})
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        self._metrics.requests.labels(
            method if method in _METHODS else "other", route, str(status)
        ).inc()
        self._metrics.latency.labels(route).observe(time.perf_counter() - start)

    # --- routing --------------------------------------------------------------

    def _route(self, scope: Scope) -> tuple[str, Handler, frozenset[str]]:
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        raw = raw.split(b"?", 1)[0]
        if raw.startswith(b"/kv/"):
            return "kv", self._kv, frozenset({"GET", "HEAD", "PUT", "DELETE"})
        if raw == b"/ticket":
            return "ticket", self._ticket, frozenset({"POST"})
        if raw == b"/status":
            return "status", self._status, frozenset({"GET", "HEAD"})
        if raw == b"/metrics":
            return "metrics", self._metrics_page, frozenset({"GET", "HEAD"})
        if raw == b"/members":
            return "members", self._add_member, frozenset({"POST"})
        if raw.startswith(b"/members/"):
            return "members", self._remove_member, frozenset({"DELETE"})
        if raw == b"/faults" and self.faults is not None:
            return "faults", self._faults, frozenset({"GET", "POST"})
        raise HTTPError(404, "no such path")

    # --- handlers ---------------------------------------------------------------

    async def _kv(self, scope: Scope, receive: Receive) -> Answer:
        key = _key(scope)
        params = _params(scope, allowed={"prev"} if scope["method"] in ("PUT", "DELETE") else set())
        if scope["method"] in ("GET", "HEAD"):
            value = await self._call(scope, self.node.read(_getter(key), timeout=self.timeout))
            if value is None:
                raise HTTPError(404, "no such key", key=key)
            return 200, [(b"content-type", b"application/octet-stream")], value
        prev = params.get("prev")
        op: Op
        if scope["method"] == "PUT":
            op = Put(key=key, value=await self._body(scope, receive), prev=prev)
        else:
            op = Delete(key=key, prev=prev)
        result = await self._submit(scope, op)
        if isinstance(result, Written):
            body: dict[str, Any] = {"index": result.index}
            if isinstance(op, Delete):
                body["deleted"] = result.existed
            return 200, [(b"content-type", _JSON)], _json(body)
        if isinstance(result, Conflict):
            raise HTTPError(
                412,
                "precondition failed: the current value is not prev",
                index=result.index,
                exists=result.exists,
            )
        raise self._unexpected(result)

    async def _ticket(self, scope: Scope, receive: Receive) -> Answer:
        _params(scope, allowed=set())
        result = await self._submit(scope, NextTicket())
        if isinstance(result, Issued):
            body = {"ticket": result.ticket, "index": result.index}
            return 200, [(b"content-type", _JSON)], _json(body)
        raise self._unexpected(result)

    async def _status(self, scope: Scope, receive: Receive) -> Answer:
        params = _params(scope, allowed={"digest"})
        status = dict(self.node.status())
        if self.store is not None:
            status["kv"] = self.store.summary()
            if params.get("digest", b"0") not in (b"0", b"", b"false"):
                status["kv"]["digest"] = self.store.digest()
        return 200, [(b"content-type", _JSON)], _json(status)

    async def _metrics_page(self, scope: Scope, receive: Receive) -> Answer:
        body = generate_latest(self.node.registry)
        return 200, [(b"content-type", CONTENT_TYPE_LATEST.encode())], body

    async def _add_member(self, scope: Scope, receive: Receive) -> Answer:
        _params(scope, allowed=set())
        try:
            spec = json.loads(await self._body(scope, receive))
        except ValueError:
            raise HTTPError(400, "the body must be JSON: {id, peer, http}") from None
        if not isinstance(spec, dict) or set(spec) != {"id", "peer", "http"}:
            raise HTTPError(
                400, 'the body must be {"id": N, "peer": "HOST:PORT", "http": "HOST:PORT"}'
            )
        node_id = spec["id"]
        if type(node_id) is not int or not 0 < node_id < 2**63:
            raise HTTPError(400, "id must be a positive integer")
        try:
            peer = parse_address(spec["peer"], "peer")
            http = parse_address(spec["http"], "http")
        except ConfigError as exc:
            raise HTTPError(400, str(exc)) from None
        await self._call(
            scope, self.node.add_member(node_id, peer, http, timeout=self.member_timeout)
        )
        return self._members_answer(node_id, "added")

    async def _remove_member(self, scope: Scope, receive: Receive) -> Answer:
        _params(scope, allowed=set())
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        text = raw.split(b"?", 1)[0][len(b"/members/") :]
        if not text.isdigit() or not 0 < int(text) < 2**63:
            raise HTTPError(400, "the member id must be a positive integer")
        node_id = int(text)
        await self._call(scope, self.node.remove_member(node_id, timeout=self.member_timeout))
        return self._members_answer(node_id, "removed")

    async def _faults(self, scope: Scope, receive: Receive) -> Answer:
        _params(scope, allowed=set())
        assert self.faults is not None  # routed only when set
        if scope["method"] == "GET":
            return 200, [(b"content-type", _JSON)], _json(describe_faults(self.faults))
        try:
            spec = json.loads(await self._body(scope, receive))
        except ValueError:
            raise HTTPError(400, "the body must be a JSON object") from None
        try:
            state = apply_fault_request(self.faults, spec)
        except FaultRequestError as exc:
            raise HTTPError(400, str(exc)) from None
        log.warning("network faults set: %s", {k: v for k, v in state.items() if k != "stats"})
        return 200, [(b"content-type", _JSON)], _json(state)

    def _members_answer(self, node_id: int, what: str) -> Answer:
        members = self.node.status().get("members", [])
        body = {what: node_id, "members": members}
        return 200, [(b"content-type", _JSON)], _json(body)

    # --- helpers ------------------------------------------------------------------

    async def _submit(self, scope: Scope, op: Op) -> Any:
        session = _header(scope, b"idempotency-key")
        if session is not None:
            try:
                check_session(session)
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
        command = encode_command(Command(op=op, session=session))
        if len(command) > self.max_command_bytes:
            raise HTTPError(413, f"the request is too large (limit {self.max_command_bytes} bytes)")
        try:
            result = await self._call(scope, self.node.submit(command, timeout=self.timeout))
        except ValueError as exc:  # the node's own size limit, should ours be looser
            raise HTTPError(413, f"the request is too large: {exc}") from None
        if isinstance(result, KeyReused):
            raise HTTPError(
                422,
                "this Idempotency-Key was used for a different request",
                index=result.index,
            )
        return result

    async def _call(self, scope: Scope, call: Awaitable[T]) -> T:
        """Await a node call and turn its errors into answers."""
        try:
            return await call
        except NotLeaderError as exc:
            if isinstance(exc, NoLeaderError) or not exc.leader_url:
                raise _unavailable("no leader is known; retry shortly") from None
            location = exc.leader_url.rstrip("/") + _target(scope)
            raise HTTPError(
                307,
                "not the leader",
                headers=[(b"location", location.encode())],
                leader_id=exc.leader_id,
                leader_url=exc.leader_url,
            ) from None
        except ProposalLost:
            raise _unavailable(
                "the proposal was lost to a new leader; retrying with the same "
                "Idempotency-Key is safe"
            ) from None
        except ProposalTimeout:
            raise _unavailable(
                "not committed before the deadline; the outcome is unknown; retrying "
                "with the same Idempotency-Key is safe"
            ) from None
        except NodeStopped:
            raise _unavailable("this node is stopping") from None
        except LeadershipTransferring as exc:
            raise _unavailable(str(exc)) from None
        except TransferFailed as exc:
            raise HTTPError(409, str(exc), target=exc.target) from None
        except MemberChangeError as exc:
            raise HTTPError(409, f"membership change refused: {exc}") from None

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_command_bytes
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            if not length.isdigit():
                raise HTTPError(400, "bad Content-Length")
            raise HTTPError(413, f"the body is too large (limit {limit} bytes)")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"the body is too large (limit {limit} bytes)")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _unexpected(self, result: Any) -> HTTPError:
        log.error("unexpected result from the state machine: %r", result)
        return HTTPError(500, f"unexpected result: {type(result).__name__}")


def _getter(key: str) -> Callable[[Any], bytes | None]:
    def query(store: Any) -> bytes | None:
        return cast(KVStore, store).get(key)

    return query


def _unavailable(message: str) -> HTTPError:
    return HTTPError(503, message, headers=[(b"retry-after", str(RETRY_AFTER_S).encode())])


def _json(body: Any) -> bytes:
    return (json.dumps(body, default=str, separators=(",", ":")) + "\n").encode()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            try:
                return cast(bytes, value).decode("ascii")
            except UnicodeDecodeError:
                raise HTTPError(400, f"the {name.decode()} header is not ASCII") from None
    return None


def _target(scope: Scope) -> str:
    """The request's path and query, as the client sent them."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    target = raw.decode("latin-1")
    if "?" not in target and scope.get("query_string"):
        target += "?" + cast(bytes, scope["query_string"]).decode("latin-1")
    return target


def _key(scope: Scope) -> str:
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    try:
        key = unquote_to_bytes(raw.split(b"?", 1)[0][len(b"/kv/") :]).decode("utf-8")
        check_key(key)
    except UnicodeDecodeError:
        raise HTTPError(400, "the key is not UTF-8") from None
    except ValueError as exc:
        raise HTTPError(400, f"bad key: {exc}") from None
    return key


def _params(scope: Scope, *, allowed: set[str]) -> dict[str, bytes]:
    """Query parameters (values percent-decoded to bytes).

    Raises:
        HTTPError: 400 for an unknown or repeated parameter.
    """
    params: dict[str, bytes] = {}
    query: bytes = scope.get("query_string", b"")
    for part in query.split(b"&"):
        if not part:
            continue
        name_raw, _, value_raw = part.partition(b"=")
        name = unquote_to_bytes(name_raw.replace(b"+", b" ")).decode("utf-8", "replace")
        if name not in allowed:
            where = f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
            raise HTTPError(400, f"unknown parameter {name!r}{where}")
        if name in params:
            raise HTTPError(400, f"parameter {name!r} given twice")
        params[name] = unquote_to_bytes(value_raw.replace(b"+", b" "))
    return params


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def serve_http(
    app: KVApp,
    host: str,
    port: int,
    *,
    shutdown: trio.Event,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` (0: any free port) until ``shutdown`` is set.

    Reports the bound ``(host, port)`` through ``task_status`` once listening.

    Raises:
        OSError: the address cannot be bound.
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("traft.kv.http.server")
    config.graceful_timeout = 2.0
    config.include_server_header = False
    config.keep_alive_timeout = 30.0

    class _Status:
        def started(self, binds: list[str] | None = None) -> None:
            assert binds
            where = binds[0].rpartition("://")[2]
            bound_host, _, bound_port = where.rpartition(":")
            task_status.started((bound_host.strip("[]"), int(bound_port)))

    await serve(
        app,  # type: ignore[arg-type]
        config,
        shutdown_trigger=shutdown.wait,
        task_status=_Status(),
        mode="asgi",
    )
