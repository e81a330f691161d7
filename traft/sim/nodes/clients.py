"""Simulated clients of the KV service: the node API, idempotency keys, a history.

Each client is a trio task that, until told to stop, picks an operation
(put, compare-and-set, delete, get, ticket), sends it to the node it
believes is the leader through the same calls the HTTP API makes
(``Node.submit`` of an encoded :class:`~traft.kv.commands.Command` with a
session, ``Node.read`` of a query on the :class:`~traft.kv.state.KVStore`),
and records what it was told in a :mod:`traft.check` history.

A write carries an idempotency key and is retried with the same key on
every answer that leaves its fate open (lost to a new leader, timed out,
the node stopped, no leader): the store applies it at most once and a
retry returns the first result. It is ``ok`` once a node answers it,
``fail`` when no node ever accepted it (every try refused before
proposing), and ``unknown`` when the client gave up. Times in the history
are a counter of calls and returns, so real-time order is exact.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import trio

from traft.check import Operation, Outcome
from traft.kv.commands import (
    Command,
    Conflict,
    Delete,
    Issued,
    KeyReused,
    NextTicket,
    Put,
    Written,
    encode_command,
)
from traft.kv.state import KVStore
from traft.node.errors import (
    NodeError,
    NodeStopped,
    NotLeaderError,
    ProposalLost,
    ProposalTimeout,
)
from traft.sim.nodes.world import World

# Errors raised before the command was handed to the core: it was not proposed.
_REFUSED = (NotLeaderError,)


class Clients:
    """The client processes of one run and their shared history."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.ops: list[Operation] = []
        self.clock = 0
        self.running = True
        self.acknowledged_tickets: list[int] = []
        self.protocol_errors: list[str] = []
        self.counts = {"ok": 0, "fail": 0, "unknown": 0}

    def tick(self) -> int:
        """The next history time (calls and returns are totally ordered)."""
        self.clock += 1
        return self.clock

    def _target(self, rng: random.Random, hint: int | None) -> Any:
        nodes = self.world.nodes
        if hint is not None and hint in nodes:
            return nodes[hint]
        leader = self.world.leader()
        if leader is not None and rng.random() < 0.9:
            return leader
        live = self.world.live()
        return nodes[rng.choice(live)] if live else None

    async def run_client(self, process: int) -> None:
        """Client ``process``: operations back to back until :attr:`running` is False."""
        rng = self.world.rng_for(f"client/{process}")
        keys = [f"k{i}" for i in range(self.world.options.keys)]
        n = 0
        while self.running:
            lo, hi = self.world.options.think_ms
            await trio.sleep(rng.uniform(lo, hi) / 1000)
            n += 1
            key = rng.choice(keys)
            draw = rng.random()
            if draw < 0.4:
                await self.read(process, rng, key)
            elif draw < 0.7:
                value = f"{process}.{n}"
                await self.write(process, rng, f"c{process}-{n}", "put", key, value, None)
            elif draw < 0.85:
                prev = self._last_value(key) if rng.random() < 0.7 else None
                value = f"{process}.{n}"
                await self.write(process, rng, f"c{process}-{n}", "cas", key, value, prev)
            elif draw < 0.93:
                await self.write(process, rng, f"c{process}-{n}", "delete", key, None, None)
            else:
                await self.write(process, rng, f"c{process}-{n}", "ticket", None, None, None)

    def _last_value(self, key: str) -> str | None:
        for op in reversed(self.ops):
            if op.key == key and op.outcome is Outcome.OK and op.kind in ("put", "cas", "get"):
                value = op.result if op.kind == "get" else op.arg
                return value if isinstance(value, str) else None
        return None

    async def read(self, process: int, rng: random.Random, key: str) -> None:
        """A linearizable get through ``Node.read`` (failures leave no trace on the state)."""
        call = self.tick()
        node = self._target(rng, None)
        result: Any = None
        outcome = Outcome.FAIL
        if node is not None:
            try:
                raw = await node.read(getter(key), timeout=2.0)
                result = raw.decode() if raw is not None else None
                outcome = Outcome.OK
            except NodeError:
                pass
        self._record(process, call, "get", key, None, None, result, outcome)

    async def write(
        self,
        process: int,
        rng: random.Random,
        session: str,
        kind: str,
        key: str | None,
        value: str | None,
        prev: str | None,
    ) -> None:
        """A write with idempotency key ``session``, retried until answered or given up."""
        if kind == "cas" and prev is None:
            kind = "put"  # a Put without prev is unconditional
        if kind == "ticket":
            op: Any = NextTicket()
        elif kind == "delete":
            assert key is not None
            op = Delete(key=key)
        else:
            assert key is not None and value is not None
            op = Put(
                key=key,
                value=value.encode(),
                prev=(prev.encode() if prev is not None else None) if kind == "cas" else None,
            )
        command = encode_command(Command(op=op, session=session))
        call = self.tick()
        proposed = False
        hint: int | None = None
        deadline = trio.current_time() + 6.0
        while self.running and trio.current_time() < deadline:
            node = self._target(rng, hint)
            hint = None
            if node is None:
                await trio.sleep(0.05)
                continue
            try:
                result = await node.submit(command, timeout=2.0)
            except NotLeaderError as exc:
                if node.raft is not None and node.raft.leader_id not in (None, node.id):
                    hint = node.raft.leader_id
                await trio.sleep(0.02 if hint is not None else 0.1)
                _ = exc
                continue
            except (ProposalLost, ProposalTimeout, NodeStopped):
                proposed = True
                await trio.sleep(0.05)
                continue
            except NodeError:
                proposed = True
                await trio.sleep(0.05)
                continue
            self._answered(process, call, kind, key, value, prev, result)
            return
        outcome = Outcome.UNKNOWN if proposed else Outcome.FAIL
        self._record(process, call, kind, key, value, prev, None, outcome)

    def _answered(
        self,
        process: int,
        call: int,
        kind: str,
        key: str | None,
        value: str | None,
        prev: str | None,
        result: Any,
    ) -> None:
        if isinstance(result, KeyReused):
            self.protocol_errors.append(f"idempotency key of p{process} reused at {result.index}")
            self._record(process, call, kind, key, value, prev, None, Outcome.UNKNOWN)
            return
        if kind == "ticket":
            if not isinstance(result, Issued):
                self.protocol_errors.append(f"a ticket answered {result!r}")
                return
            self.acknowledged_tickets.append(result.ticket)
            self._record(process, call, "ticket", None, None, None, result.ticket, Outcome.OK)
        elif kind == "cas":
            ok = isinstance(result, Written)
            if not ok and not isinstance(result, Conflict):
                self.protocol_errors.append(f"a cas answered {result!r}")
            self._record(process, call, "cas", key, value, prev, ok, Outcome.OK)
        else:
            if not isinstance(result, Written):
                self.protocol_errors.append(f"a {kind} answered {result!r}")
            self._record(process, call, kind, key, value, None, None, Outcome.OK)

    def _record(
        self,
        process: int,
        call: int,
        kind: str,
        key: str | None,
        arg: str | None,
        prev: str | None,
        result: Any,
        outcome: Outcome,
    ) -> None:
        self.counts[outcome.value] = self.counts.get(outcome.value, 0) + 1
        self.ops.append(
            Operation(
                process=process,
                call=call,
                ret=self.tick(),
                kind=kind,
                key=key,
                arg=arg,
                prev=prev,
                result=result,
                outcome=outcome,
            )
        )


def getter(key: str) -> Callable[[KVStore], bytes | None]:
    def get(store: KVStore) -> bytes | None:
        return store.get(key)

    return get
