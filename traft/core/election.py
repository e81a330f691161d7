"""Elections: timeouts, pre-vote, campaigning and voting (§5.2, §5.4.1, thesis §9.6).

Theory of operation. A follower or candidate whose randomised election timer
fires (§5.2) starts an election. With ``Config.pre_vote`` it first runs a
pre-vote round (Ongaro's thesis §9.6: "a candidate would first ask other
servers whether its log was up-to-date enough to get their vote. Only if the
candidate believed it could get votes from a majority of the cluster would
it increment its term and start a normal election").

The rules this module keeps:

1. *Starting a pre-vote.* When the timer fires, the server forgets its
   leader, restarts its timer with a fresh random timeout, and sends
   ``PreVote(term + 1, last_log_index, last_log_term)`` to every other voter.
   Its term and vote do not change, so nothing is persisted for it
   (no ``hard_state`` in the Ready). Its role does not change either: a
   follower stays a follower, a candidate whose election failed stays a
   candidate (its votes at its current term still count).
2. *Granting a pre-vote.* A server grants iff (a) the asker's log is at
   least as up-to-date as its own (§5.4.1); (b) it has not heard from a
   leader within the election timeout: it is not the leader, and it does not
   know a leader from whom it heard less than ``election_timeout_ms`` ago
   (thesis §4.2.3, "if a server receives a RequestVote request within the
   minimum election timeout of hearing from a current leader, it does not
   update its term or grant its vote"; §9.6 applies it to pre-votes, with
   or without check-quorum); and (c) the request's term is above its own,
   or equal to it while it has no vote for another server in that term.
   It answers at the request's term when it grants and at its own term when
   it refuses. Answering changes nothing on the voter: not its term, vote,
   election timer or known leader.
3. *Terms.* A ``PreVote``, and a granted ``PreVoteResponse``, at a term
   above the receiver's never make it adopt that term (they speak of a term
   nobody is in). A refused ``PreVoteResponse`` carries the voter's real
   term; a higher one is adopted like any other message's (the asker is
   behind and learns it).
4. *Winning.* Grants from a majority of voters (the asker counts itself)
   for ``term + 1`` start the real election (§5.2: increment the term, vote
   for self, ``RequestVote``). Stale grants (for another term) are ignored.
   Hearing from a leader of its term cancels the round, as it restarts the
   timer.
5. *Check-quorum* (thesis §6.2): a leader that has not heard from a
   majority for an election timeout steps down and forgets that it led;
   from then on it must win a pre-vote like anyone, which fails while the
   others hear from a newer leader. With check-quorum, a real
   ``RequestVote`` at a higher term is ignored by a server that heard from a
   leader within the election timeout (§4.2.3, leader stickiness), unless it
   carries ``leader_transfer``.
6. *Leadership transfer* (thesis §3.10, :mod:`traft.core.transfer`): the
   target of ``TimeoutNow`` skips the pre-vote and campaigns at once, and
   its ``RequestVote`` carries ``leader_transfer=True`` so voters grant it
   despite rule 5: the current leader asked for this election.
7. *Leases* (thesis §6.4.1, ``Config.lease_reads``): a server counts as
   having heard from a leader when it starts, so for its first election
   timeout it refuses votes and pre-votes (except transfer votes). Else a
   voter that answered an old leader's heartbeat, crashed and restarted at
   once could help elect a new leader while the old leader's lease, which
   its answer supported, still runs.

Where each rule lives: the granting rules (2, 5, 7 and the vote rule of
§5.2 and §5.4.1: one vote per term, for a log at least as up-to-date) and
whether this server may campaign are the functions of this module; the
rounds are counted by the role objects that take part in elections,
:class:`Candidate` (its votes) and :class:`~traft.core.follower.Follower`
(both count pre-votes, see :class:`Electing`); the term rules (3, 5) and
starting a round (1, 4, 6) are in :meth:`traft.core.raft.Raft.recv` and
``Raft._campaign`` / ``Raft._pre_campaign``, where the role changes.
"""

from __future__ import annotations

import enum

