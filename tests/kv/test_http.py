"""The HTTP API against a fake node: every row of the table and every error case."""

from __future__ import annotations

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.kv.asgi import call
from tests.kv.fakenode import FakeNode
from traft.kv.commands import MAX_KEY_BYTES, Command, NextTicket, encode_command
from traft.kv.http import KVApp
from traft.node.errors import (
    LeadershipTransferring,
    MemberChangeError,
    NodeStopped,
    ProposalLost,
    ProposalTimeout,
    TransferFailed,
)

pytestmark = pytest.mark.timeout(10)


def make(max_command_bytes: int = 2000) -> tuple[KVApp, FakeNode]:
    node = FakeNode()
    return KVApp(node, node.store, max_command_bytes=max_command_bytes), node


async def test_put_get_delete() -> None:
    app, _ = make()
    r = await call(app, "PUT", "/kv/a", b"hello")
    assert r.status == 200 and r.json() == {"index": 1}
    r = await call(app, "GET", "/kv/a")
    assert r.status == 200 and r.body == b"hello"
    assert r.headers["content-type"] == "application/octet-stream"
    r = await call(app, "DELETE", "/kv/a")
    assert r.status == 200 and r.json() == {"index": 2, "deleted": True}
    r = await call(app, "GET", "/kv/a")
    assert r.status == 404 and r.json()["error"] == "no such key"
    r = await call(app, "DELETE", "/kv/a")
    assert r.status == 200 and r.json() == {"index": 3, "deleted": False}


async def test_head_has_no_body() -> None:
    app, _ = make()
    await call(app, "PUT", "/kv/a", b"hello")
    r = await call(app, "HEAD", "/kv/a")
    assert r.status == 200 and r.body == b"" and r.headers["content-length"] == "5"


async def test_compare_and_set() -> None:
    app, node = make()
    assert (await call(app, "PUT", "/kv/a?prev=x", b"1")).status == 412  # absent
    await call(app, "PUT", "/kv/a", b"1")
    r = await call(app, "PUT", "/kv/a?prev=2", b"3")
    assert r.status == 412 and r.json()["exists"] is True and "index" in r.json()
    assert (await call(app, "PUT", "/kv/a?prev=1", b"3")).status == 200
    assert node.store.get("a") == b"3"
    # prev is percent-decoded to bytes: binary values can be compared too.
    await call(app, "PUT", "/kv/b", b"\xff a")
    assert (await call(app, "PUT", "/kv/b?prev=%FF+a", b"ok")).status == 200
    assert (await call(app, "DELETE", "/kv/b?prev=nope")).status == 412
    assert (await call(app, "DELETE", "/kv/b?prev=ok")).status == 200


async def test_keys_with_slashes_and_escapes() -> None:
    app, node = make()
    assert (await call(app, "PUT", "/kv/a/b%20c%2Fd", b"v")).status == 200
    assert node.store.get("a/b c/d") == b"v"
    assert (await call(app, "GET", "/kv/a/b%20c/d")).body == b"v"
    assert (await call(app, "PUT", "/kv/%C3%A9", b"e")).status == 200
    assert node.store.get("é") == b"e"


async def test_ticket() -> None:
    app, _ = make()
    tickets = [(await call(app, "POST", "/ticket")).json()["ticket"] for _ in range(3)]
    assert tickets == [1, 2, 3]


async def test_idempotency_key_applies_once() -> None:
    app, node = make()
    first = await call(app, "POST", "/ticket", headers={"Idempotency-Key": "t-1"})
    again = await call(app, "POST", "/ticket", headers={"Idempotency-Key": "t-1"})
    assert first.json() == again.json() == {"ticket": 1, "index": 1}
    assert node.store.last_ticket == 1
    await call(app, "PUT", "/kv/a", b"1", headers={"Idempotency-Key": "p-1"})
    await call(app, "PUT", "/kv/a", b"2")
    r = await call(app, "PUT", "/kv/a", b"1", headers={"Idempotency-Key": "p-1"})
    assert r.status == 200 and r.json() == {"index": 3}
    assert node.store.get("a") == b"2"  # the retry did not write again
    r = await call(app, "PUT", "/kv/a", b"other", headers={"Idempotency-Key": "p-1"})
    assert r.status == 422 and r.json()["index"] == 3


