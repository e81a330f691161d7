"""The names of the simulator's invariants and the exception that reports one.

Every check (:mod:`traft.sim.invariants` and the modules it is built from,
:mod:`traft.sim.catchup`, the clients' ``entry_status``, the run loop's
``liveness`` and ``no_id_reuse``, ``traft.check`` for ``linearizability``)
raises :class:`InvariantViolation` with one of :data:`INVARIANTS`.
"""

from __future__ import annotations

__all__ = ["INVARIANTS", "InvariantViolation"]

INVARIANTS = (
    "election_safety",
    "log_matching",
    "state_machine_safety",
    "current_index_validity",
    "commit_monotonic",
    "commit_rule",
    "commit_vouched",
    "membership_rule",
    "match_monotonic",
    "configuration_accuracy",
    "entry_id_monotonicity",
    "no_committed_popped",
    "log_accuracy",
    "leader_completeness",
    "durability",
    "terms_monotonic",
    "vote_once",
    "vote_safety",
    "snapshot_membership",
    "removal_notice",
    "no_id_reuse",
    "entry_status",
    "read_index",
    "liveness",
    "replication_resumes",
    "transfer_leaderless",
    "linearizability",
)


class InvariantViolation(Exception):
    """An invariant does not hold; ``name`` is one of :data:`INVARIANTS`."""

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        self.detail = detail
        super().__init__(f"{name}: {detail}")
