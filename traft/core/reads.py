"""Linearizable reads without log entries: ReadIndex, forwarded and under a lease.

Theory of operation (Ongaro's thesis §6.4 and §6.4.1).

* *ReadIndex on the leader* (§6.4). Once an entry of its term has
  committed, the leader records its commit index as the read index, then
  confirms it is still the leader by a heartbeat round: every read waiting
  joins the next round (one ``seq`` per round, echoed by followers), so a
  burst of reads costs one round. When a majority of voters has answered a
  round sent after the read was registered, the read is ready: the driver
  serves it once it has applied the read index.
* *Reads on a follower* (§6.4, "followers could also help offload the
  processing of read-only queries"). The follower sends ``ReadIndex`` to the
  leader it knows, under a random ``read_id``; the leader treats it as one of
  its own reads (same rounds, same batching) and answers
  ``ReadIndexResponse`` with the read index. The follower emits
  ``ReadReady(ctx, index)``, and the driver serves once the follower has
  applied that index. The read is lost (``ReadLost``) when the leader
  refuses (it is not the leader, or not yet ready), when the follower's
  known leader changes or is forgotten, or when no answer came within an
  election timeout. Read ids are drawn from the injected rng so an answer
  to a read sent before a restart cannot be taken for an answer to a new one.
* *Leases* (§6.4.1, ``Config.lease_reads``). A leader records when it sent
  each heartbeat round (in its own ``periodic`` time). Once a majority of
  voters has answered round ``s`` it holds a lease until ``sent(s) +
  election_timeout_ms - lease_drift_ms``: those voters ignore candidates for
  an election timeout after hearing from it (§4.2.3, which is why leases
  require check-quorum), so no other leader can exist before then, given the
  clock-drift bound in :class:`~traft.core.config.Config`. While it holds
  the lease it answers reads at once, its own and forwarded ones. A leader
  that starts a leadership transfer gives up its lease for the rest of its
  term: the transfer target's election bypasses stickiness (thesis §3.10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traft.core.errors import LeaderNotReady, NotLeader
from traft.core.messages import ReadIndex, ReadIndexResponse
from traft.core.quorum import quorum_index
from traft.core.ready import ReadLost, ReadReady, Role

if TYPE_CHECKING:
    import random

    from traft.core.config import Config
    from traft.core.log import RaftLog
    from traft.core.membership import Configuration
    from traft.core.messages import Message
    from traft.core.progress import Progress
    from traft.core.ready import Event

_NEVER = 1 << 62


class _Remote:
    """A follower's read registered on the leader: answer ``read_id`` to ``node_id``."""

    __slots__ = ("node_id", "read_id")

    def __init__(self, node_id: int, read_id: int) -> None:
        self.node_id = node_id
        self.read_id = read_id


