"""Hypothesis stateful test: SegmentLog against a list in memory, with reopen as a rule.

The model is the list of live records and the first index. Rules append
batches (with term changes and records of every size, across tiny segments),
sync, truncate, compact (including past the end), read ranges, reopen after
a clean close, reopen after abandoning the object without sync or close (a
process crash: everything written is still in the page cache), and cut the
power (``PowerLossOps`` rewinds the disk to what was fsynced): then every
record synced, or made durable by a truncation, must survive, and what
remains of the rest must be a prefix. After every step the log's bounds,
terms and contents must match the model.

Example counts come from the Hypothesis profile (tests/conftest.py);
``HYPOTHESIS_PROFILE=explore`` runs many more.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from storage_faults import PowerLossOps, fast_scratch_root, install

from storage import Record, SegmentLog
from storage._fileio import FileOps

SEGMENT_BYTES = 160


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="traft-log-", dir=fast_scratch_root())
        self.path = os.path.join(self.dir, "log")
        self.ops = PowerLossOps()
        install(self.ops)
        self.log = SegmentLog.open(self.path, segment_bytes=SEGMENT_BYTES)
        self.first = 1
        self.records: list[Record] = []  # the live records, first..last
        self.durable = 0  # records up to this index survive a power cut
        self.term = 1

    @property
    def last(self) -> int:
        return self.first + len(self.records) - 1

    @rule(
        sizes=st.lists(st.integers(0, 200), min_size=1, max_size=6),
        term_step=st.integers(0, 2),
        rtype=st.integers(0, 255),
    )
    def append(self, sizes: list[int], term_step: int, rtype: int) -> None:
        self.term += term_step
        start = self.last + 1
        batch = [
            Record(start + k, self.term, rtype, bytes([(start + k) % 256]) * size)
            for k, size in enumerate(sizes)
        ]
        self.log.append(batch)
        self.records.extend(batch)

    @rule()
    def sync(self) -> None:
        self.log.sync()
        self.durable = self.last

    @rule(data=st.data())
    def truncate_from(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(self.first, self.last + 2), label="truncate_from")
        self.log.truncate_from(index)
        if index <= self.last:
            del self.records[max(0, index - self.first) :]
            self.durable = self.last  # the cut segment was synced whole

    @rule(data=st.data())
    def compact_upto(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(self.first - 2, self.last + 3), label="compact_upto")
        self.log.compact_upto(index)
        if index >= self.first:
            if index >= self.last:
                self.records = []
                self.durable = index
            else:
                del self.records[: index + 1 - self.first]
            self.first = index + 1

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        lo = data.draw(st.integers(self.first, self.last + 1), label="lo")
        hi = data.draw(st.integers(lo, self.last + 1), label="hi")
        max_bytes = data.draw(st.none() | st.integers(1, 600), label="max_bytes")
        got = self.log.read(lo, hi, max_bytes=max_bytes)
        want = self.records[lo - self.first : hi - self.first]
        if max_bytes is None or not want:
            assert got == want
        else:
            assert got == want[: len(got)] and len(got) >= 1
            # On disk an entry takes at least 13 bytes besides its data (a
            # batch record's column table); whole batch records are read, so
            # where a read stops early depends on the batches appended.
            encoded = sum(13 + len(r.data) for r in got)
            assert encoded <= max_bytes or len(got) == 1

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.durable = self.last
        self.log = SegmentLog.open(self.path, segment_bytes=SEGMENT_BYTES)

    @rule()
    def power_cut(self) -> None:
        self.log._release()
        self.ops.power_loss()
        self.ops = PowerLossOps()
        install(self.ops)
        self.log = SegmentLog.open(self.path, segment_bytes=SEGMENT_BYTES)
        assert self.log.first_index == self.first  # compaction is durable on return
        assert max(self.durable, self.first - 1) <= self.log.last_index <= self.last
        del self.records[self.log.last_index + 1 - self.first :]
        self.durable = self.last

    @rule()
    def crash_and_reopen(self) -> None:
        self.log._release()  # no sync, no close: the process died
        self.log = SegmentLog.open(self.path, segment_bytes=SEGMENT_BYTES)
        self.durable = self.last  # what open reports, it has made durable

    @invariant()
    def matches_the_model(self) -> None:
        log = self.log
        assert (log.first_index, log.last_index) == (self.first, self.last)
        for record in self.records[:1] + self.records[-2:]:
            assert log.term_at(record.index) == record.term
        assert log.read(self.first, self.last + 1) == self.records

    def teardown(self) -> None:
        self.log._release()
        install(FileOps())
        shutil.rmtree(self.dir, ignore_errors=True)


LogMachine.TestCase.settings = settings(
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_segment_log_against_a_model = LogMachine.TestCase