async def test_bad_idempotency_key() -> None:
    app, _ = make()
    for bad in ("", "has space", "x" * 129):
        r = await call(app, "POST", "/ticket", headers={"Idempotency-Key": bad})
        assert r.status == 400, bad


async def test_bad_keys() -> None:
    app, node = make(max_command_bytes=10_000)
    for target in ("/kv/", "/kv/a%00b", "/kv/%FF", "/kv/" + "k" * (MAX_KEY_BYTES + 1)):
        for method in ("GET", "PUT", "DELETE"):
            r = await call(app, method, target, b"v")
            assert r.status == 400, (method, target)
            assert "error" in r.json()
    assert node.submitted == []


async def test_bad_parameters() -> None:
    app, node = make()
    for method, target in [
        ("PUT", "/kv/a?prevv=1"),
        ("PUT", "/kv/a?prev=1&prev=2"),
        ("GET", "/kv/a?prev=1"),
        ("POST", "/ticket?x=1"),
        ("DELETE", "/members/2?now=1"),
    ]:
        r = await call(app, method, target, b"v")
        assert r.status == 400, target
    assert node.submitted == []


async def test_body_too_large() -> None:
    app, node = make(max_command_bytes=100)
    r = await call(app, "PUT", "/kv/a", b"x" * 101, chunk=10)
    assert r.status == 413 and "limit 100" in r.json()["error"]
    r = await call(app, "PUT", "/kv/a", b"x" * 101, headers={"Content-Length": "101"})
    assert r.status == 413
    # The body fits but the whole command (key + value + prev) does not.
    r = await call(app, "PUT", "/kv/" + "k" * 60 + "?prev=" + "p" * 30, b"x" * 40)
    assert r.status == 413
    assert node.submitted == []
    assert (await call(app, "PUT", "/kv/a", b"x" * 80)).status == 200


async def test_bad_content_length() -> None:
    app, _ = make()
    r = await call(app, "PUT", "/kv/a", b"x", headers={"Content-Length": "abc"})
    assert r.status == 400


async def test_unknown_path_and_wrong_method() -> None:
    app, _ = make()
    assert (await call(app, "GET", "/nope")).status == 404
    assert (await call(app, "GET", "/kv")).status == 404
    r = await call(app, "POST", "/kv/a")
    assert r.status == 405 and set(r.headers["allow"].split(", ")) == {
        "GET",
        "HEAD",
        "PUT",
        "DELETE",
    }
    r = await call(app, "GET", "/ticket")
    assert r.status == 405 and r.headers["allow"] == "POST"
    assert (await call(app, "PUT", "/status")).status == 405
    assert (await call(app, "POST", "/metrics")).status == 405
    assert (await call(app, "GET", "/members")).status == 405
    assert (await call(app, "PATCH", "/kv/a")).status == 405


