"""``traft sim --nodes``: whole nodes under simulation are deterministic and pass their checks.

Cost: four runs of 10 virtual seconds (seeds 11 and 12 are run once and
shared); about 30 s on this machine under load with coverage of traft.core.
"""

from __future__ import annotations

import argparse
import functools

import attrs
import pytest

from traft.sim.cli import configure
from traft.sim.nodes import NodeRunResult, NodeSimOptions, run_one
from traft.sim.nodes.cli import options_from, replay_command

SHORT = NodeSimOptions(duration_ms=5000, calm_ms=5000)


@functools.cache
def short_run(seed: int) -> NodeRunResult:
    """One run of ``SHORT`` per seed, shared by the tests that only read it."""
    return run_one(SHORT, seed)


def test_one_seed_twice_gives_the_same_history_and_digests_byte_for_byte() -> None:
    first = run_one(SHORT, 3)
    second = run_one(SHORT, 3)
    assert first.history == second.history
    assert first.digests == second.digests
    assert first.events == second.events
    assert first.fingerprint == second.fingerprint
    assert first.history  # the clients did something
    assert len(set(first.digests.values())) == 1


def test_two_seeds_differ() -> None:
    assert short_run(11).fingerprint != short_run(12).fingerprint


@pytest.mark.parametrize("seed", [11, 12])
def test_fixed_seeds_pass_every_check(seed: int) -> None:
    result = short_run(seed)
    assert result.failures == [], replay_command(SHORT, seed)
    assert result.summary["ops_ok"] > 0


def test_options_shared_with_traft_sim_map_and_the_replay_command_round_trips() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    argv = ["--nodes", "--servers", "5", "--crash", "7", "--seed", "4"]
    options = options_from(parser.parse_args(argv), argv)
    assert options.servers == 5 and options.crash == 7.0
    assert options.drop == NodeSimOptions().drop  # left at traft sim's default: node default
    command = replay_command(options, 4)
    assert command.startswith("traft sim --nodes ")
    replayed = options_from(parser.parse_args(command.split()[2:]), command.split()[2:])
    assert replayed == options
    assert attrs.evolve(options, servers=3) != options
