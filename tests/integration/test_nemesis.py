"""The short nemesis run of `make test`: a real 3-node cluster, every fault kind, ~75 s.

A fixed seed fixes the fault schedule and the clients' choices (not the
timing of a real system). The run must end with no violation: linearizable
history, no acknowledged write lost, convergence, `traft log verify` clean.
The long run is `scripts/nemesis --duration 600` (docs/reliability.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CATEGORIES = {
    "process": ("kill", "kill-leader", "kill-minority", "kill-all", "pause", "pause-leader"),
    "partition": (
        "partition-leader",
        "partition-half",
        "partition-oneway",
        "partition-ring",
        "snapshot",
    ),
    "network": ("drop", "dup", "reorder", "delay"),
    "membership": ("member-add", "member-remove", "member-remove-leader"),
}


def test_nemesis_short(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "scripts/nemesis",
            "--duration",
            "55",
            "--seed",
            "7",
            "--clients",
            "4",
            "--dir",
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "violations:        0" in out, out[-6000:]
    assert re.search(r"check_kv: +linearizable: [1-9]\d* operations", out), out[-3000:]
    assert re.search(r"check_tickets: +linearizable: [1-9]\d* operations", out), out[-3000:]
    injected = set(re.findall(r"^    ([a-z-]+) +\d+$", out, re.MULTILINE))
    for category, kinds in CATEGORIES.items():
        assert injected & set(kinds), f"no {category} fault was injected:\n{out[-3000:]}"
    # Several at once: the schedule overlaps faults of different categories.
    assert len(injected) >= 10, out[-3000:]


def test_nemesis_lease_reads_under_pauses_transfers_and_rolling_restarts(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "scripts/nemesis",
            "--duration",
            "40",
            "--seed",
            "14",
            "--clients",
            "4",
            "--lease-reads",
            "--faults",
            "pause-lease-leader,rolling-restart,transfer,partition-leader,kill-leader",
            "--dir",
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "violations:        0" in out, out[-6000:]
    assert re.search(r"check_kv: +linearizable: [1-9]\d* operations", out), out[-3000:]
    injected = set(re.findall(r"^    ([a-z-]+) +\d+$", out, re.MULTILINE))
    assert {"pause-lease-leader", "rolling-restart", "transfer"} <= injected, out[-3000:]
