"""The replicated state: keys to values, the ticket counter and client sessions.

Theory of operation
-------------------
:class:`KVStore` implements :class:`traft.node.StateMachine`. The node calls
:meth:`KVStore.apply` with each committed entry, in log order, on every
replica; the store decodes the command (:mod:`traft.kv.commands`), carries it
out and returns a small result object that the proposing node hands back to
its client. Nothing here reads a clock or a random source: the same commands
in the same order give the same state and results everywhere.

Client sessions (Raft thesis §6.3). A write that carries a session — the
HTTP ``Idempotency-Key`` — is carried out once: the store remembers the
result under that key, and a retry (the client timed out, the leader
changed, the proposal was lost and proposed again) gets the first result
back without touching the state again. A retry whose operation differs from
the first one gets :class:`~traft.kv.commands.KeyReused` instead.

Sessions expire by log position only, never by a node's clock, so every
replica forgets the same sessions at the same entry: a session is dropped
once ``retain_entries`` log indexes have passed since it was recorded, and
the oldest are dropped when more than ``max_sessions`` are held. Both limits
must be the same on every node of a cluster (they are constructor arguments
with fixed defaults; ``traft serve`` uses the defaults). A client must
therefore finish retrying a write within ``retain_entries`` entries of it
being applied — 100 000 by default, far beyond any retry loop.

Sessions are part of the state and of the snapshot; an entry that is not a
valid command (which a correct proposer never writes) is answered with
:class:`~traft.kv.commands.Rejected` and leaves the state unchanged, on
every replica alike.

Snapshot format
---------------
A stream of msgpack objects, cut into chunks of about :data:`CHUNK_BYTES`:
a header ``["traft-kv", 1, applied_index, last_ticket, n_keys, n_sessions]``,
then ``n_keys`` pairs ``[key, value]``, then ``n_sessions`` records
``[session, index, digest, [result_tag, result_fields]]`` oldest first. The
pairs come in the store's own order, which is the same on every replica
with the same history, so equal states give equal snapshot bytes
(:meth:`KVStore.digest` relies on it).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, Final

import attrs
import msgpack

from traft.kv.commands import (
    Conflict,
    Delete,
    Issued,
    KeyReused,
    MalformedCommand,
    NextTicket,
    Op,
    Put,
    Rejected,
    Result,
    Written,
    check_key,
    check_session,
    decode_command,
    op_digest,
    structure_result,
    unstructure_result,
)

log = logging.getLogger(__name__)

SNAPSHOT_MAGIC: Final = "traft-kv"
SNAPSHOT_VERSION: Final = 1
CHUNK_BYTES: Final = 64 * 1024
DEFAULT_RETAIN_ENTRIES: Final = 100_000
DEFAULT_MAX_SESSIONS: Final = 100_000


class SnapshotError(ValueError):
    """A snapshot stream is not one :meth:`KVStore.snapshot` wrote."""


@attrs.frozen
class Session:
    """What the store remembers of a write made under an idempotency key."""

    index: int
    digest: bytes
    result: Result


class KVStore:
    """Keys to values, a ticket counter and client sessions; a :class:`StateMachine`.

    Args:
        retain_entries: keep a session's result for this many log indexes.
        max_sessions: keep at most this many sessions (the oldest go first).
    """

    def __init__(
        self,
        *,
        retain_entries: int = DEFAULT_RETAIN_ENTRIES,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        if retain_entries < 1 or max_sessions < 1:
            raise ValueError("retain_entries and max_sessions must be positive")
        self.retain_entries = retain_entries
        self.max_sessions = max_sessions
        self._data: dict[str, bytes] = {}
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._last_ticket = 0
        self._applied_index = 0

    # --- reads (for node.read queries and tests) -----------------------------

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None."""
        return self._data.get(key)

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every (key, value), in the store's order."""
        return iter(self._data.items())

    @property
    def last_ticket(self) -> int:
        """The last ticket issued (0 before the first)."""
        return self._last_ticket

    @property
    def applied_index(self) -> int:
        """The index of the last entry applied (or restored from a snapshot)."""
        return self._applied_index

    @property
    def session_count(self) -> int:
        """How many sessions are remembered."""
        return len(self._sessions)

    def session(self, key: str) -> Session | None:
        """The session recorded under idempotency key ``key``, if still held."""
        return self._sessions.get(key)

    def digest(self) -> str:
        """SHA-256 (hex) of the snapshot stream: equal on replicas with equal state."""
        h = hashlib.sha256()
        for chunk in self.snapshot():
            h.update(chunk)
        return h.hexdigest()

    def summary(self) -> dict[str, int]:
        """Cheap numbers for ``/status``."""
        return {
            "applied": self._applied_index,
            "keys": len(self._data),
            "last_ticket": self._last_ticket,
            "sessions": len(self._sessions),
        }

    # --- StateMachine ---------------------------------------------------------

    def apply(self, index: int, command: bytes) -> Result:
        """Apply the committed entry ``command`` at log ``index``; return its result."""
        if index <= self._applied_index:
            # The node applies each entry once; a replay would break sessions.
            raise AssertionError(f"entry {index} applied after {self._applied_index}")
        self._applied_index = index
        self._expire(index)
        try:
            cmd = decode_command(command)
        except MalformedCommand as exc:
            log.warning("entry %d is not a KV command: %s", index, exc)
            return Rejected(index=index, reason=str(exc))
        if cmd.session is None:
            return self._execute(index, cmd.op)
        digest = op_digest(cmd.op)
        session = self._sessions.get(cmd.session)
        if session is not None:
            if session.digest != digest:
                return KeyReused(index=session.index)
            return session.result
        result = self._execute(index, cmd.op)
        self._sessions[cmd.session] = Session(index, digest, result)
        if len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return result

    def _execute(self, index: int, op: Op) -> Result:
        if isinstance(op, NextTicket):
            self._last_ticket += 1
            return Issued(index=index, ticket=self._last_ticket)
        current = self._data.get(op.key)
        if op.prev is not None and current != op.prev:
            return Conflict(index=index, exists=current is not None)
        if isinstance(op, Put):
            self._data[op.key] = op.value
        else:
            assert isinstance(op, Delete)
            self._data.pop(op.key, None)
        return Written(index=index, existed=current is not None)

    def _expire(self, index: int) -> None:
        # Invariant: sessions are in the order they were recorded, so by index.
        horizon = index - self.retain_entries
        sessions = self._sessions
        while sessions:
            first = next(iter(sessions.values()))
            if first.index > horizon:
                break
            sessions.popitem(last=False)

    def snapshot(self) -> Iterator[bytes]:
        """The whole state as msgpack chunks (see the module's *Snapshot format*).

        The state is copied (shallowly: values are immutable) when this is
        called, so the stream stays consistent while later entries apply.
        """
        data = list(self._data.items())
        sessions = list(self._sessions.items())
        header = [
            SNAPSHOT_MAGIC,
            SNAPSHOT_VERSION,
            self._applied_index,
            self._last_ticket,
            len(data),
            len(sessions),
        ]
        return _chunks(header, data, sessions)

    def restore(self, chunks: Iterable[bytes]) -> None:
        """Replace the whole state by a snapshot; on error the state is unchanged.

        Raises:
            SnapshotError: the stream is not a valid snapshot.
        """
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=2**31 - 1)
        objects = _objects(unpacker, chunks)
        try:
            header = next(objects)
            if (
                type(header) is not list
                or len(header) != 6
                or header[0] != SNAPSHOT_MAGIC
                or header[1] != SNAPSHOT_VERSION
                or not all(_is_count(v) for v in header[2:])
            ):
                raise SnapshotError("bad snapshot header")
            _, _, applied, last_ticket, n_keys, n_sessions = header
            data: dict[str, bytes] = {}
            for _ in range(n_keys):
                pair = next(objects)
                if (
                    type(pair) is not list
                    or len(pair) != 2
                    or type(pair[0]) is not str
                    or type(pair[1]) is not bytes
                ):
                    raise SnapshotError("bad key/value record")
                check_key(pair[0])
                data[pair[0]] = pair[1]
            sessions: OrderedDict[str, Session] = OrderedDict()
            for _ in range(n_sessions):
                sessions.update([_session_record(next(objects))])
            end = object()
            if next(objects, end) is not end or _leftover(unpacker):
                raise SnapshotError("trailing data after the last record")
        except StopIteration:
            raise SnapshotError("the snapshot ends early") from None
        except (ValueError, MalformedCommand) as exc:
            if isinstance(exc, SnapshotError):
                raise
            raise SnapshotError(str(exc)) from None
        if len(data) != n_keys or len(sessions) != n_sessions:
            raise SnapshotError("duplicate keys or sessions")
        self._data = data
        self._sessions = sessions
        self._last_ticket = last_ticket
        self._applied_index = applied


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value < 1 << 63


