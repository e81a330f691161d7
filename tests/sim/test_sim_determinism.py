"""One seed, one run: the same options and seed replay message for message."""

from __future__ import annotations

import json

import pytest

from traft.cli import main
from traft.sim.runner import SimOptions, run_one

pytestmark = pytest.mark.timeout(120)

OPTIONS = SimOptions(servers=5, iterations=1500, trace=True, member=2.0, crash=1.0, compaction=3.0)


def test_same_seed_same_trace_digest() -> None:
    first = run_one(OPTIONS, 11)
    second = run_one(OPTIONS, 11)
    assert first.digest is not None
    assert first.digest == second.digest
    volatile = ("wall_s", "cpu_s", "messages_per_s")
    strip = lambda s: {k: v for k, v in s.items() if k not in volatile}  # noqa: E731
    assert strip(first.summary) == strip(second.summary)


def test_different_seeds_differ() -> None:
    assert run_one(OPTIONS, 11).digest != run_one(OPTIONS, 12).digest


def test_cli_json_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["sim", "--seeds", "1..2", "--iterations", "800", "--json", "--trace"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True
    assert [r["seed"] for r in out["runs"]] == [1, 2]
    run = out["runs"][0]
    for key in (
        "servers",
        "iterations",
        "elections",
        "terms",
        "leader_changes",
        "committed",
        "snapshots",
        "membership_changes",
        "crashes",
        "delivered",
        "dropped",
        "duplicated",
        "invariants_checked",
        "violations",
        "messages_per_s",
        "trace_digest",
    ):
        assert key in run


def test_cli_violation_exit_status_and_replay(capsys: pytest.CaptureFixture[str]) -> None:
    # Every message lost and a short liveness window: the liveness invariant fails.
    argv = [
        "sim",
        "--seed",
        "4",
        "--servers",
        "3",
        "--iterations",
        "2000",
        "--calm",
        "--drop",
        "100",
        "--liveness-ms",
        "1500",
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "VIOLATION liveness at seed 4" in out
    replay = next(line for line in out.splitlines() if line.startswith("replay: "))
    args = replay.removeprefix("replay: traft ").split()
    assert main(args) == 1
