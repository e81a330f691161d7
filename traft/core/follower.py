"""The follower role: taking entries from the leader (Figure 2, AppendEntries receiver).

Theory of operation. A :class:`Follower` is what a server is when it is
neither leader nor candidate. Besides the election timer and pre-vote
rounds it shares with candidates (:class:`~traft.core.election.Electing`),
it keeps the receiver side of log replication: an AppendEntries of its
term is checked against its log (§5.3, Log Matching), conflicting entries
are popped and the rest appended (Figure 2, receiver rules 1 to 5), and the
answer tells the leader how far the logs agree, or on a rejection where
they may agree (the hint that :meth:`traft.core.progress.Progress.on_reject`
backs off to). A server that hears from the leader of its term while a
candidate becomes a follower first (:class:`~traft.core.raft.Raft` does
that). Reads forwarded to the leader are kept by the server
(:class:`~traft.core.reads.ForwardedReads`).

Persist before send: the answer goes into the same Ready as the entries it
acknowledges, and the Ready contract (:mod:`traft.core.ready`) has the
driver persist them before sending it.
"""

from __future__ import annotations

from collections.abc import Sequence

from traft.core.election import Electing
from traft.core.entry import Entry
from traft.core.messages import AppendEntries
from traft.core.ready import Role


class Follower(Electing):
    """A follower: the receiver side of replication."""

    role = Role.FOLLOWER

    def __repr__(self) -> str:
        return f"Follower(term={self._s.term}, leader={self._s.leader_id})"

    def recv_append(self, from_id: int, msg: AppendEntries) -> None:
        """An AppendEntries of this term, from the leader the server now knows."""
        s = self._s
        s._election_elapsed_ms = 0
        self.pre_votes = None
        log = s._log
        prev = msg.prev_log_index
        entries = msg.entries
        vouched = prev + len(entries)
        if prev < log.base_index:
            # Entries up to base_index are compacted and committed, so they match
            # the leader's; skip them rather than appending them a second time.
            entries = entries[log.base_index - prev :]
            prev = log.base_index
            prev_term: int | None = log.base_term
        else:
            prev_term = log.term_at(prev)
            if prev_term != msg.prev_log_term:
                # Figure 2, receiver rule 2: reply false; hint where the logs may agree.
                s._msgs.append((from_id, s._ae_response(False, self._reject_hint(msg), msg.seq)))
                return
        if entries:
            self._append_from_leader(prev, entries)
        # Figure 2 receiver rule 5, bounded by what this request vouched for:
        # never the end of our own log, which may still hold stale entries.
        new_commit = min(msg.leader_commit, vouched)
        if new_commit > s.commit_index:
            s.commit_index = new_commit
        s._msgs.append((from_id, s._ae_response(True, max(vouched, log.base_index), msg.seq)))

    def _reject_hint(self, msg: AppendEntries) -> int:
        # The highest index at which our log may agree with the leader's: the
        # leader's entries before prev have terms <= prev_log_term, so ours with
        # a larger term cannot match. Committed entries always match.
        s = self._s
        log = s._log
        floor = max(s.commit_index, log.base_index)
        i = min(msg.prev_log_index - 1, log.last_index)
        while i > floor:
            term = log.term_at(i)
            if term is not None and term <= msg.prev_log_term:
                break
            i -= 1
        return max(i, floor)

    def _append_from_leader(self, prev: int, entries: Sequence[Entry]) -> None:
        s = self._s
        log = s._log
        last = log.last_index
        if entries[0].index != prev + 1:
            return  # malformed: indexes do not continue prev
        if prev == last:
            s._append(entries)
            return
        # Figure 2 receiver rules 3 and 4: skip what we already have, cut at the
        # first conflict, append the rest.
        for k, entry in enumerate(entries):
            if entry.index > last:
                s._append(entries[k:])
                return
            if log.term_at(entry.index) != entry.term:
                s._truncate(entry.index)
                s._append(entries[k:])
                return
