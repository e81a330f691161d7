"""Short runs of the scripts, as `make test` runs them: kill-restart, cluster, demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def run(*argv: str, timeout: float = 100) -> str:
    result = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_kill_restart_short() -> None:
    out = run("scripts/kill-restart", "--duration", "8", "--seed", "1")
    assert "violations:            0" in out
    assert "kills:" in out and "traft log verify" in out


def test_cluster_script(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    out = run("scripts/cluster", "start", "-n", "3", "--dir", str(folder))
    assert f"config: {folder / 'cluster.toml'}" in out and "leader: node" in out
    try:
        out = run("scripts/cluster", "status", "--dir", str(folder))
        assert out.count("running, pid") == 3 and out.count("follower") == 2
    finally:
        out = run("scripts/cluster", "stop", "--dir", str(folder), "--clean")
    assert "stopped node(s): 1, 2, 3" in out and not folder.exists()


def test_demo() -> None:
    out = run("scripts/demo.py")
    assert "took over" in out and "caught up" in out and "summary" in out
