"""The options of one whole-node simulation run (``traft sim --nodes``).

Rates are percentages. The fault rates are *maxima*: each seed draws its
own mix (swarm testing), keeping every rate at 0, half or all of its value,
so that one seed hammers crashes on a quiet network and the next partitions
a cluster that never crashes.
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class NodeSimOptions:
    """Everything a run depends on besides its seed."""

    servers: int = 3
    # Virtual milliseconds of faults and clients, then of calm (no faults).
    duration_ms: int = 20_000
    calm_ms: int = 10_000
    tick_ms: int = 50
    election_timeout_ms: int = 500
    heartbeat_ms: int = 100
    # A chaos step is this many virtual ms; the per-step rates below apply to it.
    step_ms: int = 100
    # Per delivered datagram (percent).
    drop: float = 2.0
    dupe: float = 2.0
    reorder: float = 2.0
    delay_ms: tuple[int, int] = (0, 10)
    # Per chaos step (percent).
    crash: float = 3.0
    partition: float = 2.0
    member: float = 2.0
    # Per disk call (percent) while the disk faults are on.
    enospc: float = 0.2
    eio: float = 0.2
    slow_fsync: float = 1.0
    # Storage sizes small enough that snapshots and segment rolls happen often.
    snapshot_entries: int = 40
    segment_bytes: int = 8192
    # After a failed fsync (EIO), restart the node's process on the same page
    # cache (the harder case: storage must have cut off what no disk holds,
    # docs/storage-format.md) instead of rebooting the machine (False).
    fsyncgate: bool = True
    clients: int = 3
    keys: int = 3
    # Each client waits this long (uniform, virtual ms) before its next operation.
    think_ms: tuple[int, int] = (0, 100)
    check_history: bool = True
    # Swarm testing: each seed scales each rate (and the longest delay) by 0, 0.5 or 1.
    swarm: bool = True