async def test_follower_redirects_to_the_leader_same_path() -> None:
    app, node = make()
    node.role, node.leader_id, node.leader_url = "follower", 2, "http://127.0.0.2:8002"
    for method, target in [
        ("PUT", "/kv/a%2Fb?prev=x%20y"),
        ("GET", "/kv/a?leader=1"),
        ("DELETE", "/kv/a"),
        ("POST", "/ticket"),
        ("POST", "/members"),
        ("DELETE", "/members/3"),
    ]:
        body = b'{"id": 4, "peer": "127.0.0.1:7004", "http": "127.0.0.1:8004"}'
        r = await call(app, method, target, body)
        assert r.status == 307, target
        assert r.headers["location"] == "http://127.0.0.2:8002" + target
        assert r.json()["leader_id"] == 2
    r = await call(app, "POST", "/leader", b'{"id": 3}')
    assert r.status == 307 and r.headers["location"] == "http://127.0.0.2:8002/leader"
    r = await call(app, "HEAD", "/kv/a?leader=1")
    assert r.status == 307 and r.headers["location"] == "http://127.0.0.2:8002/kv/a?leader=1"
    assert node.submitted == [] and node.reads == 0 and node.transfers == []
    # Status and metrics are answered locally.
    assert (await call(app, "GET", "/status")).status == 200
    assert (await call(app, "GET", "/metrics")).status == 200


async def test_no_leader_is_503_with_retry_after() -> None:
    app, node = make()
    node.role, node.leader_id, node.leader_url = "candidate", None, None
    for method, target in [("PUT", "/kv/a"), ("GET", "/kv/a"), ("POST", "/ticket")]:
        r = await call(app, method, target, b"v")
        assert r.status == 503 and r.headers["retry-after"] == "1"
        assert "no leader" in r.json()["error"]
    # A leader known by id but without a URL is no better.
    node.leader_id = 3
    r = await call(app, "PUT", "/kv/a", b"v")
    assert r.status == 503 and "retry-after" in r.headers


async def test_lost_timed_out_and_stopping_are_503() -> None:
    app, node = make()
    node.fail_with = [ProposalLost(), ProposalTimeout(), NodeStopped()]
    for expect in ("lost", "deadline", "stopping"):
        r = await call(app, "PUT", "/kv/a", b"v", headers={"Idempotency-Key": "k"})
        assert r.status == 503 and r.headers["retry-after"] == "1"
        assert expect in r.json()["error"]
    # The same key now goes through, once.
    r = await call(app, "PUT", "/kv/a", b"v", headers={"Idempotency-Key": "k"})
    assert r.status == 200


async def test_unexpected_errors_are_500_json() -> None:
    app, node = make()
    node.fail_with = [RuntimeError("boom")]
    r = await call(app, "POST", "/ticket")
    assert r.status == 500 and r.json() == {"error": "internal"}


async def test_status_and_digest() -> None:
    app, node = make()
    await call(app, "PUT", "/kv/a", b"1")
    s = (await call(app, "GET", "/status")).json()
    assert s["id"] == 1 and s["role"] == "leader" and s["commit"] == 1
    assert s["kv"] == {"applied": 1, "keys": 1, "last_ticket": 0, "sessions": 0}
    s = (await call(app, "GET", "/status?digest=1")).json()
    assert s["kv"]["digest"] == node.store.digest()


async def test_metrics_count_requests_by_status() -> None:
    app, node = make()
    await call(app, "PUT", "/kv/a", b"1")
    await call(app, "GET", "/kv/missing")
    await call(app, "GET", "/kv/missing")
    r = await call(app, "GET", "/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.body.decode())
        for s in family.samples
    }
    key = ("traft_http_requests_total", (("method", "GET"), ("route", "kv"), ("status", "404")))
    assert samples[key] == 2
    assert samples[("traft_commits_total", ())] == 1  # the node's own metrics are there too


async def test_members_add_and_remove() -> None:
    app, node = make()
    body = b'{"id": 4, "peer": "127.0.0.1:7004", "http": "127.0.0.1:8004"}'
    r = await call(app, "POST", "/members", body)
    assert r.status == 200 and r.json()["added"] == 4
    assert 4 in node.members
    r = await call(app, "DELETE", "/members/4")
    assert r.status == 200 and r.json()["removed"] == 4
    assert 4 not in node.members
    node.fail_with = [MemberChangeError("one change at a time")]
    r = await call(app, "DELETE", "/members/1")
    assert r.status == 409 and "one change at a time" in r.json()["error"]


