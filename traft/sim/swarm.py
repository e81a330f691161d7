"""Swarm testing: each seed draws its own mix of faults, sizes and driver modes.

Theory of operation. A fixed mix of faults explores one corner of the
space over and over: with every fault at a moderate rate, the rare
conditions a classic bug needs (a follower far behind a leader that sends
one entry at a time, a cluster where only reads arrive, clocks that never
drift, a leader that keeps leading while cut off) almost never line up.
Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012) instead gives
each run its own configuration, drawn from its seed: some faults off, some
several times their usual rate, so that across seeds every combination
appears, each in its pure form.

:func:`draw` turns the options of a run and a seed's rng into the options
that run uses (``swarm`` off, so a drawn mix is never drawn again) and a
summary of what was drawn. With ``--no-swarm`` the options are used as
given. What is drawn, per seed:

* the number of initial voters, from ``servers - 2`` to ``servers + 2``
  (at least 1), so even-sized voter sets appear;
* each fault rate, times one of :data:`SCALES` (0 turns it off); with
  more messages lost, ``catchup_ms`` grows in proportion;
* the share of servers whose driver sends a leader's Ready before its
  fsync: 0, ``early_send`` or 100 %;
* the core's ``max_entries_per_message``: 1, 2, 3 or the given one, so a
  new leader's acknowledgements sometimes advance one entry at a time;
* clocks without the random period (every timer in step), check-quorum
  off, pre-vote off, automatic promotion of caught-up non-voters off,
  the driver's own refusal of a snapshot older than its commit index off
  (the core must refuse it), each with :data:`OFF_CHANCE`;
* the clients' share of reads: as given, or only reads (so a leader must
  commit an entry of its own term without any client write).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from traft.sim.runner import SimOptions

__all__ = ["OFF_CHANCE", "RATES", "SCALES", "draw"]

# The fault rates a seed scales (fields of SimOptions).
RATES = (
    "drop",
    "dupe",
    "reorder",
    "partition",
    "member",
    "compaction",
    "crash",
    "install_crash",
    "transfer",
    "replay",
    "leader_crash",
    "force_election",
)

# What a seed multiplies each fault rate by: off, rarer, as given, more often.
SCALES = (0.0, 0.5, 1.0, 1.0, 2.0, 4.0)

# The chance that a seed turns off each of the on/off features.
OFF_CHANCE = 0.25


def draw(options: SimOptions, rng: random.Random) -> tuple[SimOptions, dict[str, Any]]:
    """The options one seed runs with, and what was drawn (for its summary)."""
    o = options
    changes: dict[str, Any] = {"swarm": False}
    changes["servers"] = rng.randint(max(1, o.servers - 2), o.servers + 2)
    for name in RATES:
        rate = getattr(o, name)
        changes[name] = min(100.0, rate * SCALES[rng.randrange(len(SCALES))])
    if o.drop and changes["drop"] > o.drop:
        # replication_resumes bounds a wait on round trips: with more of them
        # lost, the bound grows by as much as the loss rate.
        changes["catchup_ms"] = round(o.catchup_ms * changes["drop"] / o.drop)
    if o.early_send:
        changes["early_send"] = rng.choice((0.0, o.early_send, 100.0))
    changes["max_entries"] = rng.choice((1, 2, 3, o.max_entries))
    for name in ("random_period", "check_quorum", "pre_vote", "auto_promote", "install_guard"):
        if getattr(o, name) and rng.random() < OFF_CHANCE:
            changes[name] = False
    if rng.random() < 0.1:
        changes["reads"] = 100.0
    drawn = attrs.evolve(o, **changes)
    summary = {k: v for k, v in changes.items() if k != "swarm" and getattr(o, k) != v}
    return drawn, summary
