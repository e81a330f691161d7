"""traft.wire.Budget: the one place that turns net's message size into the node's limits."""

from __future__ import annotations

import pytest

import net
from traft.wire import Budget


def test_budget_takes_the_message_size_from_the_endpoint() -> None:
    network = net.MemoryNetwork(cluster_id=1, max_datagram=10_000)
    endpoint = network.endpoint(1)
    budget = Budget.for_endpoint(endpoint)
    assert budget.max_message == endpoint.max_payload
    assert budget.max_command == endpoint.max_payload - 2048


def test_budget_for_a_datagram_counts_the_envelope_and_its_tag() -> None:
    plain = Budget.for_datagram(60_000, authenticated=False)
    keyed = Budget.for_datagram(60_000, authenticated=True)
    assert plain.max_message == net.EnvelopeCodec(0, max_datagram=60_000).max_payload
    assert keyed.max_message == net.EnvelopeCodec(0, key=b"x", max_datagram=60_000).max_payload
    assert keyed.max_message < plain.max_message < 60_000


def test_every_figure_follows_the_message_size() -> None:
    small, large = Budget(max_message=10_000), Budget(max_message=1 << 20)
    assert large.max_command - small.max_command == (1 << 20) - 10_000
    assert large.append_bytes - small.append_bytes == (1 << 20) - 10_000
    members = b"m" * 300
    assert large.snapshot_chunk(members) - small.snapshot_chunk(members) == (1 << 20) - 10_000


def test_one_entry_of_the_largest_command_fits_one_append() -> None:
    budget = Budget(max_message=60_000)
    assert budget.max_command + budget.entry_overhead <= budget.append_bytes


def test_a_smaller_max_command_is_the_one_limit_checked() -> None:
    budget = Budget(max_message=60_000, max_command=100)
    budget.check_command(b"x" * 100)
    with pytest.raises(ValueError, match="101 bytes exceeds the limit of 100"):
        budget.check_command(b"x" * 101)


def test_max_command_cannot_exceed_what_a_message_carries() -> None:
    with pytest.raises(ValueError, match="max_command"):
        Budget(max_message=60_000, max_command=60_000)
    with pytest.raises(ValueError, match="max_command"):
        Budget(max_message=60_000, max_command=0)