def _session_record(record: Any) -> tuple[str, Session]:
    if type(record) is not list or len(record) != 4:
        raise SnapshotError("bad session record")
    session, index, digest, result = record
    if type(session) is not str or not _is_count(index) or type(digest) is not bytes:
        raise SnapshotError("bad session record")
    check_session(session)
    return session, Session(index, digest, structure_result(result))


def _chunks(
    header: list[Any], data: list[tuple[str, bytes]], sessions: list[tuple[str, Session]]
) -> Iterator[bytes]:
    packer = msgpack.Packer(autoreset=False)
    packer.pack(header)

    def records() -> Iterator[Any]:
        yield from data
        for session, s in sessions:
            yield (session, s.index, s.digest, unstructure_result(s.result))

    for record in records():
        packer.pack(record)
        if len(packer.getbuffer()) >= CHUNK_BYTES:
            yield packer.bytes()
            packer.reset()
    if len(packer.getbuffer()):
        yield packer.bytes()


def _leftover(unpacker: msgpack.Unpacker) -> bool:
    """Whether bytes of an incomplete object remain after the last whole one."""
    try:
        return bool(unpacker.read_bytes(1))
    except ValueError:  # "an object is incomplete"
        return True


def _objects(unpacker: msgpack.Unpacker, chunks: Iterable[bytes]) -> Iterator[Any]:
    try:
        for chunk in chunks:
            unpacker.feed(chunk)
            yield from unpacker
    except (ValueError, msgpack.UnpackException) as exc:
        raise SnapshotError(f"not a msgpack stream: {type(exc).__name__}") from None
