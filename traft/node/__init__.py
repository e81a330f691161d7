"""traft.node: the trio runtime that runs a Raft core over UDP and a segment log."""

from traft.node.config import ClusterConfig, ConfigError, Member, SnapshotPolicy, Timing
from traft.node.errors import (
    MemberChangeError,
    NodeError,
    NodeStopped,
    NoLeaderError,
    NotLeaderError,
    ProposalLost,
    ProposalTimeout,
)
from traft.node.statemachine import StateMachine

__all__ = [
    "ClusterConfig",
    "ConfigError",
    "Member",
    "MemberChangeError",
    "NoLeaderError",
    "NodeError",
    "NodeStopped",
    "NotLeaderError",
    "ProposalLost",
    "ProposalTimeout",
    "SnapshotPolicy",
    "StateMachine",
    "Timing",
]