class ReadsMixin:
    """Read-only queries of :class:`~traft.core.raft.Raft`."""

    if TYPE_CHECKING:
        id: int
        term: int
        config: Config
        commit_index: int
        role: Role
        leader_id: int | None
        _rng: random.Random
        _log: RaftLog
        _conf: Configuration
        _progress: dict[int, Progress]
        _seq: int
        _want_broadcast: bool
        _msgs: list[tuple[int, Message]]
        _events: list[Event]

    def _init_read_state(self) -> None:
        # The core's own clock: the sum of every periodic() (never a real clock).
        self._now_ms = 0
        # Leader: reads waiting for a heartbeat round, in registration order:
        # (ctx or _Remote, read index, first seq that confirms it).
        self._reads: list[tuple[object, int, int]] = []
        # Leader, with lease reads: (seq, time sent) of recent rounds, oldest first.
        self._rounds_sent: list[tuple[int, int]] = []
        self._lease_void = False
        # Follower: reads forwarded to the leader, read_id -> (ctx, time sent).
        self._forwarded: dict[int, tuple[object, int]] = {}

    # -- the public entry point -------------------------------------------------

    def read_index(self, ctx: object) -> None:
        """Register a linearizable read (ReadIndex, thesis §6.4).

        On the leader, a :class:`~traft.core.ready.ReadReady` event follows
        once a majority has confirmed this leadership (at once under a lease,
        ``Config.lease_reads``); serve the read when the applied index
        reaches the event's index. On a follower that knows a leader, the
        read is forwarded to the leader and ``ReadReady`` follows its answer;
        the driver serves it from this server once its own applied index
        reaches the event's index. A :class:`~traft.core.ready.ReadLost`
        follows instead if leadership is lost first (on a follower: the
        leader changes, refuses, or does not answer within an election
        timeout); retry it.

        Raises:
            NotLeader: this server knows no leader (``leader_id`` None), or is
                a candidate.
            LeaderNotReady: this server is the leader and no entry of its term
                has committed yet (the leader does not yet know the full
                commit index, §8).
        """
        if self.role is Role.LEADER:
            if self._log.term_at(self.commit_index) != self.term:
                raise LeaderNotReady()
            self._register_read(ctx)
            return
        leader = self.leader_id
        if leader is None or leader == self.id or self.role is not Role.FOLLOWER:
            raise NotLeader(None)
        read_id = self._rng.getrandbits(63)
        self._forwarded[read_id] = (ctx, self._now_ms)
        self._msgs.append((leader, ReadIndex(term=self.term, read_id=read_id)))

    # -- leader side ----------------------------------------------------------------

    def _register_read(self, ctx: object) -> None:
        if self._conf.voters() == [self.id] or self._lease_held():
            self._read_ready(ctx, self.commit_index)
            return
        self._reads.append((ctx, self.commit_index, self._seq + 1))
        self._want_broadcast = True

    def _read_ready(self, ctx: object, index: int) -> None:
        if isinstance(ctx, _Remote):
            answer = ReadIndexResponse(
                term=self.term, read_id=ctx.read_id, index=index, success=True
            )
            self._msgs.append((ctx.node_id, answer))
        else:
            self._events.append(ReadReady(ctx, index))

    def _recv_read_index(self, from_id: int, msg: ReadIndex) -> None:
        if self.role is not Role.LEADER or self._log.term_at(self.commit_index) != self.term:
            refusal = ReadIndexResponse(term=self.term, read_id=msg.read_id, index=0, success=False)
            self._msgs.append((from_id, refusal))
            return
        self._register_read(_Remote(from_id, msg.read_id))

    def _confirmed_seq(self) -> int:
        """The newest heartbeat round a majority of voters has answered."""
        acked = []
        for v in self._conf.voters():
            if v == self.id:
                acked.append(_NEVER)
            else:
                pr = self._progress.get(v)
                acked.append(pr.acked_seq if pr is not None else 0)
        return quorum_index(acked)

    def _check_reads(self) -> None:
        confirmed = self._confirmed_seq()
        reads = self._reads
        done = 0
        while done < len(reads) and reads[done][2] <= confirmed:
            ctx, index, _ = reads[done]
            self._read_ready(ctx, index)
            done += 1
        if done:
            del reads[:done]

    def _drop_reads(self) -> None:
        """Leadership is lost: every waiting read is lost (followers are told so)."""
        for ctx, _, _ in self._reads:
            if isinstance(ctx, _Remote):
                refusal = ReadIndexResponse(
                    term=self.term, read_id=ctx.read_id, index=0, success=False
                )
                self._msgs.append((ctx.node_id, refusal))
            else:
                self._events.append(ReadLost(ctx))
        self._reads = []
        self._want_broadcast = False
        self._rounds_sent = []

    # -- leases (§6.4.1) ------------------------------------------------------------

    def _note_round(self, seq: int) -> None:
        """A heartbeat round ``seq`` goes out now (called by the leader's broadcast)."""
        if not self.config.lease_reads:
            return
        rounds = self._rounds_sent
        rounds.append((seq, self._now_ms))
        # A round older than the lease can no longer give one.
        horizon = self._now_ms - self.config.lease_ms
        while rounds and rounds[0][1] <= horizon:
            del rounds[0]

    def _lease_held(self) -> bool:
        if not self.config.lease_reads or self._lease_void:
            return False
        confirmed = self._confirmed_seq()
        for seq, sent_ms in self._rounds_sent:
            if seq == confirmed:
                return self._now_ms < sent_ms + self.config.lease_ms
        return False

    def lease_remaining_ms(self) -> int:
        """How long this leader's read lease still runs (0: none; thesis §6.4.1)."""
        if self.role is not Role.LEADER or not self._lease_held():
            return 0
        confirmed = self._confirmed_seq()
        for seq, sent_ms in self._rounds_sent:
            if seq == confirmed:
                return sent_ms + self.config.lease_ms - self._now_ms
        return 0  # pragma: no cover - _lease_held found it

    # -- follower side ----------------------------------------------------------------

    def _recv_read_index_response(self, from_id: int, msg: ReadIndexResponse) -> None:
        pending = self._forwarded.pop(msg.read_id, None)
        if pending is None:
            return  # answered already, lost, or not ours
        ctx = pending[0]
        if msg.success:
            self._events.append(ReadReady(ctx, msg.index))
        else:
            self._events.append(ReadLost(ctx))

    def _lose_forwarded_reads(self) -> None:
        """The known leader changed: reads forwarded to the old one are lost."""
        if self._forwarded:
            for ctx, _ in self._forwarded.values():
                self._events.append(ReadLost(ctx))
            self._forwarded = {}

    def _expire_forwarded_reads(self) -> None:
        horizon = self._now_ms - self.config.election_timeout_ms
        expired = [rid for rid, (_, sent) in self._forwarded.items() if sent <= horizon]
        for rid in expired:
            ctx, _ = self._forwarded.pop(rid)
            self._events.append(ReadLost(ctx))
