"""Property tests of :class:`Progress` alone: the replication rules for one follower.

A Hypothesis state machine plays a leader's log (it grows and is compacted),
one follower (its log agrees with the leader's up to ``agree``, whatever it
holds beyond) and a network that loses, duplicates and reorders the leader's
AppendEntries and the answers. Only the rules of traft.core.progress decide
what is sent; the invariants are the ones that module states.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from traft.core import Progress, ProgressState

INFLIGHT = 4
MAX_ENTRIES = 6  # above INFLIGHT, so the in-flight limit is what stops a send


def _state(pr: Progress) -> tuple[object, ...]:
    return (pr.state, pr.match_index, pr.next_index, pr.probe_sent, pr.pending_snapshot)


class ProgressMachine(RuleBasedStateMachine):
    @initialize(last=st.integers(0, 10), agree=st.integers(0, 10), replicating=st.booleans())
    def start(self, last: int, agree: int, replicating: bool) -> None:
        self.base = 0
        self.last = last
        self.agree = min(agree, last)  # the follower's log matches the leader's up to here
        self.pr = Progress(2, last + 1)  # as a new leader creates it
        if replicating:  # or past its first probe
            self.pr.on_success(self.agree, 0, last)
        # AppendEntries in flight (prev, count) and snapshots (index); answers
        # in flight: (success, index).
        self.requests: list[tuple[int, int]] = []
        self.snapshots: list[int] = []
        self.answers: list[tuple[bool, int]] = []
        self.prev_match = 0

    # -- the leader's log -----------------------------------------------------------

    @rule(n=st.integers(1, 5))
    def append(self, n: int) -> None:
        self.last += n

    @rule(k=st.integers(1, 5))
    def compact(self, k: int) -> None:
        self.base = min(self.base + k, self.last)

    # -- the leader sends, as traft.core.leader does ----------------------------------

    @rule()
    def send(self) -> None:
        pr = self.pr
        if not pr.can_send(self.last, INFLIGHT):
            return
        was = pr.state
        prev = pr.next_index - 1
        if prev < self.base:
            pr.become_snapshot(self.base, 1)
            self.snapshots.append(self.base)
            return
        hi = pr.send_limit(self.last, MAX_ENTRIES, INFLIGHT)
        count = hi - pr.next_index
        assert count >= 0
        pr.sent(prev, count)
        self.requests.append((prev, count))
        if was is ProgressState.PROBE:
            assert not pr.can_send(self.last, INFLIGHT), "a probe sent twice without an answer"
        else:
            assert pr.next_index - 1 - pr.match_index <= INFLIGHT, "in-flight limit exceeded"

    @rule()
    def heartbeat_round(self) -> None:
        pr = self.pr
        stalled = (
            pr.state is ProgressState.REPLICATE
            and pr.next_index - 1 > pr.match_index
            and pr.match_index == pr.stall_mark
        )
        if self.pr.begin_round(self.base, self.last):
            self.send()
        if stalled:
            assert pr.next_index == pr.match_index + 1 or pr.state is ProgressState.SNAPSHOT

    @rule(ms=st.integers(0, 300))
    def tick(self, ms: int) -> None:
        pr = self.pr
        if pr.snapshot_tick(ms, 200):
            assert pr.state is ProgressState.SNAPSHOT
            pr.become_snapshot(self.base, 1)
            self.snapshots.append(self.base)

    # -- the follower ----------------------------------------------------------------

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data(), keep=st.booleans())
    def follower_takes_append(self, data: st.DataObject, keep: bool) -> None:
        i = data.draw(st.integers(0, len(self.requests) - 1))
        prev, count = self.requests[i] if keep else self.requests.pop(i)
        if prev <= self.agree:
            self.agree = max(self.agree, prev + count)
            self.answers.append((True, prev + count))
        else:
            # The follower's hint: where its log may agree, never below where it does.
            hint = data.draw(st.integers(self.agree, prev - 1))
            self.answers.append((False, hint))

    @precondition(lambda self: bool(self.snapshots))
    @rule(data=st.data())
    def follower_installs_snapshot(self, data: st.DataObject) -> None:
        index = self.snapshots.pop(data.draw(st.integers(0, len(self.snapshots) - 1)))
        self.agree = max(self.agree, index)
        self.answers.append((True, max(self.agree, index)))

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data())
    def lose_append(self, data: st.DataObject) -> None:
        self.requests.pop(data.draw(st.integers(0, len(self.requests) - 1)))

    # -- the leader hears back ---------------------------------------------------------

    def _apply(self, success: bool, index: int) -> None:
        if success:
            self.pr.on_success(index, self.base, self.last)
        else:
            self.pr.on_reject(index, self.base, self.last)

    @precondition(lambda self: bool(self.answers))
    @rule(data=st.data(), keep=st.booleans())
    def leader_takes_answer(self, data: st.DataObject, keep: bool) -> None:
        i = data.draw(st.integers(0, len(self.answers) - 1))
        success, index = self.answers[i] if keep else self.answers.pop(i)
        pr = self.pr
        before = _state(pr)
        stale = index < pr.match_index or (index == pr.match_index and success)
        replicating = pr.state is ProgressState.REPLICATE
        self._apply(success, index)
        if stale and (replicating or not success):
            assert _state(pr) == before, "a stale answer changed the progress"
        once = _state(pr)
        self._apply(success, index)
        if success:
            assert _state(pr) == once, "a duplicated answer changed the progress"

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def match_never_decreases(self) -> None:
        assert self.pr.match_index >= self.prev_match
        self.prev_match = self.pr.match_index

    @invariant()
    def next_is_above_match(self) -> None:
        assert self.pr.next_index > self.pr.match_index

    @invariant()
    def match_is_never_more_than_the_follower_holds(self) -> None:
        assert self.pr.match_index <= self.agree


TestProgress = ProgressMachine.TestCase


def test_without_loss_the_follower_catches_up() -> None:
    """Probe, back off to the follower's hint, then replicate to the end of the log."""
    pr = Progress(2, 21)
    agree = 5
    for _ in range(40):
        if not pr.can_send(20, INFLIGHT):
            pr.begin_round(0, 20)
            continue
        prev = pr.next_index - 1
        count = pr.send_limit(20, MAX_ENTRIES, INFLIGHT) - pr.next_index
        pr.sent(prev, count)
        if prev <= agree:
            agree = max(agree, prev + count)
            pr.on_success(prev + count, 0, 20)
        else:
            pr.on_reject(agree, 0, 20)
    assert (pr.state, pr.match_index, pr.next_index) == (ProgressState.REPLICATE, 20, 21)


