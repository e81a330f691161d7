"""Bad input against a live 3-node cluster (with a cluster key) under a load of writes.

Datagrams, thousands of each kind, sent to every node's peer port: random bytes,
truncated and oversized datagrams, valid envelopes whose payloads hold wrong field
types, huge or negative numbers and absurd array counts, another cluster's id, a
wrong or missing HMAC tag, and well-formed messages of an earlier term (what a
replay of an old capture delivers). HTTP: invalid keys, huge bodies, bad query
parameters and headers, wrong methods, garbage requests and slow clients.

Each time: no node crashes, the load's acknowledged writes all read back, tickets
stay unique, the nodes converge, and every drop is counted by its reason in
/metrics (``traft_datagrams_dropped_in{reason}`` for the envelope's checks,
``traft_malformed`` for payloads that are not messages); HTTP answers 4xx.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families

import net
from traft import wire
from traft.core import AppendEntries, Entry, EntryType, RequestVote
from traft.kv.client import Client, ClientError
from traft.kv.localcluster import LocalCluster
from traft.node.config import SnapshotPolicy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KEY = b"bad-input-test-key"
EACH = 1000  # datagrams of each kind, spread over the nodes


class Load:
    """Two client threads writing keys and taking tickets until stopped."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.stop = threading.Event()
        self.puts: dict[str, bytes] = {}
        self.tickets: list[int] = []
        self.threads = [threading.Thread(target=self.work, args=(w,)) for w in range(2)]

    def work(self, worker: int) -> None:
        client = self.cluster.client(timeout=5.0, retry_for=30.0)
        n = 0
        while not self.stop.is_set():
            n += 1
            key = f"load-{worker}-{n}"
            try:
                if n % 4:
                    reply = client.request(
                        "PUT", f"/kv/{key}", key.encode(), idempotency_key=uuid.uuid4().hex
                    )
                    if reply.status == 200:
                        self.puts[key] = key.encode()
                else:
                    reply = client.request("POST", "/ticket", idempotency_key=uuid.uuid4().hex)
                    if reply.status == 200:
                        self.tickets.append(reply.json()["ticket"])
            except ClientError:
                pass

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("bad") / "c"
    c = LocalCluster.create(
        root,
        3,
        cluster_id="bad-input",
        key=KEY,
        snapshot=SnapshotPolicy(entries=300, bytes=2**20, keep_entries=50),
    )
    c.start_all()
    try:
        c.wait_for_leader(30)
        yield c
    finally:
        c.stop_all()