from traft.core.membership import Membership, NodeConfig
from traft.core.messages import (
    Message,
    PreVote,
    PreVoteResponse,
    ReadIndex,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from traft.core.reads import refuse
from traft.core.ready import Role
from traft.core.server import ServerState


class Next(enum.Enum):
    """A role change a role object asks of its server (roles never change it themselves)."""

    CAMPAIGN = "campaign"  # start a real election (§5.2)
    TRANSFER_CAMPAIGN = "transfer-campaign"  # the same, asked by the leader (rule 6)
    PRE_CAMPAIGN = "pre-campaign"  # start a pre-vote round (rule 1)
    FORGET_LEADER = "forget-leader"  # a whole timeout without the leader; cannot campaign
    LEAD = "lead"  # a majority voted for this candidate
    STEP_DOWN = "step-down"  # the leader steps down (check-quorum, or its removal committed)


# -- may this server campaign, may it vote ---------------------------------------------


def can_campaign(s: ServerState) -> bool:
    """Whether this server may start an election."""
    # The seed: only voting members start elections, and not while loading a snapshot.
    if s._loading:
        return False
    if s._conf.is_voter(s.id):
        return True
    # A voter whose own removal is appended but not yet committed still
    # campaigns (thesis §4.2.2: a removed leader may lead again until the
    # removal commits); only the new configuration's votes count. Else a
    # cluster shrinking from two voters wedges when only the removed
    # server holds its removal: the other needs its vote and never gets
    # it, having the shorter log.
    removed = s._removed_at
    if removed is None or removed <= s.commit_index:
        return False
    before: Membership = s._conf.membership_at(removed - 1)
    return any(n.node_id == s.id and n.voting for n in before.nodes)


def heard_from_leader(s: ServerState) -> bool:
    """Rule 2(b): a leader was heard from within the election timeout."""
    if s.role is Role.LEADER or s._boot_guard_ms:
        return True
    return s.leader_id is not None and s._election_elapsed_ms < s.config.election_timeout_ms


def leader_is_fresh(s: ServerState) -> bool:
    """§4.2.3 with check-quorum: ignore a RequestVote at a higher term."""
    return s.config.check_quorum and heard_from_leader(s)


def answer_pre_vote(s: ServerState, from_id: int, msg: PreVote) -> None:
    """Rule 2: grant or refuse a pre-vote; nothing changes on this server."""
    grant = (
        (msg.term > s.term or s.voted_for in (None, msg.candidate_id))
        and msg.term >= s.term
        and s._log_up_to_date(msg.last_log_index, msg.last_log_term)
        and not heard_from_leader(s)
    )
    answer = PreVoteResponse(term=msg.term if grant else s.term, vote_granted=grant)
    s._msgs.append((from_id, answer))


def answer_vote(s: ServerState, from_id: int, msg: RequestVote) -> None:
    """The vote rule, for a RequestVote of this server's term."""
    # §5.2, §5.4.1: grant if we have not voted for another candidate in this
    # term and the candidate's log is at least as up-to-date as ours. A
    # duplicated request from the candidate we voted for is granted again.
    grant = (
        s.voted_for in (None, msg.candidate_id)
        and s._log_up_to_date(msg.last_log_index, msg.last_log_term)
        and s.role is not Role.LEADER
    )
    if grant:
        s.voted_for = msg.candidate_id
        s._election_elapsed_ms = 0
    s._msgs.append((from_id, RequestVoteResponse(term=s.term, vote_granted=grant)))


# -- the roles that take part in elections -----------------------------------------------


class Electing:
    """What followers and candidates share: the election timer and pre-vote rounds."""

    role: Role

    def __init__(self, server: ServerState) -> None:
        self._s = server
        # Grants for a pre-vote round at term + 1; None when no round is open.
        self.pre_votes: set[int] | None = None

    def tick(self, elapsed_ms: int) -> Next | None:
        """Time passed (the server counted it); what to do once the election timer fires."""
        s = self._s
        if s._election_elapsed_ms < s._timeout_ms:
            return None
        s._election_elapsed_ms = 0
        if can_campaign(s):
            return Next.PRE_CAMPAIGN if s.config.pre_vote else Next.CAMPAIGN
        # A whole election timeout without the leader: it is not known any
        # more. Keeping it would make the leader look fresh again each time
        # this timer restarts, and a server that cannot campaign (it may be
        # a voter in everyone's eyes but its own) would go on ignoring
        # RequestVotes (§4.2.3) with no leader.
        return Next.FORGET_LEADER

    def step(self, from_id: int, msg: Message) -> Next | None:
        """A pre-vote answer, or a message of this server's term that only the leader serves."""
        s = self._s
        if isinstance(msg, PreVoteResponse):
            # Rule 4: count a grant; campaign once a majority would vote for this server.
            votes = self.pre_votes
            if votes is None or not msg.vote_granted or msg.term != s.term + 1:
                return None
            if not s._conf.is_voter(from_id):
                return None
            votes.add(from_id)
            return Next.CAMPAIGN if s._is_majority(votes) else None
        if isinstance(msg, ReadIndex):
            refuse(s, from_id, msg)  # not the leader
        elif isinstance(msg, TimeoutNow) and can_campaign(s):
            # Thesis §3.10: the transfer target starts an election at once,
            # skipping the pre-vote; its RequestVote says why (rule 6).
            return Next.TRANSFER_CAMPAIGN
        return None

    def membership_changed(self, node_id: int, node: NodeConfig | None, index: int) -> None:
        """Nothing to do: only a leader tracks members."""

    def has_sends(self) -> bool:
        """Nothing to send at ``ready()``: only a leader replicates."""
        return False

    def flush(self) -> None:
        """Nothing to send at ``ready()``: only a leader replicates."""

    def durable(self) -> Next | None:
        """More of the log is durable: nothing to count (only a leader commits)."""
        return None


class Candidate(Electing):
    """A candidate of ``server.term``: the votes it has (§5.2)."""

    role = Role.CANDIDATE

    def __init__(self, server: ServerState) -> None:
        super().__init__(server)
        self.votes = {server.id}  # it votes for itself

    def __repr__(self) -> str:
        return f"Candidate(term={self._s.term}, votes={sorted(self.votes)})"

    def step(self, from_id: int, msg: Message) -> Next | None:
        """Count a vote (§5.2): LEAD once a majority has granted it."""
        if isinstance(msg, RequestVoteResponse):
            if not msg.vote_granted:
                return None
            self.votes.add(from_id)
            return Next.LEAD if self._s._is_majority(self.votes) else None
        return super().step(from_id, msg)
