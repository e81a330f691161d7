"""One process per data directory: ``open_data_dir`` locks it (issue 10, bug 7).

Two ``traft serve`` processes on one ``--data-dir`` both served and
acknowledged different writes at the same index. ``open_data_dir`` now holds
an exclusive ``flock`` on the directory's ``lock`` file (which names the
holder's pid) until the directory is closed or the process dies;
``traft log inspect|verify`` take no lock and work on a held directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage import DataDirLocked, Record, open_data_dir
from traft.cli import main

OPEN_IN_ANOTHER_PROCESS = """
import sys
import storage
try:
    storage.open_data_dir(sys.argv[1]).close()
except storage.DataDirLocked as exc:
    print(f"locked|{exc.path}|{exc.pid}|{exc}")
    sys.exit(3)
print("opened")
"""


def open_elsewhere(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OPEN_IN_ANOTHER_PROCESS, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(90)
def test_a_second_process_cannot_open_a_held_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "node"
    with open_data_dir(str(path)):
        other = open_elsewhere(path)
        assert other.returncode == 3, other.stdout + other.stderr
        tag, where, pid, message = other.stdout.strip().split("|", 3)
        assert (tag, where, pid) == ("locked", str(path), str(os.getpid()))
        assert str(path) in message and f"pid {os.getpid()}" in message
    # Closing releases the lock: the next process opens the directory.
    after = open_elsewhere(path)
    assert after.stdout.strip() == "opened", after.stdout + after.stderr


@pytest.mark.timeout(30)
def test_a_second_open_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "node"
    with open_data_dir(str(path)), pytest.raises(DataDirLocked, match=f"pid {os.getpid()}"):
        open_data_dir(str(path))
    with open_data_dir(str(path)):
        pass


@pytest.mark.timeout(60)
def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    """A killed holder leaves the lock file behind but not the lock."""
    path = tmp_path / "node"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, storage; d = storage.open_data_dir(sys.argv[1]); "
            "print('held', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirLocked, match=f"pid {holder.pid}"):
            open_data_dir(str(path))
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with open_data_dir(str(path)):
        pass


@pytest.mark.timeout(30)
def test_log_inspect_and_verify_work_on_a_held_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node"
    with open_data_dir(str(path), segment_bytes=500) as node:
        node.meta.save(term=2, voted_for=1)
        node.log.append([Record(i, 2, 0, b"x" * 20) for i in range(1, 31)])
        node.log.sync()
        assert main(["log", "verify", str(path)]) == 0
        assert "30 log records" in capsys.readouterr().out
        assert main(["log", "inspect", str(path)]) == 0
        assert "meta: term 2, voted_for 1" in capsys.readouterr().out
        # ...and they did not take the lock from the node.
        with pytest.raises(DataDirLocked):
            open_data_dir(str(path))
