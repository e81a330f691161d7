"""The checks of a whole-node run, made once the faults stop.

In order: liveness (a leader commits a marker write within the calm
window), convergence (every member applies it and all hold one state
digest), final reads of every key (added to the history, so a lost
acknowledged write shows as a stale read), membership (every acknowledged
change in force, every refused one not), no node died of an unexpected
exception, no client saw a result its command cannot have (a reused
idempotency key), and -- after the run -- linearizability of the history
(:func:`traft.check.check_history`), tickets never lost, and
``traft log verify``'s checks (:func:`storage.inspect_data_dir`) on every
data directory.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import trio

import storage
from traft.check import Operation, Outcome, Verdict, check_history
from traft.kv.commands import Command, Put, Written, encode_command
from traft.node.errors import NodeError
from traft.sim.nodes.clients import Clients, getter
from traft.sim.nodes.world import World

FINAL_READER = 1000  # the history's process id of the checker's own reads


@attrs.define
class Failure:
    """A check that failed: its name and what it saw."""

    check: str
    detail: str


async def calm_checks(world: World, clients: Clients, calm_ms: int) -> list[Failure]:
    """Liveness, convergence, final reads and membership, on the calm cluster."""
    started = trio.current_time()
    deadline = started + calm_ms / 1000
    marker = await _marker_write(world, deadline)
    if marker is None:
        return [
            Failure(
                "liveness",
                f"no leader committed a write within {calm_ms} virtual ms of the faults "
                f"stopping (leader: {_leader_id(world)}; running: {world.live()})",
            )
        ]
    world.note(f"calm: marker committed at {marker} after {trio.current_time() - started:.3f} s")
    clients.running = False
    failures: list[Failure] = []
    digests = await _converge(world, marker, deadline)
    if isinstance(digests, Failure):
        failures.append(digests)
    await _final_reads(world, clients)
    failures.extend(_membership(world))
    return failures


def _leader_id(world: World) -> int | None:
    leader = world.leader()
    return leader.id if leader is not None else None


async def _marker_write(world: World, deadline: float) -> int | None:
    command = encode_command(Command(op=Put(key="marker", value=b"m"), session="calm-marker"))
    while trio.current_time() < deadline:
        leader = world.leader()
        if leader is None:
            await trio.sleep(0.05)
            continue
        try:
            result = await leader.submit(command, timeout=max(deadline - trio.current_time(), 0.01))
        except NodeError:
            await trio.sleep(0.05)
            continue
        if isinstance(result, Written):
            return result.index
        return None
    return None


def _voters_and_learners(world: World) -> tuple[set[int], set[int]] | None:
    leader = world.leader()
    if leader is None or leader.raft is None:
        return None
    voters = {n.node_id for n in leader.raft.membership().nodes if n.voting}
    learners = {n.node_id for n in leader.raft.membership().nodes if not n.voting}
    return voters, learners


async def _converge(world: World, marker: int, deadline: float) -> dict[int, str] | Failure:
    seen: dict[int, str] = {}
    while True:
        found = _voters_and_learners(world)
        if found is not None:
            members = sorted(found[0] | found[1])
            stores = world.stores
            if all(i in stores and stores[i].applied_index >= marker for i in members):
                # Every member is past the marker; equal applied indexes must mean equal state.
                last = max(stores[i].applied_index for i in members)
                if all(stores[i].applied_index == last for i in members):
                    seen = {i: stores[i].digest() for i in members}
                    if len(set(seen.values())) == 1:
                        return seen
                    return Failure(
                        "convergence",
                        f"members at applied index {last} hold different states: "
                        + ", ".join(f"node {i} {d[:12]}" for i, d in sorted(seen.items())),
                    )
        if trio.current_time() >= deadline:
            applied = {i: s.applied_index for i, s in sorted(world.stores.items())}
            return Failure(
                "convergence",
                f"members did not all apply the marker write (index {marker}) in time: "
                f"members {found}, applied {applied}",
            )
        await trio.sleep(0.05)


async def _final_reads(world: World, clients: Clients) -> None:
    for i in range(world.options.keys):
        key = f"k{i}"
        for _ in range(20):
            leader = world.leader()
            if leader is None:
                await trio.sleep(0.05)
                continue
            call = clients.tick()
            try:
                raw = await leader.read(getter(key), timeout=2.0)
            except NodeError:
                await trio.sleep(0.05)
                continue
            clients.ops.append(
                Operation(
                    process=FINAL_READER,
                    call=call,
                    ret=clients.tick(),
                    kind="get",
                    key=key,
                    result=raw.decode() if raw is not None else None,
                )
            )
            break


def _membership(world: World) -> list[Failure]:
    found = _voters_and_learners(world)
    if found is None:
        return [Failure("membership", "no leader to ask for the membership")]
    voters, learners = found
    failures: list[Failure] = []
    last: dict[int, tuple[str, str]] = {}
    for kind, node_id, outcome in world.member_ops:
        last[node_id] = (kind, outcome)
    for node_id, (kind, outcome) in sorted(last.items()):
        if outcome == "unknown":
            continue
        if kind == "add" and outcome == "ok" and node_id not in voters:
            failures.append(Failure("membership", f"node {node_id} was added but does not vote"))
        if kind == "add" and outcome == "failed" and node_id in voters:
            failures.append(Failure("membership", f"adding node {node_id} failed, yet it votes"))
        if kind == "readd" and (outcome == "ok" or node_id in voters | learners):
            failures.append(
                Failure("membership", f"removed node {node_id} was added again ({outcome})")
            )
        if kind == "remove" and outcome == "ok" and node_id in voters | learners:
            failures.append(
                Failure("membership", f"node {node_id} was removed but is still a member")
            )
    return failures


def history_failures(clients: Clients, world: World, timeout_s: float = 20.0) -> list[Failure]:
    """Linearizability of the KV history and of the tickets; tickets never lost."""
    failures: list[Failure] = []
    kv = [op for op in clients.ops if op.kind != "ticket"]
    tickets = [op for op in clients.ops if op.kind == "ticket"]
    for name, ops, model in (("kv", kv, "kv"), ("tickets", tickets, "tickets")):
        result = check_history(ops, model, timeout_s=timeout_s)
        if result.verdict is Verdict.NOT_LINEARIZABLE:
            failures.append(Failure("linearizability", f"{name}: {result.explanation}"))
    if clients.acknowledged_tickets:
        final = world.last_ticket
        top = max(clients.acknowledged_tickets)
        if top > final:
            failures.append(
                Failure("lost_write", f"ticket {top} was acknowledged, the state ends at {final}")
            )
    for text in clients.protocol_errors:
        failures.append(Failure("client", text))
    _ = Outcome
    return failures


def verify_data_dirs(root: Path, ids: list[int]) -> list[Failure]:
    """``traft log verify``'s checks on every data directory of the run."""
    failures = []
    for node_id in ids:
        path = root / f"n{node_id}"
        if not path.exists():
            continue
        report = storage.inspect_data_dir(str(path), verify=True)
        for problem in report.problems:
            failures.append(Failure("log_verify", f"node {node_id}: {problem}"))
    return failures
