"""A Hypothesis state machine over a 3-5 server cluster: random delivery, drops,
duplicates and partitions, leadership transfers and reads on any server;
election safety and log matching after every step."""

from __future__ import annotations

import contextlib

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from traft.core import NotLeader, RaftError, Role
from traft.sim import Cluster


class ClusterMachine(RuleBasedStateMachine):
    cluster: Cluster

    @initialize(n=st.integers(3, 5), seed=st.integers(0, 2**32))
    def start(self, n: int, seed: int) -> None:
        self.cluster = Cluster(range(1, n + 1), seed=seed)
        self.ids = list(range(1, n + 1))
        self.leaders: dict[int, int] = {}
        self.committed: dict[int, tuple[int, int]] = {}

    @rule(ms=st.sampled_from([10, 50, 200, 1000]))
    def tick(self, ms: int) -> None:
        self.cluster.tick(ms)

    @precondition(lambda self: bool(self.cluster.network.in_flight))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.cluster.network.in_flight) - 1))
        self.cluster.deliver(i)

    @precondition(lambda self: bool(self.cluster.network.in_flight))
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.cluster.network.in_flight) - 1))
        self.cluster.network.drop(i)

    @precondition(lambda self: bool(self.cluster.network.in_flight))
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.cluster.network.in_flight) - 1))
        self.cluster.network.duplicate(i)

    @rule(data=st.data(), one_way=st.booleans())
    def partition(self, data: st.DataObject, one_way: bool) -> None:
        side = data.draw(st.sets(st.sampled_from(self.ids), min_size=1, max_size=len(self.ids) - 1))
        self.cluster.network.partition(side, set(self.ids) - side, one_way=one_way)

    @rule()
    def heal(self) -> None:
        self.cluster.network.heal()

    @rule(data=st.binary(max_size=8))
    def propose(self, data: bytes) -> None:
        leader = self.cluster.leader()
        if leader is not None:
            with contextlib.suppress(NotLeader):
                self.cluster.propose(data)

    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        leader = self.cluster.leader()
        if leader is not None:
            to = data.draw(st.sampled_from(self.ids))
            with contextlib.suppress(RaftError):  # NotLeader, TransferError
                self.cluster[leader].transfer_leadership(to)
            self.cluster.process(leader)

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        node_id = data.draw(st.sampled_from(self.ids))
        with contextlib.suppress(RaftError):  # NotLeader, LeaderNotReady
            self.cluster[node_id].read_index(object())
        self.cluster.process(node_id)

    @rule()
    def settle(self) -> None:
        self.cluster.settle()

    @invariant()
    def election_safety(self) -> None:
        for server in self.cluster.servers.values():
            raft = server.raft
            if raft.role is Role.LEADER:
                other = self.leaders.setdefault(raft.term, raft.id)
                assert other == raft.id, f"two leaders in term {raft.term}: {other}, {raft.id}"

    @invariant()
    def log_matching(self) -> None:
        servers = list(self.cluster.servers.values())
        for a in servers:
            for b in servers:
                if a.id >= b.id:
                    continue
                la, lb = a.raft.log, b.raft.log
                hi = min(la.last_index, lb.last_index)
                lo = max(la.first_index, lb.first_index)
                # Find the highest common index with equal terms; all before must match.
                for index in range(hi, lo - 1, -1):
                    if la.term_at(index) == lb.term_at(index):
                        for k in range(lo, index + 1):
                            assert la.get(k) == lb.get(k), f"logs differ at {k} below {index}"
                        break

    @invariant()
    def committed_entries_never_change(self) -> None:
        for server in self.cluster.servers.values():
            raft = server.raft
            for index in range(
                max(raft.first_index, raft.commit_index - 20), raft.commit_index + 1
            ):
                e = raft.log.get(index)
                if e is None:
                    continue
                seen = self.committed.setdefault(index, (e.term, e.id))
                assert seen == (e.term, e.id), f"committed entry {index} changed"


TestCluster = ClusterMachine.TestCase
