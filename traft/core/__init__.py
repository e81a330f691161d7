"""traft.core: the pure, deterministic Raft consensus core.

No I/O, no clocks, no trio, no sockets, no global random: a :class:`Raft`
takes time through ``periodic``, messages through ``recv`` and proposals
through ``recv_entry``, and hands back a :class:`Ready` describing what the
driver must persist, send and apply.

Where each rule lives (the shape of etcd-raft: one object per role, created
when the server takes the role and dropped when it leaves it):

=====================  ==========================================================
``raft.py``            :class:`Raft`: the public API, the term rules every message
                       goes through, role changes, handing messages to the role
``server.py``          ``ServerState``: what every role shares (term, vote, log,
                       configuration, commit index, durability bookkeeping, output)
``leader.py``          the leader role: proposals, replication, heartbeats,
                       check-quorum, and the **commit rule** (only entries of the
                       current term commit by counting; the leader counts its own
                       copy only once ``advance()`` reported it durable)
``progress.py``        per-follower replication and **flow control**: probe /
                       replicate / snapshot, in-flight limit, back-off, stalls
``quorum.py``          commit index math
``election.py``        the **vote rule** (one vote per term, for a log at least as
                       up-to-date), pre-vote and leader stickiness; the candidate
``follower.py``        the follower role: the AppendEntries receiver rules
``ready.py``           :class:`Ready` and the **persist-before-send** contract
``reads.py``           ReadIndex, forwarded reads and leases
``transfer.py``        leadership transfer
``snapshots.py``       taking and installing snapshots
``membership.py``      configurations and their undo on truncation
``log.py``, ``entry.py``, ``messages.py``, ``config.py``, ``errors.py``: the data
=====================  ==========================================================
"""

from traft.core.config import Config
from traft.core.entry import (
    Entry,
    EntryResponse,
    EntryStatus,
    EntryType,
    membership_change,
    membership_data,
)
from traft.core.errors import (
    LeaderNotReady,
    MembershipError,
    NodeIdRemoved,
    NodeUnknown,
    NoSnapshotInProgress,
    NothingToSnapshot,
    NotLeader,
    OneVotingChangeOnly,
    RaftError,
    SnapshotInProgress,
    TransferError,
    TransferInProgress,
)
from traft.core.log import RaftLog
from traft.core.membership import Membership, NodeConfig
from traft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Message,
    PreVote,
    PreVoteResponse,
    ReadIndex,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from traft.core.progress import Progress, ProgressState
from traft.core.raft import Raft
from traft.core.ready import (
    Event,
    HardState,
    LeaderChanged,
    MembershipChanged,
    NodeHasSufficientLogs,
    ReadLost,
    ReadReady,
    Ready,
    RemovedSelf,
    Role,
    RoleChanged,
    SendSnapshot,
    SnapshotMeta,
    TransferAborted,
    TransferFinished,
    TransferStarted,
)

__all__ = [
    "AppendEntries",
    "AppendEntriesResponse",
    "Config",
    "Entry",
    "EntryResponse",
    "EntryStatus",
    "EntryType",
    "Event",
    "HardState",
    "LeaderChanged",
    "LeaderNotReady",
    "Membership",
    "MembershipChanged",
    "MembershipError",
    "Message",
    "NoSnapshotInProgress",
    "NodeConfig",
    "NodeHasSufficientLogs",
    "NodeIdRemoved",
    "NodeUnknown",
    "NotLeader",
    "NothingToSnapshot",
    "OneVotingChangeOnly",
    "PreVote",
    "PreVoteResponse",
    "Progress",
    "ProgressState",
    "Raft",
    "RaftError",
    "RaftLog",
    "ReadIndex",
    "ReadIndexResponse",
    "ReadLost",
    "ReadReady",
    "Ready",
    "RemovedSelf",
    "RequestVote",
    "RequestVoteResponse",
    "Role",
    "RoleChanged",
    "SendSnapshot",
    "SnapshotInProgress",
    "SnapshotMeta",
    "TimeoutNow",
    "TransferAborted",
    "TransferError",
    "TransferFinished",
    "TransferInProgress",
    "TransferStarted",
    "membership_change",
    "membership_data",
]
