#!/usr/bin/env python3
"""A 3-node in-memory cluster driven through the pure core.

Prints the election, a few commits, then kills the leader and shows a new
one taking over and the old one catching up after restart. Everything runs
in virtual time inside this process: no sockets, no disk.
"""

from __future__ import annotations

import sys

from traft.core import LeaderChanged, Role
from traft.sim import Cluster


def main() -> int:
    cluster = Cluster([1, 2, 3], seed=2026)

    def show(server, rd):  # type: ignore[no-untyped-def]
        for event in rd.events:
            if isinstance(event, LeaderChanged) and event.leader_id == server.id:
                print(
                    f"[{cluster.now_ms:>6} ms] node {server.id} elected leader of term {event.term}"
                )
        if rd.committed and server.raft.role is Role.LEADER:
            data = [e.data.decode() for e in rd.committed if e.data]
            if data:
                print(f"[{cluster.now_ms:>6} ms] node {server.id} committed {data}")

    cluster.observers.append(show)
    leader = cluster.elect()
    for word in ("alpha", "beta", "gamma"):
        cluster.propose(word.encode())
    cluster.run(300)

    print(f"[{cluster.now_ms:>6} ms] killing leader {leader}")
    cluster.crash(leader)
    new = cluster.elect()
    assert new != leader
    for word in ("delta", "epsilon"):
        cluster.propose(word.encode())
    cluster.run(300)

    print(f"[{cluster.now_ms:>6} ms] restarting node {leader} from its disk")
    cluster.restart(leader)
    cluster.run(1000)
    print()
    for server in cluster.alive():
        raft = server.raft
        print(
            f"node {server.id}: {raft.role.value:9} term {raft.term} "
            f"commit {raft.commit_index} applied {raft.last_applied} state {server.state:#018x}"
        )
    states = {s.state for s in cluster.alive()}
    print("\nall nodes agree" if len(states) == 1 else "\nNODES DISAGREE")
    return 0 if len(states) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
