"""Simulated clients: writes, reads and compare-and-set, recorded as a history.

Theory of operation. A fixed set of client processes each runs at most one
operation at a time, Jepsen style, against a small set of keys of the
:class:`~traft.sim.kv.KVStore`. An operation goes to the server the client
believes leads; a refusal (``NotLeader``, ``LeaderNotReady``) redirects the
client and is not recorded, because nothing was attempted.

* ``put`` and ``cas`` are proposed with :meth:`Raft.recv_entry` under an id
  from a counter (so ``entry_id_monotonicity`` applies). The operation
  completes when the proposing server applies its index: the same entry id
  means it took effect (``ok``, a cas with the store's verdict); another
  entry there means it never will (``fail``: entries never move to another
  index, and a leader proposes an entry once). If the server crashes, skips
  the index by loading a snapshot, or the client times out, the outcome is
  ``unknown``.
* ``get`` uses ReadIndex (:meth:`Raft.read_index`, thesis §6.4): after the
  :class:`~traft.core.ReadReady` event the read is served from the server's
  store once it has applied the read's index; a
  :class:`~traft.core.ReadLost` fails it. Half the reads go to a random live
  server instead of the believed leader: on a follower the core forwards the
  read to its leader for the read index, and the read is served from the
  follower's own store (``follower_reads`` counts them).

Call and return times are the simulator's virtual milliseconds, made
distinct within one millisecond by a small increment so the history keeps
the exact order of events. :meth:`Workload.check` runs ``traft.check`` on
the history with the ``kv`` model.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from traft.check import CheckResult, History, Operation, check_history
from traft.core import (
    Entry,
    EntryResponse,
    EntryStatus,
    LeaderNotReady,
    NotLeader,
    ReadLost,
    ReadReady,
    Role,
    SnapshotMeta,
)
from traft.sim.cluster import Cluster, SimServer
from traft.sim.invariants import InvariantViolation
from traft.sim.kv import encode_cas, encode_put

__all__ = ["Workload"]


@attrs.define(slots=True)
class _Write:
    client: int
    handle: int
    kind: str
    entry_id: int
    server: int
    index: int
    started_ms: int


@attrs.define(slots=True)
class _Read:
    client: int
    handle: int
    key: str
    server: int
    started_ms: int
    index: int | None = None
    # The newest index known committed anywhere when the read began.
    floor: int = 0


class Workload:
    """Client processes issuing operations against a simulated cluster.

    Args:
        cluster: the cluster to talk to (hooks are registered on it).
        rng: the workload's own random source.
        clients: how many client processes.
        keys: how many distinct keys.
        timeout_ms: a client gives up (outcome unknown) after this long.
        next_id: where entry ids start; the counter is shared with anyone
            else proposing through :meth:`take_id`.
        after_step: called with a server after the workload made it act.
        reads: the share of operations that are reads (0 to 1).
        committed: the newest index known committed anywhere; every ReadIndex
            answer must be at or past its value when the read began
            (``read_index``), or a read could miss a write that completed
            before it.
    """

    def __init__(
        self,
        cluster: Cluster,
        rng: random.Random,
        *,
        clients: int = 4,
        keys: int = 3,
        timeout_ms: int = 2000,
        after_step: Callable[[SimServer], None] | None = None,
        reads: float = 0.4,
        committed: Callable[[], int] | None = None,
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        # The share of reads; of the writes, 7 in 12 are puts, the rest cas.
        self._read_share = reads
        self._committed = committed
        self._puts = reads + (1 - reads) * 7 / 12
        self.keys = [chr(ord("a") + k) for k in range(keys)]
        self.timeout_ms = timeout_ms
        self.history = History(clock=self._clock)
        self._after_step = after_step
        self._now_ms = 0
        self._tick = 0
        self._last_ms = -1
        self._next_id = 1
        self._busy: dict[int, _Write | _Read] = {}
        self._clients = list(range(1, clients + 1))
        self._leader_guess: dict[int, int | None] = dict.fromkeys(self._clients)
        self._writes: dict[tuple[int, int], _Write] = {}
        # Every proposal whose index is not yet known committed: entry id ->
        # (server, response), for auditing Raft.entry_status.
        self._proposals: dict[int, tuple[int, EntryResponse]] = {}
        self._reported_lost: set[int] = set()
        self._reads: dict[int, _Read] = {}
        # Reads confirmed by ReadReady and waiting for their server to apply.
        self._confirmed: dict[int, dict[int, _Read]] = {}
        self._seen: dict[str, list[str]] = {k: [] for k in self.keys}
        self._values = 0
        self._next_ctx = 1
        self.counts = {"ok": 0, "fail": 0, "unknown": 0, "refused": 0, "follower_reads": 0}
        cluster.on_apply.append(self._on_apply)
        cluster.on_event.append(self._on_event)
        cluster.on_crash.append(self._on_crash)
        cluster.on_snapshot.append(self._on_snapshot)

    # -- time and ids -------------------------------------------------------------

    def _clock(self) -> float:
        if self._now_ms != self._last_ms:
            self._last_ms = self._now_ms
            self._tick = 0
        self._tick += 1
        return self._now_ms + self._tick * 1e-6

    def take_id(self) -> int:
        """A fresh entry id, above every id handed out before."""
        entry_id = self._next_id
        self._next_id += 1
        return entry_id

    # -- issuing --------------------------------------------------------------------

    def start_one(self, now_ms: int) -> None:
        """Let one idle client (if any) start an operation."""
        self._now_ms = now_ms
        idle = [c for c in self._clients if c not in self._busy]
        if not idle:
            return
        rng = self.rng
        client = idle[rng.randrange(len(idle))]
        server = self._target(client)
        if server is None:
            return
        key = self.keys[rng.randrange(len(self.keys))]
        roll = rng.random()
        if roll < self._read_share:
            if rng.random() < 0.5:
                # A read from wherever the client happens to be (thesis §6.4).
                live = [s for _, s in sorted(self.cluster.servers.items()) if s.alive]
                server = live[rng.randrange(len(live))]
            self._get(client, server, key)
        elif roll < self._puts:
            self._values += 1
            self._write(client, server, "put", key, None, f"{client}.{self._values}")
        else:
            seen = self._seen[key]
            prev = seen[rng.randrange(len(seen))] if seen and rng.random() < 0.9 else None
            self._values += 1
            self._write(client, server, "cas", key, prev, f"{client}.{self._values}")

    def _target(self, client: int) -> SimServer | None:
        servers = self.cluster.servers
        guess = self._leader_guess[client]
        server = servers.get(guess) if guess is not None else None
        if server is None or not server.alive:
            live = [s for _, s in sorted(servers.items()) if s.alive]
            if not live:
                return None
            server = live[self.rng.randrange(len(live))]
        return server

    def _refused(self, client: int, exc: NotLeader | LeaderNotReady) -> None:
        self.counts["refused"] += 1
        if isinstance(exc, NotLeader):
            self._leader_guess[client] = exc.leader_id

    def _write(
        self, client: int, server: SimServer, kind: str, key: str, prev: str | None, value: str
    ) -> None:
        data = encode_put(key, value) if kind == "put" else encode_cas(key, prev, value)
        entry_id = self.take_id()
        try:
            resp = server.raft.recv_entry(data, id=entry_id)
        except NotLeader as exc:
            self._refused(client, exc)
            return
        self._leader_guess[client] = server.id
        self._proposals[entry_id] = (server.id, resp)
        handle = self.history.invoke(client, kind, key=key, arg=value, prev=prev)
        write = _Write(client, handle, kind, entry_id, server.id, resp.index, self._now_ms)
        self._busy[client] = write
        self._writes[(server.id, resp.index)] = write
        self._seen[key].append(value)
        self._step(server)

    def _get(self, client: int, server: SimServer, key: str) -> None:
        ctx = self._next_ctx
        self._next_ctx += 1
        floor = 0 if self._committed is None else self._committed()
        try:
            server.raft.read_index(ctx)
        except (NotLeader, LeaderNotReady) as exc:
            self._refused(client, exc)
            return
        if server.raft.role is not Role.LEADER:
            self.counts["follower_reads"] += 1
        else:
            self._leader_guess[client] = server.id
        handle = self.history.invoke(client, "get", key=key)
        read = _Read(client, handle, key, server.id, self._now_ms, floor=floor)
        self._busy[client] = read
        self._reads[ctx] = read
        self._step(server)

    def _step(self, server: SimServer) -> None:
        self.cluster.process(server.id)
        if self._after_step is not None:
            self._after_step(server)

    # -- completions ------------------------------------------------------------------

    def _finish(self, op: _Write | _Read, outcome: str, result: bool | str | None = None) -> None:
        if self._busy.get(op.client) is op:
            del self._busy[op.client]
        if outcome == "ok":
            self.history.ok(op.handle, result)
        elif outcome == "fail":
            self.history.fail(op.handle)
        else:
            self.history.info(op.handle)
        self.counts[outcome] += 1

    def _on_apply(self, server: SimServer, entry: Entry, result: bool | None) -> None:
        writes = self._writes
        if writes:
            write = writes.pop((server.id, entry.index), None)
            if write is not None:
                if entry.id == write.entry_id:
                    self._finish(write, "ok", result if write.kind == "cas" else None)
                else:
                    self._finish(write, "fail")
        if server.id in self._confirmed:
            self._serve_reads(server)

    def _serve_reads(self, server: SimServer) -> None:
        waiting = self._confirmed.get(server.id)
        if not waiting:
            return
        applied = server.applied_index
        done = [ctx for ctx, r in waiting.items() if r.index is not None and r.index <= applied]
        for ctx in done:
            read = waiting.pop(ctx)
            del self._reads[ctx]
            self._finish(read, "ok", server.kv.get(read.key))
        if not waiting:
            del self._confirmed[server.id]

    def _forget_read(self, ctx: int) -> _Read | None:
        read = self._reads.pop(ctx, None)
        if read is not None:
            waiting = self._confirmed.get(read.server)
            if waiting is not None:
                waiting.pop(ctx, None)
                if not waiting:
                    del self._confirmed[read.server]
        return read

    def _on_event(self, server: SimServer, event: object) -> None:
        if isinstance(event, ReadReady):
            ctx = event.ctx
            read = self._reads.get(ctx) if isinstance(ctx, int) else None
            if read is not None and read.server == server.id:
                if event.index < read.floor:
                    raise InvariantViolation(
                        "read_index",
                        f"server {server.id} answered a read at index {event.index}; "
                        f"{read.floor} had committed before the read began",
                    )
                read.index = event.index
                self._confirmed.setdefault(server.id, {})[ctx] = read  # type: ignore[index]
                self._serve_reads(server)
        elif isinstance(event, ReadLost):
            ctx = event.ctx
            read = self._forget_read(ctx) if isinstance(ctx, int) else None
            if read is not None:
                self._finish(read, "fail")

    def _on_crash(self, server: SimServer) -> None:
        for key in [k for k in self._writes if k[0] == server.id]:
            self._finish(self._writes.pop(key), "unknown")
        for ctx in [c for c, r in self._reads.items() if r.server == server.id]:
            read = self._forget_read(ctx)
            assert read is not None
            self._finish(read, "unknown")

    def _on_snapshot(self, server: SimServer, meta: SnapshotMeta, loaded: bool) -> None:
        if not loaded:
            return
        for key in [k for k in self._writes if k[0] == server.id and k[1] <= meta.index]:
            self._finish(self._writes.pop(key), "unknown")
        self._serve_reads(server)

    def expire(self, now_ms: int) -> None:
        """Clients waiting longer than the timeout give up (outcome unknown)."""
        self._now_ms = now_ms
        limit = now_ms - self.timeout_ms
        for op in list(self._busy.values()):
            if op.started_ms <= limit:
                if isinstance(op, _Write):
                    self._writes.pop((op.server, op.index), None)
                else:
                    for ctx in [c for c, r in self._reads.items() if r is op]:
                        self._forget_read(ctx)
                self._finish(op, "unknown")

    def audit(self, committed_id: Callable[[int], int | None]) -> None:
        """Check what :meth:`Raft.entry_status` says about every open proposal.

        COMMITTED must name the entry committed at that index; an entry the
        proposer once called LOST must never commit (a client would retry it
        and apply it twice). A LOST for a compacted index is documented as
        ambiguous and is not held against the core.

        Raises:
            InvariantViolation: ``entry_status`` gave a wrong answer.
        """
        servers = self.cluster.servers
        for entry_id, (node_id, resp) in list(self._proposals.items()):
            server = servers[node_id]
            if server.alive:
                raft = server.raft
                status = raft.entry_status(resp)
                if status is EntryStatus.COMMITTED:
                    if committed_id(resp.index) != entry_id:
                        raise InvariantViolation(
                            "entry_status",
                            f"server {node_id} calls entry {entry_id} at {resp.index} committed; "
                            f"the entry committed there is {committed_id(resp.index)}",
                        )
                elif status is EntryStatus.LOST and resp.index > raft.log.base_index:
                    self._reported_lost.add(entry_id)
            known = committed_id(resp.index)
            if known is not None:
                if known == entry_id and entry_id in self._reported_lost:
                    raise InvariantViolation(
                        "entry_status",
                        f"server {node_id} called entry {entry_id} (index {resp.index}, term "
                        f"{resp.term}) lost, but it committed",
                    )
                del self._proposals[entry_id]
                self._reported_lost.discard(entry_id)

    # -- results ------------------------------------------------------------------------

    def operations(self) -> list[Operation]:
        """The recorded history (operations still in flight are unknown)."""
        return self.history.operations()

    def check(self, timeout_s: float = 10.0) -> CheckResult:
        """Check the history for linearizability with the ``kv`` model."""
        return check_history(self.history.operations(), "kv", timeout_s=timeout_s)
