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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traft.core.errors import MembershipError
from traft.core.messages import (
    PreVote,
    PreVoteResponse,
    RequestVote,
    RequestVoteResponse,
)
from traft.core.ready import Role

if TYPE_CHECKING:
    import random

    from traft.core.config import Config
    from traft.core.log import RaftLog
    from traft.core.membership import Configuration, Membership
    from traft.core.messages import Message


class ElectionMixin:
    """Election behaviour of :class:`~traft.core.raft.Raft`."""

    if TYPE_CHECKING:
        id: int
        term: int
        voted_for: int | None
        config: Config
        commit_index: int
        role: Role
        leader_id: int | None
        _rng: random.Random
        _log: RaftLog
        _conf: Configuration
        _loading: bool
        _removed_at: int | None
        _inactive: set[int]
        _msgs: list[tuple[int, Message]]
        _election_elapsed_ms: int
        _timeout_ms: int

        def _set_role(self, role: Role) -> None: ...
        def _set_leader(self, leader_id: int | None) -> None: ...
        def _become_leader(self) -> None: ...
        def _draw_timeout(self) -> int: ...

    def _init_election_state(self) -> None:
        self._votes: set[int] = set()
        # Grants for a pre-vote round at term + 1; None when no round is open.
        self._pre_votes: set[int] | None = None
        # Rule 7: with lease reads, a server starts as if it had just heard
        # from a leader, for one election timeout.
        self._boot_guard_ms = self.config.election_timeout_ms if self.config.lease_reads else 0

    # -- the timer ------------------------------------------------------------

    def _election_tick(self) -> None:
        """Time passed on a follower or candidate (periodic counted it)."""
        if self._election_elapsed_ms < self._timeout_ms:
            return
        self._election_elapsed_ms = 0
        if self._can_campaign():
            if self.config.pre_vote:
                self._pre_campaign()
            else:
                self._campaign()
        else:
            # A whole election timeout without the leader: it is not known
            # any more. Keeping it would make the leader look fresh again
            # each time this timer restarts, and a server that cannot
            # campaign (it may be a voter in everyone's eyes but its own)
            # would go on ignoring RequestVotes (§4.2.3) with no leader.
            self._set_leader(None)
            self._timeout_ms = self._draw_timeout()

    def _can_campaign(self) -> bool:
        # The seed: only voting members start elections, and not while loading a snapshot.
        if self._loading:
            return False
        if self._conf.is_voter(self.id):
            return True
        # A voter whose own removal is appended but not yet committed still
        # campaigns (thesis §4.2.2: a removed leader may lead again until the
        # removal commits); only the new configuration's votes count. Else a
        # cluster shrinking from two voters wedges when only the removed
        # server holds its removal: the other needs its vote and never gets
        # it, having the shorter log.
        removed = self._removed_at
        if removed is None or removed <= self.commit_index:
            return False
        before: Membership = self._conf.membership_at(removed - 1)
        return any(n.node_id == self.id and n.voting for n in before.nodes)

    def campaign(self) -> None:
        """Start an election now, as if the election timeout had fired.

        With ``Config.pre_vote`` this starts a pre-vote round; the real
        election follows only if a majority would vote for this server.

        Raises:
            MembershipError: this server is not a voting member.
        """
        if not self._can_campaign():
            raise MembershipError(f"node {self.id} is not a voting member; it cannot campaign")
        if self.role is not Role.LEADER:
            self._election_elapsed_ms = 0
            if self.config.pre_vote:
                self._pre_campaign()
            else:
                self._campaign()

    # -- pre-vote (rules 1 to 4) ------------------------------------------------

    def _pre_campaign(self) -> None:
        self._set_leader(None)
        self._timeout_ms = self._draw_timeout()
        self._pre_votes = {self.id}
        if self._is_majority(self._pre_votes):
            self._campaign()
            return
        msg = PreVote(
            term=self.term + 1,
            candidate_id=self.id,
            last_log_index=self._log.last_index,
            last_log_term=self._log.last_term,
        )
        for node_id in self._conf.voters():
            if node_id != self.id and node_id not in self._inactive:
                self._msgs.append((node_id, msg))

    def _recv_pre_vote(self, from_id: int, msg: PreVote) -> None:
        grant = (
            (msg.term > self.term or self.voted_for in (None, msg.candidate_id))
            and msg.term >= self.term
            and self._log_up_to_date(msg.last_log_index, msg.last_log_term)
            and not self._heard_from_leader()
        )
        answer = PreVoteResponse(term=msg.term if grant else self.term, vote_granted=grant)
        self._msgs.append((from_id, answer))

    def _recv_pre_vote_response(self, from_id: int, msg: PreVoteResponse) -> None:
        votes = self._pre_votes
        if votes is None or not msg.vote_granted or msg.term != self.term + 1:
            return
        if self.role is Role.LEADER or not self._conf.is_voter(from_id):
            return
        votes.add(from_id)
        if self._is_majority(votes):
            self._campaign()

    def _heard_from_leader(self) -> bool:
        """Rule 2(b): a leader was heard from within the election timeout."""
        if self.role is Role.LEADER or self._boot_guard_ms:
            return True
        return (
            self.leader_id is not None
            and self._election_elapsed_ms < self.config.election_timeout_ms
        )

    def _leader_is_fresh(self) -> bool:
        """§4.2.3 with check-quorum: ignore a RequestVote at a higher term."""
        return self.config.check_quorum and self._heard_from_leader()

    # -- the real election ------------------------------------------------------

    def _campaign(self, *, transfer: bool = False) -> None:
        # §5.2: increment currentTerm, vote for self, reset the timer, send RequestVote.
        self._pre_votes = None
        self.term += 1
        self.voted_for = self.id
        self._set_role(Role.CANDIDATE)
        self._set_leader(None)
        self._votes = {self.id}
        self._election_elapsed_ms = 0
        self._timeout_ms = self._draw_timeout()
        if self._is_majority(self._votes):
            self._become_leader()
            return
        msg = RequestVote(
            term=self.term,
            candidate_id=self.id,
            last_log_index=self._log.last_index,
            last_log_term=self._log.last_term,
            leader_transfer=transfer,
        )
        for node_id in self._conf.voters():
            if node_id != self.id and node_id not in self._inactive:
                self._msgs.append((node_id, msg))

    def _is_majority(self, granted: set[int]) -> bool:
        voters = self._conf.voters()
        return sum(1 for v in voters if v in granted) > len(voters) // 2

    def _log_up_to_date(self, last_index: int, last_term: int) -> bool:
        # §5.4.1: compare the terms of the last entries, then the lengths.
        our_term = self._log.last_term
        return last_term > our_term or (
            last_term == our_term and last_index >= self._log.last_index
        )

    def _recv_vote(self, from_id: int, msg: RequestVote) -> None:
        # §5.2, §5.4.1: grant if we have not voted for another candidate in this
        # term and the candidate's log is at least as up-to-date as ours. A
        # duplicated request from the candidate we voted for is granted again.
        grant = (
            self.voted_for in (None, msg.candidate_id)
            and self._log_up_to_date(msg.last_log_index, msg.last_log_term)
            and self.role is not Role.LEADER
        )
        if grant:
            self.voted_for = msg.candidate_id
            self._election_elapsed_ms = 0
        self._msgs.append((from_id, RequestVoteResponse(term=self.term, vote_granted=grant)))

    def _recv_vote_response(self, from_id: int, msg: RequestVoteResponse) -> None:
        if self.role is not Role.CANDIDATE or not msg.vote_granted:
            return
        self._votes.add(from_id)
        if self._is_majority(self._votes):
            self._become_leader()
