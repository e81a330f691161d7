"""Messages between Raft servers (paper Figure 2, plus the seed's extensions).

Messages are frozen attrs classes without behaviour. The core never trusts
them to be fresh: every handler checks the term and indexes first, and stale
or duplicated messages are dropped or answered, never raised on.

Beyond Figure 2:

* ``AppendEntriesResponse.current_index`` is the follower's last index (the
  seed's ``current_idx``); on rejection it is a hint of where the logs may
  agree, so the leader backs ``next_index`` up in one step (§5.3, the
  "optimization" paragraph).
* ``AppendEntries.seq`` is echoed in the response. It lets the leader confirm
  its leadership for reads (ReadIndex, thesis §6.4) and for check-quorum.
* ``PreVote`` / ``PreVoteResponse`` (thesis §9.6): a server asks whether it
  could win an election at ``term`` (its own term + 1) before it changes any
  state; the rules are in :mod:`traft.core.election`.
* ``TimeoutNow`` (thesis §3.10): a leader transferring leadership tells the
  target to start an election at once; the target's ``RequestVote`` then
  carries ``leader_transfer=True`` so voters grant it despite having heard
  from a leader recently (:mod:`traft.core.transfer`).
* ``ReadIndex`` / ``ReadIndexResponse`` (thesis §6.4): a follower asks its
  leader for a read index; the leader answers after a heartbeat round, or at
  once under a lease (:mod:`traft.core.reads`).
"""

from __future__ import annotations

import attrs

from traft.core.entry import Entry


@attrs.frozen(slots=True, kw_only=True)
class RequestVote:
    """A candidate asks for a vote (§5.2)."""

    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int
    # Set by a candidate campaigning because its leader sent TimeoutNow
    # (thesis §3.10): voters grant despite a recent leader (§4.2.3).
    leader_transfer: bool = False


@attrs.frozen(slots=True, kw_only=True)
class RequestVoteResponse:
    """A vote granted or refused; ``term`` is the voter's current term."""

    term: int
    vote_granted: bool


@attrs.frozen(slots=True, kw_only=True)
class AppendEntries:
    """Replicate ``entries`` after ``prev_log_index``; also the heartbeat (§5.3)."""

    term: int
    leader_id: int
    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...]
    leader_commit: int
    seq: int


@attrs.frozen(slots=True, kw_only=True)
class AppendEntriesResponse:
    """The follower's answer.

    On success ``current_index`` is the last index the request vouched for
    (prev_log_index + len(entries)); on rejection it is the follower's hint:
    the highest index at which its log may still agree with the leader's.
    ``commit_index`` is the follower's commit index after the request.
    """

    term: int
    success: bool
    current_index: int
    commit_index: int
    seq: int


@attrs.frozen(slots=True, kw_only=True)
class PreVote:
    """Could ``candidate_id`` win an election at ``term``? (thesis §9.6).

    ``term`` is the asker's current term + 1; neither side changes its term
    or vote because of it.
    """

    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int


@attrs.frozen(slots=True, kw_only=True)
class PreVoteResponse:
    """A pre-vote answer: granted at the request's term, refused at the voter's term."""

    term: int
    vote_granted: bool


@attrs.frozen(slots=True, kw_only=True)
class TimeoutNow:
    """The leader of ``term`` tells the transfer target to campaign now (thesis §3.10)."""

    term: int
    leader_id: int


@attrs.frozen(slots=True, kw_only=True)
class ReadIndex:
    """A follower asks its leader of ``term`` for a read index (thesis §6.4).

    ``read_id`` is the follower's own number for the read, echoed back.
    """

    term: int
    read_id: int


@attrs.frozen(slots=True, kw_only=True)
class ReadIndexResponse:
    """The leader's answer: serve once applied >= ``index``; refused when not ``success``."""

    term: int
    read_id: int
    index: int
    success: bool


Message = (
    RequestVote
    | RequestVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | PreVote
    | PreVoteResponse
    | TimeoutNow
    | ReadIndex
    | ReadIndexResponse
)
