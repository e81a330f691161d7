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

Where each part lives: :class:`LeaderReads` (reads waiting for a round,
rounds sent, the lease) belongs to the :class:`~traft.core.leader.Leader`
and goes with it; :class:`ForwardedReads` is kept by the server, as a
follower's reads are lost when the leader it knows changes, which may come
just after it stops being a follower.
"""

from __future__ import annotations

from traft.core.messages import ReadIndex, ReadIndexResponse
from traft.core.progress import Progress
from traft.core.quorum import quorum_index
from traft.core.ready import ReadLost, ReadReady
from traft.core.server import ServerState

_NEVER = 1 << 62


class _Remote:
    """A follower's read registered on the leader: answer ``read_id`` to ``node_id``."""

    __slots__ = ("node_id", "read_id")

    def __init__(self, node_id: int, read_id: int) -> None:
        self.node_id = node_id
        self.read_id = read_id


class LeaderReads:
    """A leader's reads waiting for a heartbeat round, and its lease."""

    def __init__(self, server: ServerState, progress: dict[int, Progress]) -> None:
        self._s = server
        self._progress = progress
        # Reads waiting for a heartbeat round, in registration order:
        # (ctx or _Remote, read index, first seq that confirms it).
        self.pending: list[tuple[object, int, int]] = []
        # With lease reads: (seq, time sent) of recent rounds, oldest first.
        self._rounds_sent: list[tuple[int, int]] = []
        # Set by a leadership transfer: no lease for the rest of the term.
        self.lease_void = False

    def register(self, ctx: object, seq: int) -> bool:
        """Register a read at the commit index; True if it waits for the round after ``seq``."""
        s = self._s
        if s._conf.voters() == [s.id] or self.lease_held():
            self._ready(ctx, s.commit_index)
            return False
        self.pending.append((ctx, s.commit_index, seq + 1))
        return True

    def register_remote(self, from_id: int, msg: ReadIndex, seq: int) -> bool:
        """A follower's forwarded read (see :meth:`register`)."""
        return self.register(_Remote(from_id, msg.read_id), seq)

    def _ready(self, ctx: object, index: int) -> None:
        s = self._s
        if isinstance(ctx, _Remote):
            answer = ReadIndexResponse(term=s.term, read_id=ctx.read_id, index=index, success=True)
            s._msgs.append((ctx.node_id, answer))
        else:
            s._events.append(ReadReady(ctx, index))

    def _confirmed_seq(self) -> int:
        """The newest heartbeat round a majority of voters has answered."""
        s = self._s
        acked = []
        for v in s._conf.voters():
            if v == s.id:
                acked.append(_NEVER)
            else:
                pr = self._progress.get(v)
                acked.append(pr.acked_seq if pr is not None else 0)
        return quorum_index(acked)

    def check(self) -> None:
        """A round was answered: serve the reads a majority has confirmed."""
        confirmed = self._confirmed_seq()
        reads = self.pending
        done = 0
        while done < len(reads) and reads[done][2] <= confirmed:
            ctx, index, _ = reads[done]
            self._ready(ctx, index)
            done += 1
        if done:
            del reads[:done]

    def drop(self) -> None:
        """Leadership is lost: every waiting read is lost (followers are told so)."""
        s = self._s
        for ctx, _, _ in self.pending:
            if isinstance(ctx, _Remote):
                refusal = ReadIndexResponse(
                    term=s.term, read_id=ctx.read_id, index=0, success=False
                )
                s._msgs.append((ctx.node_id, refusal))
            else:
                s._events.append(ReadLost(ctx))
        self.pending = []
        self._rounds_sent = []

    # -- leases (§6.4.1) ------------------------------------------------------------

    def note_round(self, seq: int) -> None:
        """A heartbeat round ``seq`` goes out now (called by the leader's broadcast)."""
        config = self._s.config
        if not config.lease_reads:
            return
        now = self._s._now_ms
        rounds = self._rounds_sent
        rounds.append((seq, now))
        # A round older than the lease can no longer give one.
        horizon = now - config.lease_ms
        while rounds and rounds[0][1] <= horizon:
            del rounds[0]

    def lease_held(self) -> bool:
        return self.lease_remaining_ms() > 0

    def lease_remaining_ms(self) -> int:
        """How long the lease still runs (0: none)."""
        config = self._s.config
        if not config.lease_reads or self.lease_void:
            return 0
        confirmed = self._confirmed_seq()
        for seq, sent_ms in self._rounds_sent:
            if seq == confirmed:
                return max(0, sent_ms + config.lease_ms - self._s._now_ms)
        return 0


def refuse(server: ServerState, from_id: int, msg: ReadIndex) -> None:
    """Answer a forwarded read this server cannot serve (not the leader, or not ready)."""
    refusal = ReadIndexResponse(term=server.term, read_id=msg.read_id, index=0, success=False)
    server._msgs.append((from_id, refusal))


class ForwardedReads:
    """A follower's reads forwarded to its leader, by ``read_id``."""

    def __init__(self, server: ServerState) -> None:
        self._s = server
        # read_id -> (ctx, time sent)
        self._waiting: dict[int, tuple[object, int]] = {}

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def forward(self, ctx: object, leader: int) -> None:
        s = self._s
        read_id = s._rng.getrandbits(63)
        self._waiting[read_id] = (ctx, s._now_ms)
        s._msgs.append((leader, ReadIndex(term=s.term, read_id=read_id)))

    def answered(self, msg: ReadIndexResponse) -> None:
        pending = self._waiting.pop(msg.read_id, None)
        if pending is None:
            return  # answered already, lost, or not ours
        ctx = pending[0]
        self._s._events.append(ReadReady(ctx, msg.index) if msg.success else ReadLost(ctx))

    def lose_all(self) -> None:
        """The known leader changed: reads forwarded to the old one are lost."""
        if self._waiting:
            events = self._s._events
            for ctx, _ in self._waiting.values():
                events.append(ReadLost(ctx))
            self._waiting = {}

    def expire(self) -> None:
        """Reads unanswered for an election timeout are lost."""
        s = self._s
        horizon = s._now_ms - s.config.election_timeout_ms
        expired = [rid for rid, (_, sent) in self._waiting.items() if sent <= horizon]
        for rid in expired:
            ctx, _ = self._waiting.pop(rid)
            s._events.append(ReadLost(ctx))
