"""A Hypothesis state machine over a simulated cluster of real Raft cores.

Rules are the simulator's chaos, one step at a time: tick, deliver any
message in flight, drop, duplicate, partition (one- and two-way), heal,
propose, leadership transfer, membership change, compact, crash (between steps or inside a
Ready) and restart. Every invariant of :mod:`traft.sim.invariants` is an
``@invariant``; a failure shrinks to a short program of rules. Example
counts come from the Hypothesis profile (``HYPOTHESIS_PROFILE=dev|ci|explore``,
see tests/conftest.py).
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from traft.core import (
    Config,
    EntryType,
    LeaderNotReady,
    MembershipError,
    NodeUnknown,
    NotLeader,
    OneVotingChangeOnly,
    PreVote,
    PreVoteResponse,
    RequestVote,
    RequestVoteResponse,
    TransferError,
)
from traft.sim import Cluster, SimServer
from traft.sim.invariants import InvariantChecker

CONFIG = Config(election_timeout_ms=100, request_timeout_ms=30, snapshot_resend_ms=300)


class ClusterMachine(RuleBasedStateMachine):
    """Random programs of chaos over a 3- or 5-server cluster."""

    def __init__(self) -> None:
        super().__init__()
        self.cluster = Cluster((1, 2, 3), seed=0, config=CONFIG)
        self.checker = InvariantChecker((1, 2, 3))
        self.next_id = 1
        self.next_server = 4

    @initialize(size=st.sampled_from((3, 5)), seed=st.integers(0, 2**32 - 1))
    def setup(self, size: int, seed: int) -> None:
        ids = tuple(range(1, size + 1))
        self.cluster = Cluster(ids, seed=seed, config=CONFIG)
        self.checker = InvariantChecker(ids)
        self.checker.attach(self.cluster)
        self.next_server = size + 1

    # -- helpers ----------------------------------------------------------------------

    def _check(self, server: SimServer) -> None:
        self.checker.after_step(server)

    def _ids(self) -> list[int]:
        return sorted(self.cluster.servers)

    def _live_leader(self) -> SimServer | None:
        leader = self.cluster.leader()
        return None if leader is None else self.cluster.servers[leader]

    # -- time and messages --------------------------------------------------------------

    @rule(ms=st.integers(1, 150))
    def tick(self, ms: int) -> None:
        self.cluster.tick(ms)
        for server in self.cluster.alive():
            self._check(server)

    @rule(ms=st.sampled_from((50, 200, 500)))
    def run_promptly(self, ms: int) -> None:
        """Let time pass with every message delivered at once (elections finish)."""
        for _ in range(ms // 10):
            self.cluster.tick(10)
            while self.cluster.network.in_flight:
                src, dst, msg = self.cluster.network.take(0)
                self.cluster.receive(src, dst, msg)
                self._check(self.cluster.servers[dst])
            for server in self.cluster.alive():
                self._check(server)

    @precondition(lambda self: bool(self.cluster.network.in_flight))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        network = self.cluster.network
        i = data.draw(st.integers(0, len(network.in_flight) - 1), label="message")
        src, dst, msg = network.take(i)
        self.cluster.receive(src, dst, msg)
        self._check(self.cluster.servers[dst])

    @precondition(lambda self: bool(self.cluster.network.in_flight))
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        network = self.cluster.network
        network.drop(data.draw(st.integers(0, len(network.in_flight) - 1), label="message"))

    @precondition(lambda self: bool(self.cluster.network.in_flight))
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        network = self.cluster.network
        network.duplicate(data.draw(st.integers(0, len(network.in_flight) - 1), label="message"))

    @rule(data=st.data(), one_way=st.booleans())
    def partition(self, data: st.DataObject, one_way: bool) -> None:
        ids = self._ids()
        side = data.draw(st.sets(st.sampled_from(ids), min_size=1, max_size=len(ids) - 1))
        self.cluster.network.partition(side, set(ids) - side, one_way=one_way)

    @rule()
    def heal(self) -> None:
        self.cluster.network.heal()

    # -- clients and membership ------------------------------------------------------------

    @rule(count=st.integers(1, 4))
    def propose(self, count: int) -> None:
        leader = self._live_leader()
        if leader is None:
            return
        ids = list(range(self.next_id, self.next_id + count))
        try:
            leader.raft.recv_entries([b"v%d" % i for i in ids], ids=ids)
        except NotLeader:
            return
        self.next_id += count
        self.cluster.process(leader.id)
        self._check(leader)

    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        """Leadership transfer (thesis §3.10) to any server, racing with the rest."""
        leader = self._live_leader()
        if leader is None:
            return
        to = data.draw(st.sampled_from(self._ids()))
        try:
            leader.raft.transfer_leadership(to)
        except (NotLeader, TransferError):
            return
        self.cluster.process(leader.id)
        self._check(leader)

    @rule(kind=st.sampled_from(("add", "promote", "remove")), data=st.data())
    def change_membership(self, kind: str, data: st.DataObject) -> None:
        leader = self._live_leader()
        if leader is None:
            return
        raft = leader.raft
        members = raft.membership().nodes
        try:
            if kind == "add":
                if len(members) >= 7:
                    return
                node_id = self.next_server
                raft.propose_membership(EntryType.ADD_NONVOTING_NODE, node_id)
                self.next_server += 1
                self.checker.track(self.cluster.add_server(node_id))
            else:
                pool = [n.node_id for n in members if (kind == "remove" or not n.voting)]
                if not pool:
                    return
                node_id = data.draw(st.sampled_from(pool), label="node")
                entry_kind = EntryType.ADD_NODE if kind == "promote" else EntryType.REMOVE_NODE
                raft.propose_membership(entry_kind, node_id)
        except LeaderNotReady:
            # A new leader refuses voting changes until an entry of its term
            # commits (Ongaro, raft-dev 2015); check the refusal was due.
            assert raft.log.term_at(raft.commit_index) != raft.term
            return
        except (NotLeader, OneVotingChangeOnly, MembershipError, NodeUnknown):
            # With LeaderNotReady, every refusal propose_membership documents
            # (its Raises): a client asking at the wrong moment is refused,
            # and the program goes on. Anything else escaping is a bug.
            return
        self.cluster.process(leader.id)
        self._check(leader)

    # -- storage and crashes ---------------------------------------------------------------

    @rule(data=st.data(), keep=st.sampled_from((0, 0, 1, 3)))
    def compact(self, data: st.DataObject, keep: int) -> None:
        live = self.cluster.alive()
        if not live:
            return
        server = data.draw(st.sampled_from(live), label="server")
        if self.cluster.take_snapshot(server.id, keep_entries=keep) is not None:
            self._check(server)

    @rule(data=st.data(), inside_ready=st.booleans())
    def crash(self, data: st.DataObject, inside_ready: bool) -> None:
        live = self.cluster.alive()
        if not live:
            return
        server = data.draw(st.sampled_from(live), label="server")
        if inside_ready:
            self.cluster.crash_in_ready(server.id)
        else:
            self.cluster.crash(server.id)

    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        down = [s for _, s in sorted(self.cluster.servers.items()) if not s.alive]
        if not down:
            return
        server = data.draw(st.sampled_from(down), label="server")
        self.cluster.restart(server.id)
        self.cluster.process(server.id)
        self._check(server)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def every_invariant_holds(self) -> None:
        self.checker.check_all(self.cluster.servers.values())


TestClusterMachine = ClusterMachine.TestCase
TestClusterMachine = pytest.mark.timeout(300)(TestClusterMachine)


class _Chosen:
    """Stands in for Hypothesis's ``data`` when a rule is called by hand: every
    draw returns the value given."""

    def __init__(self, value: object) -> None:
        self.value = value

    def draw(self, strategy: object, label: object = None) -> object:
        return self.value


@pytest.mark.timeout(60)
def test_change_membership_rule_handles_a_leader_not_ready() -> None:
    """Issue 10 bug 10: the rule let ``LeaderNotReady`` escape, so Hypothesis,
    on the rare program that elects a leader and removes a node before the
    leader's no-op commits, failed the suite on unchanged code. Built by hand
    here: (pre-)votes are delivered, the new leader's AppendEntries are not."""
    machine = ClusterMachine()
    machine.setup(size=3, seed=0)
    cluster = machine.cluster
    for _ in range(100):
        cluster.tick(10)
        for k in reversed(range(len(cluster.network.in_flight))):
            src, dst, msg = cluster.network.take(k)
            if isinstance(msg, PreVote | PreVoteResponse | RequestVote | RequestVoteResponse):
                cluster.receive(src, dst, msg)
        if cluster.leader() is not None:
            break
    leader = cluster.leader()
    assert leader is not None
    raft = cluster[leader]
    assert raft.commit_index < raft.current_index  # its no-op is not committed
    victim = next(i for i in sorted(cluster.servers) if i != leader)
    machine.change_membership(kind="remove", data=_Chosen(victim))  # type: ignore[arg-type]
    machine.every_invariant_holds()
    assert victim in {n.node_id for n in raft.membership().nodes}  # refused, not proposed
    machine.teardown()