async def test_members_bad_requests() -> None:
    app, _ = make()
    for body in (
        b"not json",
        b"[]",
        b'{"id": 4}',
        b'{"id": "4", "peer": "127.0.0.1:7004", "http": "127.0.0.1:8004"}',
        b'{"id": 0, "peer": "127.0.0.1:7004", "http": "127.0.0.1:8004"}',
        b'{"id": 4, "peer": "nowhere", "http": "127.0.0.1:8004"}',
        b'{"id": 4, "peer": "127.0.0.1:7004", "http": "127.0.0.1:8004", "x": 1}',
    ):
        r = await call(app, "POST", "/members", body)
        assert r.status == 400, body
    for target in ("/members/x", "/members/0", "/members/"):
        assert (await call(app, "DELETE", target)).status == 400


async def test_rejected_entry_is_500() -> None:
    # The store answers Rejected only to entries no proposer writes; if the
    # node ever hands one back, the client sees a 500, not a success.
    app, node = make()
    node.store.apply(1, encode_command(Command(op=NextTicket())))
    node.index = 1

    async def bad_submit(command: bytes, *, timeout: float = 5.0) -> object:
        node.index += 1
        return node.store.apply(node.index, b"junk")

    node.submit = bad_submit  # type: ignore[method-assign]
    assert (await call(app, "POST", "/ticket")).status == 500


async def test_lifespan() -> None:
    app, _ = make()
    sent = []
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, str]:
        return inbox.pop(0)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    with trio.fail_after(1):
        await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_a_follower_answers_reads_itself() -> None:
    app, node = make()
    await call(app, "PUT", "/kv/a", b"1")
    node.role, node.leader_id, node.leader_url = "follower", 2, "http://127.0.0.2:8002"
    for target in ("/kv/a", "/kv/a?leader=0"):
        r = await call(app, "GET", target)
        assert r.status == 200 and r.body == b"1", target
    assert (await call(app, "GET", "/kv/b")).status == 404
    assert node.reads == 3
    assert (await call(app, "GET", "/kv/a?prev=1")).status == 400


async def test_post_leader_transfers_and_names_the_new_leader() -> None:
    app, node = make()
    r = await call(app, "POST", "/leader", b'{"id": 3}')
    assert r.status == 200 and r.json() == {"leader": 3, "previous": 1}
    assert node.transfers == [3]
    app, node = make()
    for body in (b"", b"{}"):
        node.role, node.leader_id = "leader", 1
        r = await call(app, "POST", "/leader", body)
        assert r.status == 200 and r.json() == {"leader": 2, "previous": 1}
    assert node.transfers == [None, None]


async def test_post_leader_to_the_leader_itself_is_a_no_op() -> None:
    app, node = make()
    r = await call(app, "POST", "/leader", b'{"id": 1}')
    assert r.status == 200 and r.json() == {"leader": 1, "previous": 1}
    assert node.transfers == []


async def test_post_leader_bad_bodies_are_400() -> None:
    app, _ = make()
    for body in (b"[1]", b'{"id": "2"}', b'{"id": 0}', b'{"to": 2}', b"nope", b'{"id": true}'):
        r = await call(app, "POST", "/leader", body)
        assert r.status == 400, body


async def test_a_transfer_in_progress_is_503_and_a_failed_one_409() -> None:
    app, node = make()
    node.fail_with = [LeadershipTransferring("leadership is being transferred to node 2")]
    r = await call(app, "PUT", "/kv/a", b"v", headers={"Idempotency-Key": "k"})
    assert r.status == 503 and r.headers["retry-after"] == "1"
    assert "transferred" in r.json()["error"]
    node.fail_with = [TransferFailed("the target did not catch up", 2)]
    r = await call(app, "POST", "/leader", b'{"id": 2}')
    assert r.status == 409 and r.json()["target"] == 2
    assert "did not catch up" in r.json()["error"]
