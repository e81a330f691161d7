"""The README's core example, copied onto three servers, must elect a leader.

Issue 10 bug 8: the example seeded every server with ``random.Random(7)``;
copied for three servers, identical election timeouts split the vote forever.
This test runs the example's set-up lines (everything before its first
``raft.periodic``) exactly as the README prints them, once per server (only
the server's own id differs), and drives the three cores over a loss-free
in-memory link until one of them leads.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from traft.core import Raft, Role

README = Path(__file__).resolve().parents[2] / "README.md"


def core_example_setup() -> str:
    """The README's "core in twenty lines" block, up to where time starts passing."""
    text = README.read_text()
    section = text.split("## The core in twenty lines", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "the README lost its core example"
    setup = block.group(1).split("\nraft.periodic(", 1)[0]
    assert "raft = Raft(" in setup, "the example must build a Raft before driving it"
    return setup


def server(setup: str, node_id: int) -> Raft:
    """Run the set-up lines as server ``node_id`` would: the README's, with its id."""
    code, count = re.subn(r"\bnode_id\s*=\s*1\b", f"node_id = {node_id}", setup, count=1)
    assert count == 1, "the example must name its server's id once (node_id = 1)"
    namespace: dict[str, object] = {}
    exec(compile(code, "<README core example>", "exec"), namespace)
    raft = namespace["raft"]
    assert isinstance(raft, Raft)
    assert (raft.id, raft.voters()) == (node_id, [1, 2, 3])
    return raft


@pytest.mark.timeout(60)
def test_readme_core_example_copied_onto_three_servers_elects_a_leader() -> None:
    setup = core_example_setup()
    servers = {i: server(setup, i) for i in (1, 2, 3)}
    # 60 simulated seconds in 10 ms steps, every message delivered at once.
    for _step in range(6000):
        outbox = []
        for i, raft in sorted(servers.items()):
            raft.periodic(10)
            rd = raft.ready()
            outbox.extend((i, to, msg) for to, msg in rd.messages)
            raft.advance(rd)
        while outbox:
            frm, to, msg = outbox.pop(0)
            dest = servers[to]
            dest.recv(frm, msg)
            rd = dest.ready()
            outbox.extend((to, peer, m) for peer, m in rd.messages)
            dest.advance(rd)
        if any(raft.role is Role.LEADER for raft in servers.values()):
            return
    terms = sorted(raft.term for raft in servers.values())
    pytest.fail(f"no leader after 60 simulated seconds (terms {terms}): identical seeds?")
