"""traft.node.proposals.Proposals alone: batching and answers, without a node."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from traft.core import Entry, EntryType, NotLeader
from traft.node.errors import NodeError, NoLeaderError, ProposalLost, ProposalTimeout
from traft.node.metrics import NodeCounters
from traft.node.proposals import Proposals
from traft.node.waiters import Proposal


class Core:
    """Takes batches like Raft.recv_entries_batch: term 3, indexes from ``next_index``."""

    def __init__(self, next_index: int = 1, leader: bool = True) -> None:
        self.next_index = next_index
        self.leader = leader
        self.batches: list[list[bytes]] = []

    @property
    def current_index(self) -> int:
        return self.next_index - 1

    def recv_entries_batch(self, datas: Sequence[bytes]) -> tuple[int, int]:
        if not self.leader:
            raise NotLeader(None)
        self.batches.append(list(datas))
        first = self.next_index
        self.next_index += len(datas)
        return 3, first


class Machine:
    def apply(self, index: int, command: bytes) -> Any:
        if command == b"boom":
            raise RuntimeError("boom")
        return command.upper()

    def snapshot(self) -> Iterable[bytes]:
        return []

    def restore(self, chunks: Iterable[bytes]) -> None:
        pass


def proposal(command: bytes, outcomes: list[tuple[Any, BaseException | None]]) -> Proposal:
    p = Proposal(command)
    p.callback = lambda result, error: outcomes.append((result, error))
    return p


def refuse(exc: NotLeader) -> NodeError:
    return NoLeaderError()


def entry(index: int, term: int, data: bytes) -> Entry:
    return Entry(term, index, index, EntryType.NORMAL, data)


def test_a_flush_proposes_at_most_max_batch_as_one_batch() -> None:
    proposals = Proposals(1, NodeCounters(), max_batch=3)
    outcomes: list[tuple[Any, BaseException | None]] = []
    firsts = [proposals.add(proposal(b"%d" % k, outcomes)) for k in range(5)]
    assert firsts == [True, False, False, False, False]  # only the first wakes the loop
    core = Core()
    proposals.flush(core, refuse)
    assert core.batches == [[b"0", b"1", b"2"]]
    assert proposals.leftover
    proposals.flush(core, refuse)
    assert core.batches[1] == [b"3", b"4"]
    assert not proposals.leftover
    assert proposals.in_log == 5


def test_has_room_until_max_unapplied_counting_listed_and_logged() -> None:
    proposals = Proposals(1, NodeCounters(), max_unapplied=3)
    outcomes: list[tuple[Any, BaseException | None]] = []
    proposals.add(proposal(b"a", outcomes))
    proposals.add(proposal(b"b", outcomes))
    assert proposals.has_room()
    proposals.flush(Core(), refuse)  # two in the log now, none listed
    assert proposals.unapplied == 2
    proposals.add(proposal(b"c", outcomes))
    assert not proposals.has_room()


def test_flush_admits_only_what_the_bound_leaves_room_for_until_entries_apply() -> None:
    proposals = Proposals(1, NodeCounters(), max_unapplied=4)
    outcomes: list[tuple[Any, BaseException | None]] = []
    core = Core(next_index=3)  # two entries unapplied already (a new leader's log)
    for k in range(4):
        proposals.add(proposal(b"%d" % k, outcomes))
    proposals.flush(core, refuse)
    assert core.batches == [[b"0", b"1"]]
    assert proposals.unapplied == 6 and proposals.peak_unapplied == 6
    assert not proposals.leftover  # no room: the main loop must not spin
    proposals.flush(core, refuse)
    assert len(core.batches) == 1
    proposals.apply([entry(3, 3, b"0")], Machine(), 2)  # entries 1-3 applied
    assert proposals.leftover
    proposals.flush(core, refuse)
    assert core.batches[1] == [b"2", b"3"]
    assert proposals.unapplied == 3  # entry 4, then 5 and 6


def test_the_byte_bound_admits_one_large_command_alone() -> None:
    proposals = Proposals(1, NodeCounters(), max_unapplied_bytes=10)
    outcomes: list[tuple[Any, BaseException | None]] = []
    proposals.add(proposal(b"x" * 25, outcomes))
    proposals.add(proposal(b"y", outcomes))
    core = Core()
    proposals.flush(core, refuse)
    assert core.batches == [[b"x" * 25]]
    assert proposals.unapplied_bytes == 26 and not proposals.has_room()
    assert not proposals.leftover  # no room for b"y": the main loop must not spin
    proposals.flush(core, refuse)
    assert len(core.batches) == 1
    proposals.apply([entry(1, 3, b"x" * 25)], Machine(), 0)
    assert proposals.unapplied_bytes == 1 and proposals.leftover
    proposals.flush(core, refuse)
    assert core.batches[1] == [b"y"]


def test_applied_entries_answer_their_proposers_with_the_state_machines_result() -> None:
    counters = NodeCounters()
    proposals = Proposals(1, counters)
    outcomes: list[tuple[Any, BaseException | None]] = []
    for command in (b"a", b"boom", b"c"):
        proposals.add(proposal(command, outcomes))
    proposals.flush(Core(next_index=5), refuse)
    applied = proposals.apply(
        [entry(5, 3, b"a"), entry(6, 3, b"boom"), entry(7, 3, b"c")], Machine(), 4
    )
    assert applied == 7
    assert outcomes[0] == (b"A", None)
    assert isinstance(outcomes[1][1], RuntimeError)
    assert outcomes[2] == (b"C", None)
    assert counters.applied_entries == 3 and counters.proposals == 3


def test_an_entry_of_another_term_at_the_proposals_index_means_lost() -> None:
    counters = NodeCounters()
    proposals = Proposals(1, counters)
    outcomes: list[tuple[Any, BaseException | None]] = []
    proposals.add(proposal(b"a", outcomes))
    proposals.flush(Core(), refuse)
    proposals.apply([entry(1, 4, b"someone else's")], Machine(), 0)
    assert isinstance(outcomes[0][1], ProposalLost)
    assert counters.proposals_lost == 1


def test_entries_at_or_below_applied_are_not_applied_again() -> None:
    proposals = Proposals(1, NodeCounters())
    seen: list[int] = []

    class Recorder(Machine):
        def apply(self, index: int, command: bytes) -> Any:
            seen.append(index)

    assert proposals.apply([entry(1, 1, b"x"), entry(2, 1, b"y")], Recorder(), 1) == 2
    assert seen == [2]


def test_a_refused_batch_fails_every_proposal_with_the_refusal() -> None:
    proposals = Proposals(1, NodeCounters())
    outcomes: list[tuple[Any, BaseException | None]] = []
    for command in (b"a", b"b"):
        proposals.add(proposal(command, outcomes))
    proposals.flush(Core(leader=False), refuse)
    assert [type(error) for _, error in outcomes] == [NoLeaderError, NoLeaderError]
    assert proposals.in_log == 0


def test_a_proposal_whose_index_is_reused_has_an_unknown_outcome() -> None:
    proposals = Proposals(1, NodeCounters())
    outcomes: list[tuple[Any, BaseException | None]] = []
    proposals.add(proposal(b"old", outcomes))
    proposals.flush(Core(next_index=1), refuse)
    proposals.add(proposal(b"new", outcomes))
    proposals.flush(Core(next_index=1), refuse)  # the old entry was popped from the log
    assert len(outcomes) == 1 and isinstance(outcomes[0][1], ProposalTimeout)
    assert proposals.in_log == 1


@pytest.mark.parametrize(
    ("snapshot_term", "error"), [(2, ProposalLost), (3, ProposalTimeout), (4, ProposalTimeout)]
)
def test_proposals_a_snapshot_covered_fail_at_once_never_succeed(
    snapshot_term: int, error: type[Exception]
) -> None:
    proposals = Proposals(1, NodeCounters())
    outcomes: list[tuple[Any, BaseException | None]] = []
    for command in (b"a", b"b"):
        proposals.add(proposal(command, outcomes))
    proposals.flush(Core(), refuse)  # indexes 1 and 2, term 3
    proposals.fail_covered(1, snapshot_term)
    assert len(outcomes) == 1 and isinstance(outcomes[0][1], error)
    assert proposals.in_log == 1


def test_forget_and_fail_all() -> None:
    proposals = Proposals(1, NodeCounters(), max_batch=1)
    outcomes: list[tuple[Any, BaseException | None]] = []
    first, second = proposal(b"a", outcomes), proposal(b"b", outcomes)
    proposals.add(first)
    proposals.add(second)
    proposals.flush(Core(), refuse)
    proposals.forget(first)
    assert proposals.in_log == 0
    proposals.fail_all(ProposalTimeout("stopped"))
    assert [type(error) for _, error in outcomes] == [ProposalTimeout]  # second, still listed
    assert not proposals.leftover


def test_no_leftover_while_the_next_command_does_not_fit_in_the_byte_bound() -> None:
    proposals = Proposals(1, NodeCounters(), max_unapplied_bytes=10)
    outcomes: list[tuple[Any, BaseException | None]] = []
    core = Core()
    proposals.add(proposal(b"a" * 6, outcomes))
    proposals.flush(core, refuse)
    proposals.add(proposal(b"b" * 6, outcomes))
    proposals.flush(core, refuse)
    assert core.batches == [[b"a" * 6]]
    assert not proposals.leftover  # 6 + 6 > 10: flush would take nothing
    proposals.apply([entry(1, 3, b"a" * 6)], Machine(), 0)
    assert proposals.leftover
