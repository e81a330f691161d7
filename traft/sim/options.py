"""What shapes a simulator run, and what one run reports.

:class:`SimOptions` holds everything but the seed (``traft sim``'s options
map one to one onto its fields, see :mod:`traft.sim.cli`); :class:`RunResult`
is the outcome of one seed. :mod:`traft.sim.runner` runs them.
"""

from __future__ import annotations

from typing import Any

import attrs

from traft.sim.violations import InvariantViolation

__all__ = ["RunResult", "SimOptions"]


@attrs.frozen(kw_only=True)
class SimOptions:
    """Everything that shapes a run except the seed. Rates are percentages.

    ``drop``, ``dupe`` and ``reorder`` apply to each delivered message;
    ``partition``, ``member``, ``compaction``, ``crash`` and ``client`` are
    chances per iteration (fractions allowed, e.g. 0.2). ``install_ms`` is
    the time each step of a snapshot install takes (None: installs are
    instant); ``install_crash`` the chance that an install crashes between
    two of its steps; ``readd`` the chance that a membership change tries to
    re-add a removed id; ``away`` the chance that a server being removed is
    crashed at once and kept down while its removal commits and the leader
    compacts, so that it comes back to a snapshot; ``stale_compaction`` the
    chance that, when a partition heals while a server holds a stale tail
    past the leader's applied index, the leader compacts first, so that the
    server is caught up by a snapshot its tail contradicts; ``chase`` the
    chance that a leader asked to send a snapshot then keeps snapshotting
    while the follower waits for it (:class:`~traft.sim.catchup.SnapshotStorm`),
    and ``catchup_ms`` the bound of ``replication_resumes``. ``early_send``
    is the chance that a server's driver sends a leader's Ready before its
    fsync (thesis §10.2.1), which then takes ``fsync_ms`` of virtual time
    while the server keeps taking input. ``transfer`` is the chance per
    iteration that the leader is asked to transfer leadership; ``pre_vote``
    turns the cores' pre-vote on (the default) or off; ``calm_ms`` is the
    fault-free tail of every run (at most its second half; 0 for none;
    module docstring). ``swarm`` makes each seed draw its own mix from
    these options (:mod:`traft.sim.swarm`; off here, on by default in
    ``traft sim``); ``replay`` is the chance per
    iteration that old messages, from anywhere in the run so far, are
    delivered again; ``leader_crash`` the chance that a new leader crashes
    before its no-op is known committed; ``force_election`` the chance that
    a leader crashes right after proposing a voting change (and the next
    leader is asked for a change at once); ``max_entries`` the core's
    ``max_entries_per_message``; ``reads`` the clients' share of reads;
    ``auto_promote`` whether caught-up non-voters are promoted by the
    harness; ``install_guard`` whether the driver itself refuses a snapshot
    not newer than its commit index (the node does; without it the core
    must).
    """

    servers: int = 5
    iterations: int = 5000
    duration_ms: int | None = None
    step_ms: int = 5
    drop: float = 5.0
    dupe: float = 5.0
    reorder: float = 10.0
    delay_ms: tuple[int, int] = (1, 15)
    partition: float = 0.5
    member: float = 0.5
    compaction: float = 1.0
    crash: float = 0.2
    install_ms: tuple[int, int] | None = (1, 40)
    install_crash: float = 25.0
    readd: float = 10.0
    away: float = 30.0
    stale_compaction: float = 50.0
    chase: float = 25.0
    catchup_ms: int = 400
    early_send: float = 50.0
    fsync_ms: tuple[int, int] = (1, 20)
    client: float = 20.0
    transfer: float = 0.5
    random_period: bool = True
    election_timeout_ms: int = 150
    heartbeat_ms: int = 50
    liveness_ms: int = 10_000
    check_quorum: bool = True
    pre_vote: bool = True
    calm_ms: int = 2000
    clients: int = 4
    keys: int = 3
    client_timeout_ms: int = 2000
    max_extra_servers: int = 2
    trace: bool = False
    check_history: bool = True
    history_timeout_s: float = 10.0
    swarm: bool = False
    replay: float = 1.0
    leader_crash: float = 10.0
    force_election: float = 10.0
    max_entries: int = 4096
    reads: float = 40.0
    auto_promote: bool = True
    install_guard: bool = True

    def iterations_total(self) -> int:
        if self.duration_ms is not None:
            return max(1, self.duration_ms // self.step_ms)
        return self.iterations


@attrs.define
class RunResult:
    """The outcome of one run: its summary and the first violation, if any."""

    seed: int
    summary: dict[str, Any]
    violation: InvariantViolation | None = None
    iteration: int | None = None
    digest: str | None = None

    @property
    def ok(self) -> bool:
        return self.violation is None
