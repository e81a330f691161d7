"""traft.core: the pure, deterministic Raft consensus core.

No I/O, no clocks, no trio, no sockets, no global random: a :class:`Raft`
takes time through ``periodic``, messages through ``recv`` and proposals
through ``recv_entry``, and hands back a :class:`Ready` describing what the
driver must persist, send and apply.
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
