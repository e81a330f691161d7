"""The KV service's commands and results, and their msgpack encoding.

Theory of operation: a client write becomes one :class:`Command` — an
operation (:class:`Put`, :class:`Delete` or :class:`NextTicket`) plus an
optional ``session`` (the HTTP ``Idempotency-Key``) — encoded to bytes and
proposed to the Raft log. Every node decodes the same bytes in the same order
and gets the same result (:class:`Written`, :class:`Conflict`,
:class:`Issued`, :class:`KeyReused` or :class:`Rejected`), which the proposer
hands back to its client.

On the wire and in the log a command is the msgpack array
``[tag, fields, session]`` where ``tag`` is a short string from
:data:`OP_TAGS` (an explicit table: renaming a class never changes the
format) and ``fields`` is a map with one-letter keys. Results are stored in
the snapshot (client sessions keep them) the same way, tagged by
:data:`RESULT_TAGS`. One private, strict cattrs converter does the work, as in
:mod:`traft.wire`; the log is forever, so these tags and keys never change.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import attrs
import cattrs
import msgpack
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.msgpack import make_converter

from traft.strict import register_strict_hooks

MAX_KEY_BYTES: Final = 1024
"""The longest key, in bytes of UTF-8."""

MAX_SESSION_BYTES: Final = 128
"""The longest idempotency key (session id), in bytes of UTF-8."""


class MalformedCommand(ValueError):
    """Bytes that are not a valid KV command (or result)."""


def check_key(key: str) -> None:
    """Check that ``key`` is a valid key: 1..MAX_KEY_BYTES bytes, no control characters.

    Raises:
        ValueError: with a message fit for a client.
    """
    if not key:
        raise ValueError("the key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"the key is longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) < 0xE000 for c in key):
        raise ValueError("the key holds a control character or a lone surrogate")


def check_session(session: str) -> None:
    """Check an idempotency key: 1..MAX_SESSION_BYTES printable ASCII characters.

    Raises:
        ValueError: with a message fit for a client.
    """
    if not 0 < len(session) <= MAX_SESSION_BYTES or not all(0x20 < ord(c) < 0x7F for c in session):
        raise ValueError(
            f"an Idempotency-Key is 1 to {MAX_SESSION_BYTES} printable ASCII characters"
        )


# --- operations -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Put:
    """Set ``key`` to ``value``; with ``prev``, only if the current value is ``prev``."""

    key: str
    value: bytes
    prev: bytes | None = None


@attrs.frozen(kw_only=True)
class Delete:
    """Remove ``key`` (absent is fine); with ``prev``, only if the current value is ``prev``."""

    key: str
    prev: bytes | None = None


@attrs.frozen(kw_only=True)
class NextTicket:
    """Take the next ticket number (ticketd)."""


Op = Put | Delete | NextTicket

OP_TAGS: Final[dict[str, type[Any]]] = {"p": Put, "d": Delete, "t": NextTicket}
_OP_TAG_OF: Final = {cls: tag for tag, cls in OP_TAGS.items()}


@attrs.frozen(kw_only=True)
class Command:
    """One proposal: an operation and, for retry-safe writes, its session (idempotency key)."""

    op: Op
    session: str | None = None


# --- results ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Written:
    """A put or delete took effect at log ``index``. ``existed``: the key had a value before."""

    index: int
    existed: bool


@attrs.frozen(kw_only=True)
class Conflict:
    """A compare-and-set failed at ``index``: the current value is not ``prev``."""

    index: int
    exists: bool


@attrs.frozen(kw_only=True)
class Issued:
    """Ticket number ``ticket`` was taken at log ``index``."""

    index: int
    ticket: int


@attrs.frozen(kw_only=True)
class KeyReused:
    """The session (idempotency key) was first used at ``index`` for a different command."""

    index: int


@attrs.frozen(kw_only=True)
class Rejected:
    """The log entry at ``index`` was not a valid command (``reason`` says why)."""

    index: int
    reason: str


Result = Written | Conflict | Issued | KeyReused | Rejected

RESULT_TAGS: Final[dict[str, type[Any]]] = {
    "w": Written,
    "c": Conflict,
    "i": Issued,
    "r": KeyReused,
    "x": Rejected,
}
_RESULT_TAG_OF: Final = {cls: tag for tag, cls in RESULT_TAGS.items()}

# One-letter field names on the wire, explicit for the same reason as the tags.
_FIELD_NAMES: Final = {
    "key": "k",
    "value": "v",
    "prev": "p",
    "index": "i",
    "existed": "e",
    "exists": "e",
    "ticket": "t",
    "reason": "r",
}


# --- the converter ----------------------------------------------------------


def _make_converter() -> cattrs.Converter:
    conv = make_converter(forbid_extra_keys=True)
    register_strict_hooks(conv, MalformedCommand)
    for cls in (*OP_TAGS.values(), *RESULT_TAGS.values()):
        attrs.resolve_types(cls)
        names: dict[str, Any] = {
            f.name: override(rename=_FIELD_NAMES[f.name]) for f in attrs.fields(cls)
        }
        conv.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=False, **names)
        )
        conv.register_structure_hook(
            cls, make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True, **names)
        )
    return conv


_converter: Final = _make_converter()


def _structure_tagged(obj: Any, tags: dict[str, type[Any]]) -> Any:
    if type(obj) is not list or len(obj) != 2 or type(obj[1]) is not dict:
        raise MalformedCommand("not a [tag, fields] pair")
    cls = tags.get(obj[0]) if type(obj[0]) is str else None
    if cls is None:
        raise MalformedCommand(f"unknown tag {obj[0]!r:.20}")
    try:
        return _converter.structure(obj[1], cls)
    except MalformedCommand:
        raise
    except Exception as exc:  # cattrs raises several kinds; all mean malformed
        raise MalformedCommand(f"{type(exc).__name__}: {exc!s:.200}") from None


def encode_command(command: Command) -> bytes:
    """The bytes to propose to the log for ``command``."""
    op = command.op
    data: bytes = msgpack.packb([_OP_TAG_OF[type(op)], _converter.unstructure(op), command.session])
    return data


def decode_command(data: bytes) -> Command:
    """Decode and validate a command read from the log.

    Raises:
        MalformedCommand: the bytes are not a valid command; nothing else escapes.
    """
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several kinds; all mean malformed
        raise MalformedCommand(f"not msgpack: {type(exc).__name__}") from None
    if type(obj) is not list or len(obj) != 3:
        raise MalformedCommand("not a [tag, fields, session] triple")
    op = _structure_tagged(obj[:2], OP_TAGS)
    session = obj[2]
    if session is not None:
        if type(session) is not str:
            raise MalformedCommand("the session is not a string")
        try:
            check_session(session)
        except ValueError as exc:
            raise MalformedCommand(str(exc)) from None
    if isinstance(op, Put | Delete):
        try:
            check_key(op.key)
        except ValueError as exc:
            raise MalformedCommand(str(exc)) from None
    return Command(op=op, session=session)


def op_digest(op: Op) -> bytes:
    """A short fingerprint of an operation, to tell a reused idempotency key from a retry."""
    data = msgpack.packb([_OP_TAG_OF[type(op)], _converter.unstructure(op)])
    return hashlib.blake2b(data, digest_size=8).digest()


def unstructure_result(result: Result) -> list[Any]:
    """A result as a msgpack-ready ``[tag, fields]`` (for snapshots)."""
    return [_RESULT_TAG_OF[type(result)], _converter.unstructure(result)]


def structure_result(obj: Any) -> Result:
    """The inverse of :func:`unstructure_result`.

    Raises:
        MalformedCommand: ``obj`` is not a valid result.
    """
    result: Result = _structure_tagged(obj, RESULT_TAGS)
    return result
