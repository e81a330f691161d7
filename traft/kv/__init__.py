"""traft.kv: the replicated key-value and ticket service that ``traft serve`` runs.

- :mod:`traft.kv.commands`: commands and results, and their log encoding;
- :mod:`traft.kv.state`: :class:`KVStore`, the state machine (keys, tickets,
  client sessions, snapshots);
- :mod:`traft.kv.http`: the HTTP/1.1 client API as an app, ``handle(Request) -> Response``;
- :mod:`traft.kv.server`: the HTTP/1.1 server ``traft serve`` runs it on (trio + httptools);
- :mod:`traft.kv.client`: a small synchronous client that follows redirects and retries;
- :mod:`traft.kv.serve`: ``traft serve``, one node with the KV service and its HTTP API;
- :mod:`traft.kv.localcluster`: local clusters of ``traft serve`` processes (scripts, tests).
"""

from traft.kv.commands import (
    Command,
    Conflict,
    Delete,
    Issued,
    KeyReused,
    MalformedCommand,
    NextTicket,
    Put,
    Rejected,
    Result,
    Written,
    decode_command,
    encode_command,
)
from traft.kv.state import KVStore, SnapshotError

__all__ = [
    "Command",
    "Conflict",
    "Delete",
    "Issued",
    "KVStore",
    "KeyReused",
    "MalformedCommand",
    "NextTicket",
    "Put",
    "Rejected",
    "Result",
    "SnapshotError",
    "Written",
    "decode_command",
    "encode_command",
]