def metrics(cluster: LocalCluster, node_id: int) -> dict[tuple[str, str], float]:
    """``(sample name, reason or route/status)`` -> value from a node's /metrics."""
    # A node just restarted may not listen yet: keep trying for a while.
    client = Client([cluster.url(node_id)], retry_unreachable=True)
    reply = client.request("GET", "/metrics", retry_for=10)
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for s in family.samples:
            label = s.labels.get("reason") or s.labels.get("status", "")
            out[(s.name, label)] = out.get((s.name, label), 0.0) + s.value
    return out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def check_safety(cluster: LocalCluster, load: Load) -> None:
    """Every node runs, acknowledged writes read back, tickets unique, convergence."""
    for node_id in cluster.ids:
        assert cluster.pid(node_id) is not None, cluster.log_path(node_id).read_text()[-3000:]
    cluster.wait_converged(timeout=60)
    client = cluster.client(retry_for=30)
    for key, value in list(load.puts.items())[:: max(1, len(load.puts) // 200)]:
        reply = client.request("GET", f"/kv/{key}")
        assert reply.status == 200 and reply.body == value, key
    assert len(set(load.tickets)) == len(load.tickets)
    assert load.puts, "the load made no progress"


def bad_payloads(rng: random.Random) -> Iterator[bytes]:
    """Payloads that msgpack may decode but that are no valid message."""
    tags = ["rv", "rvr", "ae", "aer", "snap", "x", 7, None]
    ints: list[Any] = [-1, -(2**63), 2**63, 2**64 - 1, 1.5, "1", True, None, b"1"]
    while True:
        choice = rng.randrange(6)
        if choice == 0:  # a valid shape with one field of a wrong type or range
            fields: dict[str, Any] = {
                "term": 1,
                "leader_id": 2,
                "prev_log_index": 1,
                "prev_log_term": 1,
                "entries": [],
                "leader_commit": 1,
                "seq": 1,
            }
            fields[rng.choice(sorted(fields))] = rng.choice(ints)
            yield msgpack.packb(["ae", fields])
        elif choice == 1:  # entries that are not entries
            entry: list[Any] = [1, 2, 3, 0, b"x"]
            entry[rng.randrange(5)] = rng.choice(ints)
            fields = {
                "term": 1,
                "leader_id": 2,
                "prev_log_index": 1,
                "prev_log_term": 1,
                "entries": [entry],
                "leader_commit": 1,
                "seq": 1,
            }
            yield msgpack.packb(["ae", fields])
        elif choice == 2:  # an array header claiming billions of elements, then nothing
            yield b"\x92\xa2ae\xdd\xff\xff\xff\xff" + os.urandom(rng.randrange(0, 16))
        elif choice == 3:  # a map header claiming billions of pairs
            yield b"\x92\xa2rv\xdf\x7f\xff\xff\xff"
        elif choice == 4:  # random tags and shapes
            yield msgpack.packb([rng.choice(tags), {"term": rng.choice(ints)}])
        else:  # random bytes inside a valid envelope
            yield os.urandom(rng.randrange(0, 300))


def old_messages(rng: random.Random) -> Iterator[bytes]:
    """Well-formed messages of term 1 (the cluster is past it: a replay of a capture)."""
    while True:
        if rng.random() < 0.5:
            msg: Any = RequestVote(
                term=1, candidate_id=rng.randint(1, 3), last_log_index=0, last_log_term=0
            )
        else:
            entries = tuple(
                Entry(1, 1 + k, rng.getrandbits(32), EntryType.NORMAL, os.urandom(8))
                for k in range(rng.randrange(4))
            )
            msg = AppendEntries(
                term=1,
                leader_id=rng.randint(1, 3),
                prev_log_index=0,
                prev_log_term=0,
                entries=entries,
                leader_commit=len(entries),
                seq=rng.getrandbits(16),
            )
        yield wire.encode(msg)


def test_bad_datagrams(cluster: LocalCluster) -> None:
    rng = random.Random(11)
    cid = net.cluster_id_from("bad-input")
    good = net.EnvelopeCodec(cid, key=KEY, max_datagram=60_000)
    other_cluster = net.EnvelopeCodec(net.cluster_id_from("another"), key=KEY)
    wrong_key = net.EnvelopeCodec(cid, key=b"not-the-key")
    no_key = net.EnvelopeCodec(cid)
    peers = [cluster.config.members[i].peer for i in cluster.ids]
    # Make sure the cluster is past term 1, so that term-1 messages are old.
    leader = cluster.wait_for_leader(30)
    if Client([cluster.url(leader)]).get_status(cluster.url(leader))["term"] < 2:
        cluster.kill(leader)
        cluster.wait_for_leader(30)
        cluster.start(leader)
    before = {i: metrics(cluster, i) for i in cluster.ids}
    payloads, olds = bad_payloads(rng), old_messages(rng)

    def sender() -> int:
        return rng.randint(1, 3)

    def valid() -> bytes:
        return good.encode(sender(), next(olds))

    kinds: dict[str, Any] = {
        "random bytes": lambda: os.urandom(rng.randrange(0, 200)),
        "truncated": lambda: valid()[: rng.randrange(0, 21)],
        "truncated tag": lambda: valid()[: -rng.randrange(1, 16)],
        "oversized": lambda: b"tR" + os.urandom(60_001 + rng.randrange(4000)),
        "wrong cluster": lambda: other_cluster.encode(sender(), next(olds)),
        "wrong HMAC": lambda: wrong_key.encode(sender(), next(olds)),
        "missing HMAC": lambda: no_key.encode(sender(), next(olds)),
        "bad payload": lambda: good.encode(sender(), next(payloads)),
        "old term replayed": valid,
    }
    sent = dict.fromkeys(kinds, 0)
    with Load(cluster) as load, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        time.sleep(1)
        for round_ in range(EACH // 50):
            for name, make in kinds.items():
                for _ in range(50):
                    sock.sendto(make(), peers[rng.randrange(len(peers))])
                    sent[name] += 1
                time.sleep(0.02 if name == "oversized" else 0.005)  # let the receivers keep up
            if round_ % 5 == 0:
                time.sleep(0.2)
        time.sleep(2)
    after = {i: metrics(cluster, i) for i in cluster.ids}
    check_safety(cluster, load)

    def delta(name: str, reason: str) -> float:
        return sum(
            after[i].get((name, reason), 0) - before[i].get((name, reason), 0) for i in after
        )

    counted = {
        reason: delta("traft_datagrams_dropped_in_total", reason)
        for reason in ("short", "magic", "cluster", "auth", "oversize")
    }
    counted["malformed payload"] = delta("traft_malformed_total", "")
    print(f"sent {sent}\ncounted {counted}")
    for reason, value in counted.items():
        assert value > 0, f"no datagram counted as {reason}: {counted}"
    # Wrong cluster id, wrong or missing tag: all counted (loopback may lose some).
    assert counted["cluster"] >= 0.5 * sent["wrong cluster"], counted
    assert counted["auth"] >= 0.5 * (sent["wrong HMAC"] + sent["missing HMAC"]), counted
    assert counted["malformed payload"] >= 0.5 * sent["bad payload"], counted


def raw_http(address: tuple[str, int], data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def test_bad_http(cluster: LocalCluster) -> None:
    leader = cluster.wait_for_leader(30)
    url = cluster.url(leader)
    client = Client([url], retry_for=10)
    address = cluster.config.members[leader].http
    pids = {i: cluster.pid(i) for i in cluster.ids}
    rss_before = {i: rss_kb(p) for i, p in pids.items() if p}
    cases: list[tuple[str, str, bytes | None, dict[str, str], set[int]]] = [
        ("PUT", "/kv/", b"v", {}, {400}),
        ("PUT", "/kv/a%00b", b"v", {}, {400}),
        ("PUT", "/kv/%FF%FE", b"v", {}, {400}),
        ("PUT", "/kv/" + "k" * 2000, b"v", {}, {400}),
        ("PUT", "/kv/big", b"x" * 2_000_000, {}, {413}),  # over max_command (1 MiB)
        ("PUT", "/kv/a?nonsense=1", b"v", {}, {400}),
        ("PUT", "/kv/a?prev=1&prev=2", b"v", {}, {400}),
        ("GET", "/kv/a?prev=1", None, {}, {400}),
        ("POST", "/ticket?x=1", None, {}, {400}),
        ("PUT", "/kv/a", b"v", {"Idempotency-Key": "k" * 200}, {400}),
        ("PUT", "/kv/a", b"v", {"Idempotency-Key": "with space"}, {400}),
        ("PATCH", "/kv/a", b"v", {}, {405}),
        ("GET", "/ticket", None, {}, {405}),
        ("POST", "/status", None, {}, {405}),
        ("DELETE", "/members/abc", None, {}, {400}),
        ("POST", "/members", b"{not json", {}, {400}),
        ("POST", "/members", b'{"id": -1, "peer": "x", "http": "y"}', {}, {400}),
        ("GET", "/faults", None, {}, {404}),  # fault control is off without --enable-faults
        ("GET", "/nowhere", None, {}, {404}),
    ]
    with Load(cluster) as load:
        for _ in range(5):
            for method, path, body, headers, want in cases:
                reply = client.request(method, path, body, headers=headers)
                assert reply.status in want, (method, path, reply.status, reply.body[:200])
        # Garbage and lying requests on raw sockets: an error answer or a closed socket.
        garbage = [
            b"HELLO\r\n\r\n",
            os.urandom(3000),
            b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\nabc",
            b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            b"GET /kv/a HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"y" * 200_000 + b"\r\n\r\n",
        ]
        for data in garbage * 3:
            answer = raw_http(address, data, timeout=2.0)
            assert answer == b"" or answer.split(b" ", 2)[1][:1] == b"4", answer[:200]
        # Slow clients: many connections that send half a request and wait.
        slow = []
        for _ in range(50):
            s = socket.create_connection(address, timeout=5)
            s.sendall(b"PUT /kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            slow.append(s)
        progress = len(load.puts)
        deadline = time.monotonic() + 30
        while len(load.puts) < progress + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(load.puts) >= progress + 20, "slow clients stalled the service"
        for s in slow:
            s.close()
    check_safety(cluster, load)
    errors = metrics(cluster, leader).get(("traft_http_requests_total", "500"), 0)
    assert errors == 0
    for node_id, before in rss_before.items():
        pid = cluster.pid(node_id)
        assert pid == pids[node_id], f"node {node_id} restarted"
        grown_mb = (rss_kb(pid) - before) / 1024
        assert grown_mb < 100, f"node {node_id} grew by {grown_mb:.0f} MB"