def test_a_stale_rejection_changes_nothing() -> None:
    pr = Progress(2, 11)
    pr.on_success(10, 0, 10)
    before = _state(pr)
    pr.on_reject(4, 0, 10)
    assert _state(pr) == before


def test_a_stalled_follower_is_probed_again_from_its_match() -> None:
    pr = Progress(2, 1)
    pr.on_success(3, 0, 10)
    pr.sent(3, 4)  # 4..7 in flight, then lost
    assert not pr.begin_round(0, 10)  # first round: progress may still come
    assert pr.begin_round(0, 10)  # a whole round without progress: resend
    assert (pr.state, pr.next_index) == (ProgressState.PROBE, 4)


def test_a_snapshot_follower_replicates_once_the_log_holds_its_match() -> None:
    pr = Progress(2, 1)
    pr.become_snapshot(50, 3)
    pr.on_reject(30, 40, 60)  # needs entries the leader compacted: keep the snapshot
    assert pr.state is ProgressState.SNAPSHOT
    pr.on_success(45, 40, 60)  # installed an older snapshot; 46.. are held
    assert (pr.state, pr.match_index, pr.next_index) == (ProgressState.REPLICATE, 45, 46)


def test_replication_pipelines_up_to_the_in_flight_limit() -> None:
    pr = Progress(2, 1)
    pr.on_success(0, 0, 100)
    sends = 0
    while pr.can_send(100, INFLIGHT):
        prev = pr.next_index - 1
        pr.sent(prev, pr.send_limit(100, MAX_ENTRIES, INFLIGHT) - pr.next_index)
        sends += 1
    assert (sends, pr.next_index - 1 - pr.match_index) == (1, INFLIGHT)
    pr.on_success(2, 0, 100)  # two acknowledged: two more may go
    assert pr.send_limit(100, MAX_ENTRIES, INFLIGHT) == 7


def test_a_reordered_older_success_does_not_lower_the_match() -> None:
    pr = Progress(2, 1)
    pr.on_success(0, 0, 100)
    pr.sent(0, 2)
    pr.sent(2, 2)
    assert pr.on_success(4, 0, 100)
    assert not pr.on_success(2, 0, 100)  # the first answer, delivered late
    assert (pr.match_index, pr.next_index) == (4, 5)
