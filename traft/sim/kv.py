"""A tiny key-value state machine for the simulator's clients.

Theory of operation: client writes travel through the Raft log as NORMAL
entries whose data is a command encoded by :func:`encode_put` or
:func:`encode_cas` (fields separated by the ASCII unit separator, values are
text). Every server applies committed entries to its own :class:`KVStore`
in index order; entries whose data is not a command (the lead's tests
propose arbitrary bytes) change nothing here but still feed the hash chain
that the cluster keeps for state-machine safety. Reads do not go through the
log: they use ReadIndex (thesis §6.4) and read the store of the server that
confirmed them.

A snapshot carries a copy of the store (:meth:`KVStore.copy`), so a server
that loads one answers reads as if it had applied every entry.
"""

from __future__ import annotations

_SEP = b"\x1f"
_PUT = b"p"
_CAS = b"c"
_NONE = b"\x00"


def encode_put(key: str, value: str) -> bytes:
    """The log entry data of ``put(key, value)``."""
    return _SEP.join((_PUT, key.encode(), value.encode()))


def encode_cas(key: str, prev: str | None, value: str) -> bytes:
    """The log entry data of ``cas(key, prev -> value)``; ``prev=None``: key absent."""
    expected = _NONE if prev is None else prev.encode()
    return _SEP.join((_CAS, key.encode(), expected, value.encode()))


class KVStore:
    """A dictionary of text keys to text values, changed only by applying commands."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, str] | None = None) -> None:
        self.data: dict[str, str] = {} if data is None else data

    def apply(self, data: bytes) -> bool | None:
        """Apply one entry's data; returns a cas's outcome, True for a put, None otherwise."""
        parts = data.split(_SEP)
        kind = parts[0]
        if kind == _PUT and len(parts) == 3:
            self.data[parts[1].decode()] = parts[2].decode()
            return True
        if kind == _CAS and len(parts) == 4:
            key = parts[1].decode()
            expected = None if parts[2] == _NONE else parts[2].decode()
            if self.data.get(key) == expected:
                self.data[key] = parts[3].decode()
                return True
            return False
        return None

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def copy(self) -> KVStore:
        return KVStore(dict(self.data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KVStore) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"KVStore({dict(sorted(self.data.items()))!r})"
