"""The KV service's HTTP/1.1 API: routing and commands, with no sockets.

Theory of operation
-------------------
:class:`KVApp` is a plain ``async handle(Request) -> Response``: it turns
each request into one call on the node —
``node.submit(command)`` for writes, ``node.read(query)`` for reads (both
linearizable; a follower answers reads itself after asking the leader for a
read index), the membership calls for ``/members``,
``node.transfer_leadership`` for ``/leader`` — and the node's answer
or error into a status code and a small JSON body. It keeps no state of its
own besides metrics; the node and the :class:`~traft.kv.state.KVStore` it
replicates hold everything. It never sees a socket: :mod:`traft.kv.server`
(a trio loop around the ``httptools`` parser) reads a whole request, calls
:meth:`KVApp.handle` and writes the answer; tests call ``handle`` directly;
:meth:`KVApp.__call__` adapts it to ASGI for anyone who wants to mount the
API in another server. Batching happens below: every request waiting on the
node joins the main loop's next proposal batch or ReadIndex round
(:mod:`traft.node.node`), and each answer is written as soon as its entry is
applied.

The table (docs/http-api.md has the full reference):

=============================  =============================================
``PUT /kv/{key}`` body=value    200 ``{"index": N}``; ``?prev=V``: 412 unless
                                the current value is V
``GET /kv/{key}``               200 value (octet-stream), 404 when absent;
                                ``?leader=1``: a follower redirects instead
``DELETE /kv/{key}``            200 ``{"index": N, "deleted": bool}``
``POST /ticket``                200 ``{"ticket": N, "index": N}``
``GET /status``                 this node's view (``?digest=1`` adds the
                                state's SHA-256)
``GET /metrics``                Prometheus text
``POST /members``               ``{"id", "peer", "http"}``: add a node
``DELETE /members/{id}``        remove a node
``POST /leader``                ``{"id": N}`` or ``{}``: hand leadership to N
                                (or the most up-to-date follower)
``GET|POST /faults``            network fault control, only under
                                ``traft serve --enable-faults`` (404
                                otherwise; see :mod:`traft.kv.faultctl`)
=============================  =============================================

Errors, every one with a JSON body ``{"error": ...}``: a write,
``/members``, ``/leader`` or a ``GET ?leader=1`` on a follower answers 307
with ``Location`` the leader's URL for the same path and query; no known
leader, a leadership transfer in progress, a proposal lost to a new term, a
proposal not committed in time, or a node shutting down answer 503 with
``Retry-After`` (retrying a write with the same ``Idempotency-Key`` is always
safe); a bad key, parameter or header 400; a body or command too large 413;
an Idempotency-Key reused for a different request 422; a refused membership
change or a failed leadership transfer 409; an unknown path 404; a wrong
method 405 with ``Allow``.

Limits: a key is 1..1024 bytes of UTF-8 without control characters (``/``
is allowed and percent-escapes are decoded); an Idempotency-Key is 1..128
printable ASCII characters; the encoded command (key, value, prev and
idempotency key together) must fit ``max_command_bytes``, under ``traft
serve`` the node's own limit (``Node.budget.max_command``: the cluster's
``max_command``, 1 MiB by default, see :class:`traft.wire.Budget`). A 413
names the room left for the value with the request's key, ``prev`` and
Idempotency-Key (:meth:`KVApp.room_for_value`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar, cast
from urllib.parse import unquote_to_bytes

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
from traft.node.config import DEFAULT_MAX_COMMAND, ConfigError, parse_address
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
Headers = list[tuple[bytes, bytes]]
Handler = Callable[["Request"], Awaitable["Response"]]

DEFAULT_MAX_COMMAND_BYTES: Final = DEFAULT_MAX_COMMAND  # what traft serve uses by default
RETRY_AFTER_S: Final = 1
_JSON: Final = b"application/json"
_OCTETS: Final = b"application/octet-stream"
_METHODS: Final = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD"})
_KV_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE"})
_POST: Final = frozenset({"POST"})
_GET: Final = frozenset({"GET", "HEAD"})
_NO_PARAMS: Final[frozenset[str]] = frozenset()
_PREV: Final = frozenset({"prev"})
_LEADER: Final = frozenset({"leader"})


class Request:
    """One whole HTTP request, as the server parsed it.

    ``path`` is the raw path (still percent-encoded) and ``query`` the raw
    query string without ``?``; header names are lower-case.
    """

    __slots__ = ("method", "path", "query", "headers", "body")

    def __init__(
        self,
        method: str,
        path: bytes,
        query: bytes = b"",
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers: Headers = headers if headers is not None else []
        self.body = body

    @property
    def target(self) -> str:
        """The path and query as the client sent them."""
        target = self.path.decode("latin-1")
        return f"{target}?{self.query.decode('latin-1')}" if self.query else target

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Response:
    """An answer: status, headers (the server adds ``content-length``) and body.

    For ``HEAD`` the body is still set: the server sends its length, not its bytes.
    """

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers!r}, {self.body[:80]!r})"


class NodeAPI(Protocol):
    """What the app needs of a node (:class:`traft.node.node.Node` has it)."""

    async def submit(self, command: bytes, *, timeout: float = 5.0) -> Any: ...

    async def read(
        self, query: Callable[[Any], T], *, timeout: float = 5.0, forward: bool = True
    ) -> T: ...

    async def transfer_leadership(self, to: int | None = None, *, timeout: float = 5.0) -> int: ...

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
        headers: Headers | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []
        self.body = {"error": message, **extra}

    def response(self) -> Response:
        return Response(self.status, [(b"content-type", _JSON), *self.headers], _json(self.body))


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
        # Children by label values: ``labels()`` costs a lock and a dict
        # lookup per call, and every request counts twice.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(method, route, str(status))
        counter.inc()
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._histograms[route] = self.latency.labels(route)
        histogram.observe(seconds)


class KVApp:
    """The application: ``await app.handle(request)`` answers one request.

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

    @property
    def max_body_bytes(self) -> int:
        """No request body can be longer than this (a server may refuse it unread)."""
        return self.max_command_bytes

    async def handle(self, request: Request) -> Response:
        """Answer one request; never raises (a bug answers 500 and is logged)."""
        start = time.perf_counter()
        method = request.method
        route = "other"
        try:
            route, handler, allowed = self._route(request.path)
            if method not in allowed:
                raise HTTPError(
                    405,
                    f"method {method} not allowed here",
                    headers=[(b"allow", ", ".join(sorted(allowed)).encode())],
                )
            response = await handler(request)
        except HTTPError as exc:
            response = exc.response()
        except Exception:
            log.exception("unexpected error answering %s %s", method, request.target)
            response = Response(500, [(b"content-type", _JSON)], _json({"error": "internal"}))
        self._metrics.observe(
            method if method in _METHODS else "other",
            route,
            response.status,
            time.perf_counter() - start,
        )
        return response

    def too_large(self, request: Request, length: int | None = None) -> Response:
        """The 413 for a body the server refused unread (``length``: its Content-Length)."""
        return self._too_large(request, length).response()

    def room_for_value(self, key: str, prev: bytes | None, session: str | None) -> int:
        """The longest value a ``PUT`` of ``key`` with ``prev`` and ``session`` can carry."""
        empty = len(encode_command(Command(op=Put(key=key, value=b"", prev=prev), session=session)))
        # msgpack frames the value as bin 8, 16 or 32: 2, 3 or 5 bytes before it.
        fixed = empty - 2
        room = self.max_command_bytes - fixed
        if room - 5 > 0xFFFF:
            return room - 5
        if room - 3 > 0xFF:
            return min(room - 3, 0xFFFF)
        return max(min(room - 2, 0xFF), 0)

    # --- routing --------------------------------------------------------------

    def _route(self, path: bytes) -> tuple[str, Handler, frozenset[str]]:
        if path.startswith(b"/kv/"):
            return "kv", self._kv, _KV_METHODS
        if path == b"/ticket":
            return "ticket", self._ticket, _POST
        if path == b"/status":
            return "status", self._status, _GET
        if path == b"/metrics":
            return "metrics", self._metrics_page, _GET
        if path == b"/members":
            return "members", self._add_member, _POST
        if path.startswith(b"/members/"):
            return "members", self._remove_member, frozenset({"DELETE"})
        if path == b"/leader":
            return "leader", self._transfer_leader, _POST
        if path == b"/faults" and self.faults is not None:
            return "faults", self._faults, frozenset({"GET", "POST"})
        raise HTTPError(404, "no such path")

    # --- handlers ---------------------------------------------------------------

    async def _kv(self, request: Request) -> Response:
        key = _key(request)
        method = request.method
        params = _params(request, allowed=_PREV if method in ("PUT", "DELETE") else _LEADER)
        if method in ("GET", "HEAD"):
            # Any node answers, linearizably: a follower asks the leader for a
            # read index first. ?leader=1 asks a follower to redirect instead.
            forward = params.get("leader", b"0") in (b"0", b"", b"false")
            read = self.node.read(_getter(key), timeout=self.timeout, forward=forward)
            value = await self._call(request, read)
            if value is None:
                raise HTTPError(404, "no such key", key=key)
            return Response(200, [(b"content-type", _OCTETS)], value)
        prev = params.get("prev")
        op: Op
        if method == "PUT":
            op = Put(key=key, value=self._body(request), prev=prev)
        else:
            op = Delete(key=key, prev=prev)
        result = await self._submit(request, op)
        if isinstance(result, Written):
            if isinstance(op, Delete):
                body = b'{"index":%d,"deleted":%s}\n' % (
                    result.index,
                    b"true" if result.existed else b"false",
                )
            else:
                body = b'{"index":%d}\n' % result.index
            return Response(200, [(b"content-type", _JSON)], body)
        if isinstance(result, Conflict):
            raise HTTPError(
                412,
                "precondition failed: the current value is not prev",
                index=result.index,
                exists=result.exists,
            )
        raise self._unexpected(result)

    async def _ticket(self, request: Request) -> Response:
        _params(request, allowed=_NO_PARAMS)
        result = await self._submit(request, NextTicket())
        if isinstance(result, Issued):
            body = b'{"ticket":%d,"index":%d}\n' % (result.ticket, result.index)
            return Response(200, [(b"content-type", _JSON)], body)
        raise self._unexpected(result)

    async def _status(self, request: Request) -> Response:
        params = _params(request, allowed=frozenset({"digest"}))
        status = dict(self.node.status())
        if self.store is not None:
            status["kv"] = self.store.summary()
            if params.get("digest", b"0") not in (b"0", b"", b"false"):
                status["kv"]["digest"] = self.store.digest()
        return Response(200, [(b"content-type", _JSON)], _json(status))

    async def _metrics_page(self, request: Request) -> Response:
        body = generate_latest(self.node.registry)
        return Response(200, [(b"content-type", CONTENT_TYPE_LATEST.encode())], body)

    async def _add_member(self, request: Request) -> Response:
        _params(request, allowed=_NO_PARAMS)
        try:
            spec = json.loads(self._body(request))
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
            request, self.node.add_member(node_id, peer, http, timeout=self.member_timeout)
        )
        return self._members_answer(node_id, "added")

    async def _remove_member(self, request: Request) -> Response:
        _params(request, allowed=_NO_PARAMS)
        text = request.path[len(b"/members/") :]
        if not text.isdigit() or not 0 < int(text) < 2**63:
            raise HTTPError(400, "the member id must be a positive integer")
        node_id = int(text)
        await self._call(request, self.node.remove_member(node_id, timeout=self.member_timeout))
        return self._members_answer(node_id, "removed")

    async def _faults(self, request: Request) -> Response:
        _params(request, allowed=_NO_PARAMS)
        assert self.faults is not None  # routed only when set
        if request.method == "GET":
            return Response(200, [(b"content-type", _JSON)], _json(describe_faults(self.faults)))
        try:
            spec = json.loads(self._body(request))
        except ValueError:
            raise HTTPError(400, "the body must be a JSON object") from None
        try:
            state = apply_fault_request(self.faults, spec)
        except FaultRequestError as exc:
            raise HTTPError(400, str(exc)) from None
        log.warning("network faults set: %s", {k: v for k, v in state.items() if k != "stats"})
        return Response(200, [(b"content-type", _JSON)], _json(state))

    async def _transfer_leader(self, request: Request) -> Response:
        _params(request, allowed=_NO_PARAMS)
        body = self._body(request)
        try:
            spec = json.loads(body) if body.strip() else {}
        except ValueError:
            raise HTTPError(400, 'the body must be JSON: {"id": N} or {}') from None
        if not isinstance(spec, dict) or not set(spec) <= {"id"}:
            raise HTTPError(400, 'the body must be {"id": N} or {}')
        target = spec.get("id")
        if target is not None and (type(target) is not int or not 0 < target < 2**63):
            raise HTTPError(400, "id must be a positive integer")
        previous = self.node.status().get("leader_id")
        if target is not None and target == previous:
            return Response(
                200, [(b"content-type", _JSON)], _json({"leader": target, "previous": previous})
            )
        leader = await self._call(
            request, self.node.transfer_leadership(target, timeout=self.timeout)
        )
        return Response(
            200, [(b"content-type", _JSON)], _json({"leader": leader, "previous": previous})
        )

    def _members_answer(self, node_id: int, what: str) -> Response:
        members = self.node.status().get("members", [])
        body = {what: node_id, "members": members}
        return Response(200, [(b"content-type", _JSON)], _json(body))

    # --- helpers ------------------------------------------------------------------

    def _session(self, request: Request) -> str | None:
        session = _header(request, b"idempotency-key")
        if session is not None:
            try:
                check_session(session)
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from None
        return session

    async def _submit(self, request: Request, op: Op) -> Any:
        session = self._session(request)
        command = encode_command(Command(op=op, session=session))
        if len(command) > self.max_command_bytes:
            raise self._too_large(request)
        try:
            result = await self._call(request, self.node.submit(command, timeout=self.timeout))
        except ValueError as exc:  # the node's own size limit, should ours be looser
            raise HTTPError(413, f"the request is too large: {exc}") from None
        if isinstance(result, KeyReused):
            raise HTTPError(
                422,
                "this Idempotency-Key was used for a different request",
                index=result.index,
            )
        return result

    def _too_large(self, request: Request, length: int | None = None) -> HTTPError:
        """413, naming the room the value really has with this key, prev and session."""
        limit = self.max_command_bytes
        size = f" ({length} bytes)" if length is not None else ""
        room: int | None = None
        if request.method == "PUT" and request.path.startswith(b"/kv/"):
            try:
                prev = _params(request, allowed=_PREV).get("prev")
                room = self.room_for_value(_key(request), prev, self._session(request))
            except HTTPError:
                room = None  # the request is bad anyway; the generic message will do
        if room is not None:
            return HTTPError(
                413,
                f"the value is too large{size}: with this key, prev and Idempotency-Key "
                f"it may be at most {room} bytes (limit {limit} bytes for the whole "
                "encoded command)",
                max_value_bytes=room,
            )
        return HTTPError(413, f"the request is too large{size} (limit {limit} bytes)")

    async def _call(self, request: Request, call: Awaitable[T]) -> T:
        """Await a node call and turn its errors into answers."""
        try:
            return await call
        except NotLeaderError as exc:
            if isinstance(exc, NoLeaderError) or not exc.leader_url:
                raise _unavailable("no leader is known; retry shortly") from None
            location = exc.leader_url.rstrip("/") + request.target
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

    def _body(self, request: Request) -> bytes:
        length = _header(request, b"content-length")
        if length is not None and not length.isdigit():
            raise HTTPError(400, "bad Content-Length")
        if len(request.body) > self.max_body_bytes:
            raise self._too_large(request, len(request.body))
        return request.body

    def _unexpected(self, result: Any) -> HTTPError:
        log.error("unexpected result from the state machine: %r", result)
        return HTTPError(500, f"unexpected result: {type(result).__name__}")

    # --- ASGI ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same app as ASGI 3, for mounting under another server.

        ``traft serve`` does not use this (see :mod:`traft.kv.server`).
        """
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not served
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        path, _, query = raw.partition(b"?")
        request = Request(
            scope["method"],
            path,
            query or scope.get("query_string", b""),
            [(k.lower(), v) for k, v in scope.get("headers", ())],
        )
        response = await self._asgi_body(request, receive)
        if response is None:
            response = await self.handle(request)
        headers = [*response.headers, (b"content-length", str(len(response.body)).encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        body = b"" if request.method == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

    async def _asgi_body(self, request: Request, receive: Receive) -> Response | None:
        """Read the ASGI body into ``request``; a 413 or 400 instead when it cannot be."""
        limit = self.max_body_bytes
        length = _header(request, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return self.too_large(request, int(length))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return HTTPError(400, "the client went away").response()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return self.too_large(request)
            chunks.append(chunk)
            if not message.get("more_body", False):
                request.body = b"".join(chunks)
                return None


def _getter(key: str) -> Callable[[Any], bytes | None]:
    def query(store: Any) -> bytes | None:
        return cast(KVStore, store).get(key)

    return query


def _unavailable(message: str) -> HTTPError:
    return HTTPError(503, message, headers=[(b"retry-after", str(RETRY_AFTER_S).encode())])


def _json(body: Any) -> bytes:
    return (json.dumps(body, default=str, separators=(",", ":")) + "\n").encode()


def _header(request: Request, name: bytes) -> str | None:
    value = request.header(name)
    if value is None:
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise HTTPError(400, f"the {name.decode()} header is not ASCII") from None


def _key(request: Request) -> str:
    try:
        key = unquote_to_bytes(request.path[len(b"/kv/") :]).decode("utf-8")
        check_key(key)
    except UnicodeDecodeError:
        raise HTTPError(400, "the key is not UTF-8") from None
    except ValueError as exc:
        raise HTTPError(400, f"bad key: {exc}") from None
    return key


def _params(request: Request, *, allowed: frozenset[str]) -> dict[str, bytes]:
    """Query parameters (values percent-decoded to bytes).

    Raises:
        HTTPError: 400 for an unknown or repeated parameter.
    """
    params: dict[str, bytes] = {}
    if not request.query:
        return params
    for part in request.query.split(b"&"):
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
