"""SIGKILL at random moments: every index a child reported as synced survives.

A forked child appends batches and syncs in a loop, writing each synced last
index to a pipe only after ``sync`` returned (that is its acknowledgement).
The parent waits for a random number of acknowledgements, kills the child
with SIGKILL wherever it happens to be (inside ``append``, ``sync``, a
segment roll-over or ``open``), drains the pipe, reopens the log and checks
that every acknowledged record is present and correct. The next child
carries on from what the reopened log holds. ``TRAFT_STORAGE_KILLS`` sets the
number of kills (default 40).
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import pytest

from storage import Record, SegmentLog

KILLS = int(os.environ.get("TRAFT_STORAGE_KILLS", "40"))
SEGMENT_BYTES = 4096


def term_for(index: int) -> int:
    return 1 + index // 97


def payload(index: int) -> bytes:
    return b"%d;" % index * (1 + index % 9)


def expected(index: int) -> Record:
    return Record(index, term_for(index), index % 4, payload(index))


def child(path: str, out: int, seed: int) -> None:
    """Append and sync forever, acknowledging each synced last index on ``out``."""
    try:
        rng = random.Random(seed)
        log = SegmentLog.open(path, segment_bytes=SEGMENT_BYTES)
        index = log.last_index + 1
        while True:
            n = rng.randint(1, 25)
            log.append([expected(i) for i in range(index, index + n)])
            log.sync()
            index += n
            os.write(out, b"%d\n" % (index - 1))
    except BaseException as exc:  # report, never fall back into pytest
        os.write(out, b"E %r\n" % exc)
    finally:
        os._exit(1)


@pytest.mark.skipif(sys.platform == "win32", reason="needs fork and SIGKILL")
def test_acknowledged_records_survive_sigkill(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    rng = random.Random()
    acked = 0
    total_acks = 0
    for kill in range(KILLS):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(read_end)
            child(path, write_end, rng.randrange(2**32))
        os.close(write_end)
        wait_for = rng.choice([0, 1, 2, rng.randint(3, 60)])
        buffer = b""
        seen = 0
        while seen < wait_for:
            data = os.read(read_end, 4096)
            assert data, "child exited on its own"
            buffer += data
            seen = buffer.count(b"\n")
        for _ in range(rng.randint(0, 20_000)):  # a random moment, not a sleep
            pass
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        while data := os.read(read_end, 65536):  # acks sent before the kill count too
            buffer += data
        os.close(read_end)
        lines = buffer.splitlines()
        errors = [line for line in lines if line.startswith(b"E ")]
        assert not errors, errors
        for line in lines:
            acked = max(acked, int(line))
        total_acks += len(lines)
        with SegmentLog.open(path, segment_bytes=SEGMENT_BYTES) as log:
            assert log.last_index >= acked, f"kill {kill}: lost acknowledged records"
            records = log.read(1, log.last_index + 1)
        assert records == [expected(i) for i in range(1, len(records) + 1)], f"kill {kill}"
    assert total_acks > KILLS
    assert len(os.listdir(path)) > 2  # segments rolled over along the way
