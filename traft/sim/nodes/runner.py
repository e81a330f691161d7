"""One whole-node simulation run: a pure function of its options and seed.

Theory of operation. :func:`run_one` makes a scratch directory (on tmpfs
when ``/dev/shm`` exists), swaps a :class:`~traft.sim.nodes.disk.SimDisk`
in at the storage seam (``storage._fileio.ops``), and runs the
:class:`~traft.sim.nodes.world.World` in ``trio.run`` under
``trio.testing.MockClock(autojump_threshold=0)``: virtual time that jumps to
the next deadline whenever every task is blocked.

Every source of nondeterminism is seeded from the run's seed: the node
cores' rngs, the fault injector, the disk, the nemesis and the clients
(each its own ``random.Random`` named after its role), and *trio's
scheduler*. Trio runs each batch of runnable tasks in a random order; its
own test suite makes that deterministic through two private names in
``trio._core._run``: ``_ALLOW_DETERMINISTIC_SCHEDULING`` (set, the batch is
sorted by task creation order, then shuffled with ``_r``) and ``_r`` (the
module's ``random.Random``, which Hypothesis's trio plugin registers). The
run sets the flag, seeds ``_r`` and puts both back afterwards
(:func:`deterministic_trio`). ``_r`` also draws the ``MockClock``'s start
offset, so the clock is made after seeding. Nothing runs in threads: nodes
persist on the event loop (``persist_in_thread=False``).

The run's fingerprint is a SHA-256 over the client history and every
member's final state digest: two runs of one seed must give the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from storage import _fileio
from traft.check import write_history
from traft.sim.nodes.checks import Failure, calm_checks, history_failures, verify_data_dirs
from traft.sim.nodes.clients import Clients
from traft.sim.nodes.disk import SimDisk
from traft.sim.nodes.options import NodeSimOptions
from traft.sim.nodes.world import World

__all__ = ["NodeRunResult", "deterministic_trio", "run_one"]


@attrs.define
class NodeRunResult:
    """What one run did and found."""

    seed: int
    failures: list[Failure]
    summary: dict[str, Any]
    fingerprint: str
    history: str
    digests: dict[int, str]
    events: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


@contextlib.contextmanager
def deterministic_trio(seed: int) -> Iterator[None]:
    """Make trio's scheduling order a function of ``seed`` (see the module docstring)."""
    from trio._core import _run

    saved = (_run._ALLOW_DETERMINISTIC_SCHEDULING, _run._r.getstate())
    _run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    _run._r.seed(f"traft-sim-nodes/{seed}/trio")
    try:
        yield
    finally:
        _run._ALLOW_DETERMINISTIC_SCHEDULING = saved[0]  # type: ignore[misc]
        _run._r.setstate(saved[1])


@contextlib.contextmanager
def _seam(disk: SimDisk) -> Iterator[None]:
    saved = _fileio.ops
    _fileio.ops = disk
    try:
        yield
    finally:
        _fileio.ops = saved


@contextlib.contextmanager
def _no_threads() -> Iterator[None]:
    """Make ``trio.to_thread.run_sync`` fail: a thread would escape virtual time
    and the seeded scheduler (nodes must run with ``persist_in_thread=False``)."""

    async def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("trio.to_thread.run_sync called in a simulation")

    saved = trio.to_thread.run_sync
    trio.to_thread.run_sync = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        trio.to_thread.run_sync = saved


def _scratch() -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="traft-sim-nodes-", dir=base)


async def _main(world: World, clients: Clients, failures: list[Failure]) -> None:
    o = world.options
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for node_id in list(world.ids):
            world.start_server(nursery, node_id)
        async with trio.open_nursery() as load:
            for process in range(o.clients):
                load.start_soon(clients.run_client, process)
            nursery.start_soon(world.nemesis, nursery)
            nursery.start_soon(world.observer)
            await trio.sleep(o.duration_ms / 1000)
            world.chaos = False
            world.faults.reset()
            world.note("faults stop")
            failures.extend(await calm_checks(world, clients, o.calm_ms))
            clients.running = False
        world.digests = {i: s.digest() for i, s in sorted(world.stores.items())}
        world.last_ticket = max((s.last_ticket for s in world.stores.values()), default=0)
        failures.extend(Failure("node_exception", text) for text in world.unexpected)
        failures.extend(Failure("election_safety", text) for text in world.split_brain)
        failures.extend(Failure("vote_safety", text) for text in world.faults.double_votes)
        failures.extend(Failure("applied_index", text) for text in world.applied_behind)
        failures.extend(
            Failure("recovery", f"node {i} could not recover its data directory: {text}")
            for i, text in sorted(world.damaged.items())
        )
        world.stopping = True
        for node_id in sorted(world.nodes):
            await world.nodes[node_id].stop()
        nursery.cancel_scope.cancel()
    world.virtual_s = trio.current_time() - started


def run_one(options: NodeSimOptions, seed: int, *, keep_dir: bool = False) -> NodeRunResult:
    """Run one seed; return its checks' failures, summary and fingerprint."""
    scratch = _scratch()
    root = Path(scratch)
    clock = None
    wall = time.perf_counter()
    cpu = time.process_time()
    failures: list[Failure] = []
    for name in ("traft", "storage", "net"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        with deterministic_trio(seed):
            clock = trio.testing.MockClock(autojump_threshold=0)
            disk = SimDisk(World.static_rng(seed, "disk"), jump=clock.jump)
            world = World(options, seed, root, disk)
            clients = Clients(world)
            with _seam(disk), _no_threads():
                trio.run(_main, world, clients, failures, clock=clock)
        virtual = world.virtual_s
        sim_cpu = time.process_time() - cpu
        failures.extend(verify_data_dirs(root, world.ids))
        if options.check_history:
            failures.extend(history_failures(clients, world))
    finally:
        if not keep_dir:
            shutil.rmtree(scratch, ignore_errors=True)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    out = io.StringIO()
    write_history(clients.ops, out)
    history = out.getvalue()
    digests = world.digests
    h = hashlib.sha256(history.encode())
    for node_id, digest in sorted(digests.items()):
        h.update(f"{node_id}:{digest}\n".encode())
    summary: dict[str, Any] = {
        "seed": seed,
        "servers": options.servers,
        "virtual_s": round(virtual, 3),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "sim_cpu_s": round(sim_cpu, 3),
        "speed": round(virtual / sim_cpu, 1) if sim_cpu else 0.0,
        "operations": len(clients.ops),
        "votes_seen": len(world.faults.votes),
        **{f"ops_{k}": v for k, v in sorted(clients.counts.items())},
        **world.counts,
        **{f"disk_{k}": v for k, v in sorted(disk.stats.items())},
        "rates": {
            k: (v if k == "delay_ms" else round(v * 100, 3)) for k, v in sorted(world.rates.items())
        },
        "failures": len(failures),
    }
    return NodeRunResult(
        seed=seed,
        failures=failures,
        summary=summary,
        fingerprint=h.hexdigest(),
        history=history,
        digests=digests,
        events=world.events,
    )
