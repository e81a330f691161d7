"""traft.wire.Budget: the one place that turns net's message size into the node's limits."""

from __future__ import annotations

import pytest

import net
from traft.wire import Budget


def test_budget_takes_the_message_size_from_the_endpoint() -> None:
    network = net.MemoryNetwork(cluster_id=1, max_datagram=10_000)
    endpoint = network.endpoint(1)
    budget = Budget.for_endpoint(endpoint)
    assert budget.max_payload == endpoint.max_payload
    # A message longer than one datagram travels in fragments.
    assert budget.max_message == endpoint.max_message > endpoint.max_payload
    assert budget.max_command == endpoint.max_message - 2048
    assert Budget.for_endpoint(endpoint, max_command=100).max_command == 100
    # A configured command limit is cut to what a message holds.
    assert Budget.for_endpoint(endpoint, max_command=1 << 30).max_command == budget.max_command


def test_the_message_size_a_command_limit_needs() -> None:
    assert Budget.message_size_for(100) == net.DEFAULT_MAX_MESSAGE
    big = Budget.message_size_for(8 << 20)
    assert Budget(max_payload=60_000, max_message=big).max_command == 8 << 20


def test_budget_for_a_datagram_counts_the_envelope_and_its_tag() -> None:
    plain = Budget.for_datagram(60_000, authenticated=False)
    keyed = Budget.for_datagram(60_000, authenticated=True)
    assert plain.max_payload == net.EnvelopeCodec(0, max_datagram=60_000).max_payload
    assert keyed.max_payload == net.EnvelopeCodec(0, key=b"x", max_datagram=60_000).max_payload
    assert keyed.max_payload < plain.max_payload < 60_000


def test_every_figure_follows_what_net_carries() -> None:
    small, large = Budget(max_payload=10_000), Budget(max_payload=60_000)
    assert large.max_command - small.max_command == 50_000
    assert large.append_bytes - small.append_bytes == 50_000
    members = b"m" * 300
    assert large.snapshot_chunk(members) - small.snapshot_chunk(members) == 50_000


def test_larger_messages_raise_the_command_limit_not_the_batches() -> None:
    # Where net sends messages as fragments, one command may exceed a
    # datagram; AppendEntries batches and snapshot chunks still fit one.
    one, fragmented = Budget(max_payload=60_000), Budget(max_payload=60_000, max_message=1 << 21)
    assert fragmented.max_command == (1 << 21) - 2048
    assert fragmented.append_bytes == one.append_bytes
    assert fragmented.snapshot_chunk(b"") == one.snapshot_chunk(b"")
    with pytest.raises(ValueError, match="max_message"):
        Budget(max_payload=60_000, max_message=59_999)


def test_one_entry_of_the_largest_command_fits_one_append() -> None:
    budget = Budget(max_payload=60_000)
    assert budget.max_command + budget.entry_overhead <= budget.append_bytes


def test_a_smaller_max_command_is_the_one_limit_checked() -> None:
    budget = Budget(max_payload=60_000, max_command=100)
    budget.check_command(b"x" * 100)
    with pytest.raises(ValueError, match="101 bytes exceeds the limit of 100"):
        budget.check_command(b"x" * 101)


def test_max_command_cannot_exceed_what_a_message_carries() -> None:
    with pytest.raises(ValueError, match="max_command"):
        Budget(max_payload=60_000, max_command=60_000)
    with pytest.raises(ValueError, match="max_command"):
        Budget(max_payload=60_000, max_command=0)
