"""``/faults``: run-time network fault control, only when enabled."""

from __future__ import annotations

import json
import random

import pytest

import net
from tests.kv.asgi import call
from tests.kv.fakenode import FakeNode
from traft.kv.faultctl import FaultRequestError, apply_fault_request
from traft.kv.http import KVApp

pytestmark = pytest.mark.timeout(10)


def make(enabled: bool = True) -> tuple[KVApp, net.FaultInjector]:
    node = FakeNode()
    faults = net.FaultInjector(random.Random(1))
    return KVApp(node, node.store, faults=faults if enabled else None), faults


async def test_faults_route_is_absent_unless_enabled() -> None:
    app, _ = make(enabled=False)
    assert (await call(app, "GET", "/faults")).status == 404
    assert (await call(app, "POST", "/faults", b'{"drop": 1}')).status == 404


async def test_set_partition_heal_reset() -> None:
    app, faults = make()
    r = await call(app, "POST", "/faults", json.dumps({"drop": 0.5, "delay_ms": [1, 5]}).encode())
    assert r.status == 200 and r.json()["drop"] == 0.5 and r.json()["delay_ms"] == [1.0, 5.0]
    body = {"partition": [[1], [2, 3]], "one_way": True}
    r = await call(app, "POST", "/faults", json.dumps(body).encode())
    assert r.json()["blocked"] == [[1, 2], [1, 3]]
    assert faults.blocked(1, 2) and not faults.blocked(2, 1)
    r = await call(app, "POST", "/faults", b'{"heal": true}')
    assert r.json()["blocked"] == [] and r.json()["drop"] == 0.5
    r = await call(app, "POST", "/faults", b'{"partitions": [[[1], [2]], [[3], [4]]]}')
    assert faults.blocked(2, 1) and faults.blocked(4, 3)
    r = await call(app, "POST", "/faults", b'{"reset": true}')
    assert r.json()["drop"] == 0.0 and r.json()["blocked"] == []
    r = await call(app, "GET", "/faults")
    assert r.status == 200 and "stats" in r.json()
    assert (await call(app, "DELETE", "/faults")).status == 405


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"drop": 2}',
        b'{"drop": true}',
        b'{"nonsense": 1}',
        b'{"delay_ms": [5, 1]}',
        b'{"delay_ms": 3}',
        b'{"partition": [[1, 2], [2]]}',
        b'{"partition": [[1], ["x"]]}',
        b'{"partitions": 7}',
        b'{"heal": "yes"}',
    ],
)
async def test_bad_requests_change_nothing(body: bytes) -> None:
    app, faults = make()
    before = faults.settings()
    r = await call(app, "POST", "/faults", body)
    assert r.status == 400, r.body
    assert faults.settings() == before


def test_apply_validates_before_changing() -> None:
    faults = net.FaultInjector(random.Random(1))
    with pytest.raises(FaultRequestError):
        apply_fault_request(faults, {"drop": 0.5, "partition": [[1], [1]]})
    assert faults.settings()["drop"] == 0.0
