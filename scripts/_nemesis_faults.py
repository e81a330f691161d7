"""The faults of scripts/nemesis: what each kind does to a running cluster, and its undoing.

:class:`Faults` is mixed into the nemesis's ``Run``; each ``fault_*`` method
runs in its own thread, injects one fault, waits, undoes it, and reports both
through ``self.event``. It relies on the state ``Run`` keeps: ``members``,
``down``, ``paused``, ``busy``, ``removing``, ``retired``, the network state
pushed to every node through ``/faults`` (``set_network``), and the helpers
``leader``, ``status``, ``reserve``, ``release``, ``kill`` and ``restart``.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import time
from typing import Any

from traft.kv.client import Client, ClientError
from traft.kv.localcluster import ClusterError

FAULTS: dict[str, tuple[str, str]] = {
    "kill": ("process", "SIGKILL one random node, restart it 0.3-3 s later"),
    "kill-leader": ("process", "SIGKILL the leader, restart it 0.3-3 s later"),
    "kill-minority": ("process", "SIGKILL a minority of nodes together, restart them"),
    "kill-all": ("process", "SIGKILL every node, restart them all"),
    "pause": ("process", "SIGSTOP a follower for 0.5-4 s, then SIGCONT"),
    "pause-leader": ("process", "SIGSTOP the leader for 0.5-4 s (an election), then SIGCONT"),
    "pause-lease-leader": (
        "process",
        "SIGSTOP the leader for 1.5-6 election timeouts, longer than its lease, while the "
        "others elect a new leader; SIGCONT: its queued reads must not be stale",
    ),
    "rolling-restart": (
        "process",
        "SIGTERM every node one by one, the leader last (it hands leadership over), "
        "restarting each and waiting for it to catch up",
    ),
    "transfer": ("leadership", "ask the leader to hand leadership to a random follower"),
    "partition-leader": ("partition", "cut the leader off from every other node; heal"),
    "partition-half": ("partition", "split into a random minority and majority; heal"),
    "partition-oneway": ("partition", "the leader's datagrams to the others are lost, not theirs"),
    "partition-ring": ("partition", "each node hears only its ring neighbours; heal"),
    "snapshot": (
        "partition",
        "cut a follower off until the leader compacts past it; heal: it catches up by snapshot",
    ),
    "drop": ("network", "lose 5-30% of datagrams on every node"),
    "dup": ("network", "duplicate 10-40% of datagrams"),
    "reorder": ("network", "reorder 10-40% of datagrams"),
    "delay": ("network", "delay every datagram by a few to 60 ms"),
    "member-add": ("membership", "add a new node under load, later remove a follower"),
    "member-remove": ("membership", "remove a follower under load, then add a fresh node"),
    "member-remove-leader": (
        "membership",
        "remove the leader under load (it steps down), then add a fresh node",
    ),
}


class Faults:
    """Fault injection for ``Run`` (see the module docstring)."""

    # Provided by Run.
    args: Any
    cluster: Any
    lock: Any
    members: set[int]
    down: set[int]
    paused: set[int]
    busy: set[int]
    removing: set[int]
    retired: set[int]
    all_ids: set[int]
    url_of: dict[int, str]
    stop_faults: Any
    violations: list[str]

    # --- faults ---------------------------------------------------------------------

    def wait(self, seconds: float) -> None:
        self.stop_faults.wait(seconds)

    def fault(self, kind: str, rng: random.Random) -> None:
        """Inject one fault of ``kind`` and undo it; runs in its own thread."""
        try:
            if kind.startswith("kill"):
                self.fault_kill(kind, rng)
            elif kind == "rolling-restart":
                self.fault_rolling(kind)
            elif kind == "transfer":
                self.fault_transfer(kind, rng)
            elif kind.startswith("pause"):
                self.fault_pause(kind, rng)
            elif kind.startswith("partition"):
                self.fault_partition(kind, rng)
            elif kind == "snapshot":
                self.fault_snapshot(rng)
            elif kind in ("drop", "dup", "reorder", "delay"):
                self.fault_network(kind, rng)
            else:
                self.fault_member(kind, rng)
        except Exception as exc:  # a harness problem: say it, keep going, fail the run
            self.event(kind, "harness error", error=f"{type(exc).__name__}: {exc}")
            with self.lock:
                self.violations.append(f"harness: fault {kind}: {type(exc).__name__}: {exc}")

    def targets(self, kind: str, rng: random.Random) -> list[int]:
        with self.lock:
            members = sorted(self.members)
        leader = self.leader()
        if kind in ("kill-leader", "pause-leader", "pause-lease-leader"):
            return self.reserve([leader] if leader else [], 1, rng)
        if kind == "pause":
            return self.reserve([i for i in members if i != leader], 1, rng)
        if kind == "kill-minority":
            return self.reserve(members, max(1, (len(members) - 1) // 2), rng)
        if kind == "kill-all":
            return self.reserve(members, len(members), rng)
        return self.reserve(members, 1, rng)

    def fault_kill(self, kind: str, rng: random.Random) -> None:
        victims = self.targets(kind, rng)
        if not victims:
            self.event(kind, "skipped", reason="no free target")
            return
        down = rng.uniform(0.3, 3.0)
        self.event(kind, "start", nodes=victims, down_s=round(down, 1))
        try:
            for v in victims:
                self.kill(v)
            self.wait(down)
        finally:
            for v in victims:
                self.restart(v)
            self.release(victims)
            self.event(kind, "stop", restarted=victims)

    def fault_pause(self, kind: str, rng: random.Random) -> None:
        victims = self.targets(kind, rng)
        if not victims:
            self.event(kind, "skipped", reason="no free target")
            return
        if kind == "pause-lease-leader":
            # Longer than any lease (less than an election timeout): the others
            # elect a new leader and take writes while this one sleeps; its
            # clients' reads are queued and answered the moment it resumes.
            length = rng.uniform(1.5, 6.0) * self.args.election_ms / 1000
        else:
            length = rng.uniform(0.5, 4.0)
        self.event(kind, "start", nodes=victims, pause_s=round(length, 2))
        try:
            with self.lock:
                self.paused.update(victims)
            for v in victims:
                self.cluster.signal(v, signal.SIGSTOP)
            self.wait(length)
        finally:
            for v in victims:
                self.cluster.signal(v, signal.SIGCONT)
            with self.lock:
                self.paused.difference_update(victims)
            self.release(victims)
            self.event(kind, "stop", resumed=victims)

    def fault_rolling(self, kind: str) -> None:
        """scripts/cluster restart --rolling under load: one SIGTERM per node, the
        leader last; a node that does not exit 0 on SIGTERM is a violation."""
        leader = self.leader()
        with self.lock:
            members = sorted(self.members)
            held = self.busy | self.down | self.paused | self.removing
            if leader is None or set(members) & held:
                free = False
            else:
                free = True
                self.busy.update(members)
        if not free:
            self.event(kind, "skipped", reason="no leader, or a node is held by another fault")
            return
        order = [i for i in members if i != leader] + [leader]
        self.event(kind, "start", order=order)
        try:
            for node_id in order:
                if self.stop_faults.is_set():
                    break
                # A node another fault just restarted may still be importing
                # Python: a SIGTERM before traft serve installs its handler ends
                # it by the signal. An operator restarts running nodes: wait.
                try:
                    self.cluster.wait_up(20, ids=[node_id])
                    was_up = True
                except ClusterError:
                    was_up = False
                was_leader = self.leader() == node_id
                with self.lock:
                    self.down.add(node_id)
                start = time.monotonic()
                status = self.cluster.stop(node_id, 15.0)
                stopped_ms = round((time.monotonic() - start) * 1000)
                if status not in (0, None) and was_up:
                    with self.lock:
                        self.violations.append(
                            f"node {node_id} exited with status {status} on one SIGTERM; "
                            f"see {self.cluster.log_path(node_id)}"
                        )
                self.restart(node_id)
                caught_up = True
                try:
                    self.cluster.wait_up(20, ids=[node_id])
                    self.cluster.wait_caught_up(node_id, 20)
                except ClusterError:
                    caught_up = False  # another fault may hold the cluster back: go on
                self.event(
                    kind,
                    "restarted",
                    node=node_id,
                    was_leader=was_leader,
                    exit_status=status,
                    stop_ms=stopped_ms,
                    caught_up=caught_up,
                )
        finally:
            self.release(members)
            self.event(kind, "stop")

    def fault_transfer(self, kind: str, rng: random.Random) -> None:
        leader = self.leader()
        with self.lock:
            followers = [i for i in sorted(self.members - self.down - self.paused) if i != leader]
        if leader is None or not followers:
            self.event(kind, "skipped", reason="no leader or no live follower")
            return
        target = rng.choice(followers)
        self.event(kind, "start", leader=leader, to=target)
        try:
            reply = Client([self.url_of[leader]], timeout=5.0).request(
                "POST", "/leader", json.dumps({"id": target}).encode(), retry_for=0
            )
            result: Any = reply.json() if reply.status == 200 else reply.error
            self.event(kind, "stop", status=reply.status, result=result)
        except ClientError as exc:
            self.event(kind, "stop", error=str(exc)[:160])

    def fault_partition(self, kind: str, rng: random.Random) -> None:
        with self.lock:
            nodes = sorted(self.members | self.removing)
        leader = self.leader() or rng.choice(nodes)
        blocked: set[tuple[int, int]] = set()
        others = [i for i in nodes if i != leader]
        if kind == "partition-leader":
            groups: Any = [[leader], others]
            blocked = {(a, b) for a in [leader] for b in others}
            blocked |= {(b, a) for a, b in blocked}
        elif kind == "partition-oneway":
            groups = [[leader], others]
            blocked = {(leader, b) for b in others}
        elif kind == "partition-half":
            minority = rng.sample(nodes, max(1, (len(nodes) - 1) // 2))
            groups = [minority, [i for i in nodes if i not in minority]]
            blocked = {(a, b) for a in groups[0] for b in groups[1]}
            blocked |= {(b, a) for a, b in blocked}
        else:  # ring: each node keeps its two neighbours (in a random order)
            ring = rng.sample(nodes, len(nodes))
            n = len(ring)
            links = {frozenset((ring[i], ring[(i + 1) % n])) for i in range(n)}
            if n == 3:  # a ring of three is a full mesh: cut one side instead
                links.discard(frozenset((ring[0], ring[1])))
            blocked = {(a, b) for a in nodes for b in nodes if a != b}
            blocked -= {(a, b) for a, b in blocked if frozenset((a, b)) in links}
            groups = ring
        length = rng.uniform(1.0, 5.0)
        self.event(kind, "start", groups=groups, length_s=round(length, 1))
        self.set_network(blocked=blocked)
        try:
            self.wait(length)
        finally:
            self.set_network(blocked=set())
            self.event(kind, "heal")

    def fault_snapshot(self, rng: random.Random) -> None:
        kind = "snapshot"
        leader = self.leader()
        with self.lock:
            followers = [i for i in sorted(self.members) if i != leader]
        chosen = self.reserve(followers, 1, rng)
        if leader is None or not chosen:
            self.event(kind, "skipped", reason="no leader or no free follower")
            return
        f = chosen[0]
        try:
            before = self.status(f, timeout=1.0) or {}
            last = int(before.get("log", {}).get("last", 0))
            with self.lock:
                nodes = sorted(self.members | self.removing)
            blocked = {(f, b) for b in nodes if b != f} | {(b, f) for b in nodes if b != f}
            self.event(kind, "start", follower=f, its_last_index=last)
            self.set_network(blocked=blocked)
            deadline = time.monotonic() + 20.0
            compacted = None
            while time.monotonic() < deadline and not self.stop_faults.is_set():
                self.wait(0.5)
                lead = self.leader()
                s = self.status(lead) if lead else None
                if s and s.get("log", {}).get("first", 0) > last + 1:
                    compacted = s["log"]["first"]
                    break
            self.set_network(blocked=set())
            if compacted is None:
                self.event(kind, "heal", note="the leader did not compact past it in time")
                return
            self.event(kind, "heal", leader_log_starts_at=compacted)
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline and not self.stop_faults.is_set():
                s = self.status(f) or {}
                snap = s.get("snapshot") or {}
                if snap.get("index", 0) > last:
                    self.event(kind, "caught up by snapshot", follower=f, snapshot=snap["index"])
                    return
                self.wait(0.5)
            self.event(kind, "not yet caught up by snapshot", follower=f)
        finally:
            self.set_network(blocked=set())
            self.release(chosen)

    def fault_network(self, kind: str, rng: random.Random) -> None:
        if kind == "drop":
            quality: dict[str, Any] = {"drop": round(rng.uniform(0.05, 0.3), 2)}
        elif kind == "dup":
            quality = {"dupe": round(rng.uniform(0.1, 0.4), 2)}
        elif kind == "reorder":
            quality = {"reorder": round(rng.uniform(0.1, 0.4), 2)}
        else:
            lo = rng.uniform(0, 10)
            quality = {"delay_ms": [round(lo, 1), round(lo + rng.uniform(5, 50), 1)]}
        length = rng.uniform(2.0, 6.0)
        self.event(kind, "start", length_s=round(length, 1), **quality)
        self.set_network(quality=quality)
        try:
            self.wait(length)
        finally:
            self.set_network(quality={})
            self.event(kind, "stop")

    # --- membership -------------------------------------------------------------------

    def member_request(self, method: str, path: str, body: bytes | None) -> tuple[int, str]:
        client = Client(self.urls(), timeout=35.0, retry_for=40.0, retry_unreachable=True)
        try:
            reply = client.request(method, path, body)
        except ClientError as exc:
            return 0, str(exc)
        return reply.status, reply.error if reply.status != 200 else "ok"

    def leader_members(self) -> set[int] | None:
        leader = self.leader()
        s = self.status(leader, timeout=1.0) if leader else None
        return {int(m["id"]) for m in s["members"]} if s else None

    def reconcile_members(self, why: str) -> set[int] | None:
        """Take the leader's member list as the truth: stop running nodes it lacks.

        A node whose removal committed while it was cut off, or whose addition
        never committed, is no member; it may never learn so and keeps running.
        """
        truth = None
        deadline = time.monotonic() + 15
        while truth is None and time.monotonic() < deadline:
            truth = self.leader_members()
            if truth is None:
                time.sleep(0.3)
        if truth is None:
            return None
        with self.lock:
            strays = sorted(self.members - truth)
            self.members -= set(strays)
            self.retired.update(strays)
            self.members |= truth - self.retired
        for node_id in strays:
            self.say(f"   node {node_id} is no member ({why}); stopping it")
            self.cluster.stop(node_id)
        return truth

    def add_node(self, kind: str) -> None:
        with self.lock:
            new_id = max(self.all_ids) + 1
            member = self.cluster.add_to_config(new_id)
            self.url_of[new_id] = member.url
            self.all_ids.add(new_id)
        self.cluster.start(new_id)
        self.event(kind, "adding", node=new_id)
        with contextlib.suppress(ClusterError):
            self.cluster.wait_up(20, ids=[new_id])
        with self.lock:
            self.members.add(new_id)  # it runs; watched from now on
            self.busy.add(new_id)
        body = json.dumps(
            {
                "id": new_id,
                "peer": f"{member.peer[0]}:{member.peer[1]}",
                "http": f"{member.http[0]}:{member.http[1]}",
            }
        ).encode()
        status, message = self.member_request("POST", "/members", body)
        self.event(kind, "added" if status == 200 else "add answered", node=new_id, status=status)
        if status != 200:
            self.say(f"   {message[:160]}")
            self.reconcile_members("its addition did not commit")

    def remove_node(self, kind: str, victim: int) -> None:
        with self.lock:
            self.removing.add(victim)
        self.event(kind, "removing", node=victim)
        status, message = self.member_request("DELETE", f"/members/{victim}", None)
        if status == 200:
            with self.lock:
                self.members.discard(victim)
                self.retired.add(victim)
            self.event(kind, "removed", node=victim)
            if not self.cluster.wait_exit(victim, 10):
                self.say(f"   node {victim} still runs 10 s after its removal; stopping it")
                self.cluster.stop(victim)
        else:
            self.event(kind, "remove answered", node=victim, status=status, error=message[:160])
            self.reconcile_members("its removal committed")
        with self.lock:
            self.removing.discard(victim)

    def fault_member(self, kind: str, rng: random.Random) -> None:
        leader = self.leader()
        if leader is None:
            self.event(kind, "skipped", reason="no leader")
            return
        with self.lock:
            followers = [i for i in sorted(self.members) if i != leader]
        if kind == "member-remove-leader":
            victims = self.reserve([leader], 1, rng)
        elif kind == "member-remove":
            victims = self.reserve(followers, 1, rng)
        else:
            victims = []
        if kind != "member-add" and not victims:
            self.event(kind, "skipped", reason="no free target")
            return
        self.event(kind, "start")
        try:
            if kind == "member-add":
                self.add_node(kind)
                self.wait(rng.uniform(1.0, 4.0))
                leader = self.leader()
                with self.lock:
                    followers = [i for i in sorted(self.members) if i != leader]
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not victims and not self.stop_faults.is_set():
                    leader = self.leader()
                    with self.lock:
                        followers = [i for i in sorted(self.members) if i != leader]
                    victims = self.reserve(followers, 1, rng) if leader else []
                    if not victims:
                        self.wait(0.5)
                if victims:
                    self.remove_node(kind, victims[0])
                else:
                    self.say("   no follower free to remove; the cluster keeps one node more")
            else:
                self.remove_node(kind, victims[0])
                self.wait(rng.uniform(0.5, 2.0))
                self.add_node(kind)
        finally:
            self.release(victims)
            with self.lock:
                self.busy.difference_update(self.members)  # the new node is free too
            self.event(kind, "stop")
