"""traft.node: the trio runtime that runs a Raft core over UDP and a segment log.

``Node`` (:mod:`traft.node.node`) is re-exported lazily (PEP 562): it brings
in trio, the storage and the network, which the client commands, importing
only the configuration from here, do without.
"""

from typing import TYPE_CHECKING

from traft.node.config import ClusterConfig, ConfigError, Member, SnapshotPolicy, Timing
from traft.node.errors import (
    LeadershipTransferring,
    MemberChangeError,
    NodeError,
    NodeStopped,
    NoLeaderError,
    NotLeaderError,
    Overloaded,
    ProposalLost,
    ProposalTimeout,
    TransferFailed,
)
from traft.node.statemachine import StateMachine

if TYPE_CHECKING:
    from traft.node.node import Node
else:

    def __getattr__(name: str) -> object:
        if name == "Node":
            from traft.node.node import Node

            return Node
        raise AttributeError(f"module 'traft.node' has no attribute {name!r}")


__all__ = [
    "ClusterConfig",
    "ConfigError",
    "LeadershipTransferring",
    "Member",
    "MemberChangeError",
    "NoLeaderError",
    "Node",
    "NodeError",
    "NodeStopped",
    "NotLeaderError",
    "Overloaded",
    "ProposalLost",
    "ProposalTimeout",
    "SnapshotPolicy",
    "StateMachine",
    "Timing",
    "TransferFailed",
]
