"""A node's /metrics: every metric explains itself and follows Prometheus' naming rules."""

from __future__ import annotations

import re
from pathlib import Path

import trio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.node.test_node import harness
from traft.node.metrics import COUNTERS, ENDPOINT_COUNTERS

NAME = re.compile(r"^traft_[a-z][a-z0-9_]*$")


def help_lines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))


async def test_every_metric_has_help_a_node_label_and_a_conventional_name(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with harness(tmp_path, n=1) as h:
        node = await h.start(1)
        await node.wait_for_leader(timeout=5)
        assert await node.submit(b"1") == 1  # at least one fsync observed
        text = generate_latest(node.registry).decode()
    families = list(text_string_to_metric_families(text))
    helps = help_lines(text)
    names = {f.name for f in families}
    assert {name for name, _ in COUNTERS.values()} <= names
    assert {name for name, _ in ENDPOINT_COUNTERS.values()} <= names
    assert {"traft_term", "traft_role", "traft_fsync_seconds"} <= names
    for family in families:
        name, doc = family.name, family.documentation
        assert NAME.match(name), name
        # A real sentence: not empty, not the name again, no identifier in it.
        assert len(doc.split()) >= 4, (name, doc)
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", doc), (name, doc)
        assert helps[name if family.type != "counter" else name + "_total"] == doc
        if family.type == "counter":
            assert not name.endswith("_total")  # the family; its samples add it
            assert all(s.name.endswith("_total") for s in family.samples), name
            if "bytes" in name:
                assert all(s.name.endswith("_bytes_total") for s in family.samples), name
        elif family.type == "histogram":
            assert name.endswith(("_seconds", "_bytes")), name
        else:
            assert family.type == "gauge" and not name.endswith("_total"), name
        assert family.samples, name
        for sample in family.samples:
            assert sample.labels.get("node") == "1", (sample.name, sample.labels)
    fsync = next(f for f in families if f.name == "traft_fsync_seconds")
    count = next(s for s in fsync.samples if s.name == "traft_fsync_seconds_count")
    assert count.value >= 1 and count.labels == {"node": "1"}
