"""SegmentLog: an append-only, fsync'd log of records in segment files.

Theory of operation (file formats in docs/storage-format.md):

- ``append`` encodes a batch as one batch record (``_batch``; a format-1
  segment of an older log takes one record per entry, ``_record``) and writes
  it with one ``pwrite`` into the newest segment; the bytes are in the OS page cache but not yet
  durable. ``sync`` makes everything appended since the last sync durable with
  one ``fdatasync`` (plus a directory fsync if a segment file was created):
  group commit. Nothing is acknowledged to anyone before ``sync`` returns.
- A segment rolls over once the next record would take it past
  ``segment_bytes``. The full segment is fdatasync'ed (and the directory, if
  the segment is new) before the next file is created, so after any crash
  only the newest segment can have a torn tail; recovery relies on that.
- Memory holds no record data: per segment an ``array('I')`` of record offsets
  (4 bytes a record; in a batched segment each entry has its batch's offset), and for the whole log the term runs (one pair per term
  change). ``read`` uses ``pread`` and checks every CRC it returns.
- ``truncate_from`` and ``compact_upto`` are made crash-atomic by the small
  ``state`` file (see ``_recovery``): the intent is written durably first,
  then the segments are cut or deleted, so an interrupted operation is either
  invisible or finished by the next open. A cut inside a batch record
  rewrites the batch's prefix, through a ``rewrite`` file (``_rewrite``).
- Opening carries out the recovery plan (see ``_recovery``), then fdatasyncs
  the newest segment and fsyncs the directory: whatever the log reports once
  open is durable, even records a killed process appended without ``sync``.
- A failed ``pwrite`` is undone (the segment is cut back to where the batch
  began, new segment files are removed), so a half record is never left for a
  later append to bury; the log stays usable. A failed ``fsync`` is different:
  the kernel may have marked the unwritten pages clean (Linux does), so a
  process reopening the log would read records no disk holds and append
  after them ("fsyncgate"). So the log cuts every segment back to its last
  synced size (``OpenSegment.synced``), deletes a segment created since, and
  syncs that, before it raises; every later call raises
  :class:`LogUnusableError` until the log is closed and reopened.

Invariants: the live records are ``first_index..last_index`` with no gaps;
``segments[-1]`` ends at ``last_index``; each segment's first index is its
name and follows on from the previous segment's last record.

A SegmentLog is not thread-safe; one owner calls it (possibly from a worker
thread, one call at a time).
"""

from __future__ import annotations

import contextlib
import logging
import os
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from types import TracebackType

from . import _fileio
from ._batch import batch_size, decode_batches, encode_batch_record
from ._errors import CorruptLogError, LogUnusableError, write_error
from ._fileio import atomic_write, fsync_dir, make_dirs, remove_file, write_all
from ._record import MIN_RECORD_SIZE, Record, decode_records, encode_batch
from ._recovery import STATE_NAME, LogPlan, LogState, plan_log
from ._rewrite import (
    Rewrite,
    apply_rewrite,
    finish_rewrite,
    prefix_record,
    redo_rewrite,
    write_rewrite,
)
from ._segment import (
    SEG_HEADER_SIZE,
    SEG_VERSION_BATCHES,
    OpenSegment,
    encode_segment_header,
    segment_name,
)

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 2**20
MAX_SEGMENT_BYTES = 2**31
_MAX_OPEN_FILES = 8


class SegmentLog:
    """A durable log of :class:`Record` objects (see the module docstring).

    Create or recover one with :meth:`SegmentLog.open`.
    """

    def __init__(self, path: str, segment_bytes: int) -> None:
        self._path = path
        self._segment_bytes = segment_bytes
        self._segments: list[OpenSegment] = []
        self._seg_firsts: list[int] = []
        self._run_starts: list[int] = []
        self._run_terms: list[int] = []
        self._first_index = 1
        self._last_index = 0
        self._unsynced: list[OpenSegment] = []
        self._dir_unsynced = False
        self._open_files: list[OpenSegment] = []
        self._failed: str | None = None
        self._closed = False
        self._recorded_newest = 0  # the newest segment the state file names

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: str, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> SegmentLog:
        """Open the log in directory ``path``, creating it or recovering it.

        Recovery cuts a torn tail off the last segment, deletes segments an
        interrupted compaction left behind and finishes an interrupted
        truncation. Any other damage raises before anything is changed.

        Raises:
            ValueError: ``segment_bytes`` is out of range.
            CorruptLogError: the log is damaged (the message names file and offset).
            WriteError: a repair or the creation of the log failed.
        """
        if not SEG_HEADER_SIZE + MIN_RECORD_SIZE <= segment_bytes <= MAX_SEGMENT_BYTES:
            raise ValueError(f"segment_bytes must be between 61 and 2**31, not {segment_bytes}")
        path = os.path.abspath(path)
        try:
            plan = plan_log(path)
        except CorruptLogError:
            raise
        except OSError as exc:
            raise CorruptLogError(path, 0, f"cannot read the log: {exc}") from exc
        if plan.rewrite is not None:
            # A cut inside a batch was interrupted: redo it, then look again.
            try:
                redo_rewrite(path, plan.rewrite)
                plan = plan_log(path)
            except CorruptLogError:
                raise
            except OSError as exc:
                raise write_error(path, "recovery", exc) from exc
        log = cls(path, segment_bytes)
        try:
            log._recover(plan)
        except OSError as exc:
            log._release()
            raise write_error(path, "recovery", exc) from exc
        return log

    def _recover(self, plan: LogPlan) -> None:
        path = self._path
        if plan.state is None:
            make_dirs(path)
            atomic_write(os.path.join(path, STATE_NAME), LogState(1).encode())
            return
        self._recorded_newest = plan.state.newest
        for level, repair in plan.repairs_by_level():
            logger.log(level, "%s: recovery: %s", path, repair)
        for name in plan.leftovers:
            remove_file(os.path.join(path, name))
        for seg_path, _why in reversed(plan.doomed):  # newest first, as truncation does
            remove_file(seg_path)
        for scan in plan.dropped:
            remove_file(scan.path)
        for scan in plan.segments:
            segment = OpenSegment(
                scan.path,
                scan.first_index,
                scan.offsets,
                scan.end,
                batched=scan.version == SEG_VERSION_BATCHES,
            )
            if scan.torn is not None:
                _fileio.ops.ftruncate(self._fd(segment), scan.end)
            self._segments.append(segment)
            self._seg_firsts.append(scan.first_index)
            for start, term in zip(scan.run_starts, scan.run_terms, strict=True):
                if not self._run_terms or self._run_terms[-1] != term:
                    self._run_starts.append(start)
                    self._run_terms.append(term)
        # What a killed process wrote may still be only in the page cache, and
        # whatever this log now reports (say, to a leader asking whether we
        # hold an entry) must survive a power cut: sync the newest segment
        # (older ones were sealed) and the directory before trusting them.
        if self._segments:
            _fileio.ops.fdatasync(self._fd(self._segments[-1]))
        fsync_dir(path)
        self._first_index = plan.first_index
        self._last_index = self._segments[-1].stop_index - 1 if self._segments else 0
        self._last_index = max(self._last_index, plan.first_index - 1)
        self._trim_runs_before(plan.first_index)
        if plan.truncate_from:
            self._cut_from(plan.truncate_from)
            self._write_state(LogState(self._first_index))
        else:
            newest = self._segments[-1].first_index if self._segments else 0
            if plan.state.newest != newest:
                # A torn new segment was dropped, or the file predates the
                # newest field: record the newest segment as it now is (it
                # was synced above).
                atomic_write(
                    os.path.join(path, STATE_NAME), LogState(self._first_index, 0, newest).encode()
                )
                self._recorded_newest = newest

    # -------------------------------------------------------------- properties

    @property
    def path(self) -> str:
        """The log's directory."""
        return self._path

    @property
    def first_index(self) -> int:
        """Index of the first live record (``last_index + 1`` when the log is empty)."""
        return self._first_index

    @property
    def last_index(self) -> int:
        """Index of the last record appended (``first_index - 1`` when the log is empty)."""
        return self._last_index

    @property
    def disk_bytes(self) -> int:
        """Bytes of segment data on disk (compacted records in a live segment included)."""
        return sum(segment.size for segment in self._segments)

    def __len__(self) -> int:
        return self._last_index - self._first_index + 1

    def __repr__(self) -> str:
        return (
            f"<SegmentLog {self._path!r} first_index={self._first_index} "
            f"last_index={self._last_index} segments={len(self._segments)}>"
        )

    # ------------------------------------------------------------------ reading

    def term_at(self, index: int) -> int:
        """The term of record ``index``.

        Raises:
            IndexError: ``index`` is not in ``first_index..last_index``.
            LogUnusableError: the log is closed or failed.
        """
        if self._failed is not None or self._closed:
            self._raise_unusable()
        if not self._first_index <= index <= self._last_index:
            raise IndexError(
                f"index {index} is outside the log ({self._first_index}..{self._last_index})"
            )
        return self._run_terms[bisect_right(self._run_starts, index) - 1]

    def read(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Record]:
        """The records with ``lo <= index < hi``, in order.

        With ``max_bytes``, stop early once the records' encoded size would
        exceed it, but always return at least one record if ``lo < hi``.

        Raises:
            IndexError: the range is not inside ``first_index..last_index + 1``.
            CorruptLogError: a record read back fails its checks.
            LogUnusableError: the log is closed or failed.
        """
        if self._failed is not None or self._closed:
            self._raise_unusable()
        if not self._first_index <= lo <= hi <= self._last_index + 1:
            raise IndexError(
                f"range {lo}..{hi} is outside the log ({self._first_index}..{self._last_index + 1})"
            )
        out: list[Record] = []
        budget = max_bytes
        index = lo
        while index < hi:
            segment = self._segments[bisect_right(self._seg_firsts, index) - 1]
            offsets = segment.offsets
            base = segment.first_index
            stop = min(hi, segment.stop_index)
            start = offsets[index - base]
            end = segment.batch_end(stop - 1 - base)
            if budget is not None and end - start > budget:
                # Records index..k-1 fit when offsets[k - base] <= start + budget
                # (in a batched segment: whole batches, give or take the last).
                stop = (
                    base + bisect_right(offsets, start + budget, index - base + 1, stop - base) - 1
                )
                if (
                    segment.batched
                    and stop > index
                    and segment.batch_end(stop - 1 - base) > start + budget
                ):
                    # The last batch does not fit whole: stop where it starts.
                    stop = base + bisect_left(offsets, offsets[stop - 1 - base], index - base)
                if stop <= index:
                    if out:
                        break
                    stop = index + 1  # the first record is returned whatever its size
                end = segment.batch_end(stop - 1 - base)
                hi = stop
            try:
                buf = os.pread(self._fd(segment), end - start, start)
            except OSError as exc:
                raise CorruptLogError(segment.path, start, f"read failed: {exc}") from exc
            if len(buf) != end - start:
                raise CorruptLogError(
                    segment.path, start + len(buf), "segment is shorter than its records"
                )
            if segment.batched:
                out.extend(decode_batches(buf, segment.path, start, index, stop))
            else:
                out.extend(decode_records(buf, segment.path, start, index))
            if budget is not None:
                budget -= end - start
            index = stop
        return out

    # ------------------------------------------------------------------ writing

    def append(self, records: Sequence[Record]) -> None:
        """Append ``records``, numbered from ``last_index + 1``; durable after :meth:`sync`.

        All or nothing: if it raises, the log is as it was.

        Raises:
            ValueError: the indexes are not contiguous from ``last_index + 1``,
                or a field does not fit its encoding.
            DiskFullError: the disk is full (the log stays usable).
            WriteError: another write error (usable if the write was undone).
            LogUnusableError: the log is closed or failed.
        """
        if self._failed is not None or self._closed:
            self._raise_unusable()
        if not records:
            return
        segment = self._segments[-1] if self._segments else None
        first = self._last_index + 1
        last_term = self._run_terms[-1] if self._run_terms else None
        if segment is not None and not segment.batched:
            # A format-1 segment from an older version takes format-1 records
            # while the whole batch fits; otherwise the batch rolls over into
            # new (format-2) segments.
            start = segment.size
            parts, offsets, new_runs, end = encode_batch(records, first, start, last_term)
            if end <= self._segment_bytes or (len(records) == 1 and not segment.offsets):
                self._write_fast(segment, b"".join(parts), start, offsets, end)
            else:
                self._append_rolling(segment, records, first)
        else:
            new_runs = _term_changes(records, last_term)
            start = segment.size if segment is not None else SEG_HEADER_SIZE
            end = start + batch_size(records)
            if segment is not None and (
                end <= self._segment_bytes or (len(records) == 1 and not segment.offsets)
            ):
                # Fast path: the whole batch is one record in the newest segment.
                data = encode_batch_record(records, first)
                self._write_fast(segment, data, start, array("I", [start]) * len(records), end)
            else:
                self._append_rolling(segment, records, first)
        if new_runs:
            for index, term in new_runs:
                self._run_starts.append(index)
                self._run_terms.append(term)
        self._last_index = first + len(records) - 1

    def _write_fast(
        self, segment: OpenSegment, data: bytes, start: int, offsets: Sequence[int], end: int
    ) -> None:
        """Write an encoded batch at the end of the newest segment."""
        fd = self._fd(segment)
        try:
            write_all(fd, data, start)
        except OSError as exc:
            self._undo([], [(segment, start)])
            raise write_error(segment.path, "append", exc) from exc
        segment.offsets.extend(offsets)
        segment.size = end
        if not self._unsynced or self._unsynced[-1] is not segment:
            self._unsynced.append(segment)

    def _append_rolling(
        self, segment: OpenSegment | None, records: Sequence[Record], first: int
    ) -> None:
        """Append a batch that needs one or more new segments, a batch record in each."""
        limit = self._segment_bytes
        # Place records greedily: into the current segment while they fit (a
        # segment always takes at least one record), then into new ones. A
        # format-1 segment takes none: its format is not written any more.
        groups: list[tuple[bool, int, int]] = []  # (new segment?, first k, stop k)
        if segment is not None and segment.batched:
            used, has_records = segment.size + _BATCH_OVERHEAD, bool(segment.offsets)
        else:
            used, has_records = limit + 1, True  # record 0 needs a new segment
        group_start, group_new = 0, False
        for k, record in enumerate(records):
            size = _PER_ENTRY + len(record.data)
            if has_records and used + size > limit:
                if k > group_start:
                    groups.append((group_new, group_start, k))
                group_start, group_new = k, True
                used = SEG_HEADER_SIZE + _BATCH_OVERHEAD
            used += size
            has_records = True
        groups.append((group_new, group_start, len(records)))

        created: list[OpenSegment] = []
        touched: list[tuple[OpenSegment, int, int]] = []  # (segment, old size, stop k)
        current = segment
        try:
            for new, a, b in groups:
                data = encode_batch_record(records[a:b], first + a)
                if not new:
                    assert current is not None and a == 0
                    touched.append((current, current.size, b))
                    write_all(self._fd(current), data, current.size)
                    continue
                if current is not None:
                    self._seal(current, created)
                index = first + a
                path = os.path.join(self._path, segment_name(index))
                fd = _fileio.ops.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
                current = OpenSegment(path, index, array("I"), SEG_HEADER_SIZE + len(data))
                current.synced = -1
                current.offsets.extend(array("I", [SEG_HEADER_SIZE]) * (b - a))
                current.fd = fd
                created.append(current)
                write_all(fd, encode_segment_header(index) + data, 0)
        except OSError as exc:
            self._undo(created, [(seg, old) for seg, old, _b in touched])
            if self._failed is not None:  # a seal's fsync failed
                self._cut_back()
            failed_path = created[-1].path if created else self._path
            raise write_error(failed_path, "append", exc) from exc
        # Commit the in-memory view only once every write has succeeded.
        for seg, old, b in touched:
            seg.offsets.extend(array("I", [old]) * b)
            seg.size = old + batch_size(records[:b])
        for seg in created:
            self._segments.append(seg)
            self._seg_firsts.append(seg.first_index)
            self._open_files.append(seg)
        # Every segment but the newest was sealed (fdatasync'ed) on the way.
        assert current is not None
        self._unsynced = [current]
        self._dir_unsynced = True
        self._evict_files()

    def _seal(self, segment: OpenSegment, created: list[OpenSegment]) -> None:
        """Make ``segment`` durable before a newer segment is created (see module doc).

        Raises:
            OSError: the fsync failed; the log is marked unusable.
        """
        try:
            _fileio.ops.fdatasync(self._fd(segment))
            if self._dir_unsynced or created:
                fsync_dir(self._path)
        except OSError as exc:
            self._failed = f"fsync of {segment.path} failed: {exc}"
            raise
        segment.synced = segment.size

    def _undo(self, created: list[OpenSegment], touched: list[tuple[OpenSegment, int]]) -> None:
        """Remove what a failed append wrote; if that fails too, the log is unusable."""
        try:
            for seg in reversed(created):
                if seg.fd is not None:
                    _fileio.ops.close(seg.fd)
                    seg.fd = None
                remove_file(seg.path)
            for seg, old_size in touched:
                _fileio.ops.ftruncate(self._fd(seg), old_size)
        except OSError as exc:
            self._failed = self._failed or f"could not undo a failed append: {exc}"

    def _cut_back(self) -> None:
        """After a failed fsync, drop from the files what no fsync made durable.

        The pages a failed fsync did not write may stay in the page cache,
        marked clean: a process restarted without a reboot would read them
        back and build on records that a power cut then loses, leaving a
        hole recovery refuses. Truncating each unsynced segment to its
        synced size (and deleting one created since the last sync) drops
        them, so the files hold what a power cut would leave. Best effort:
        if this fails too, a reboot is the only safe restart (logged).
        """
        try:
            for seg in list(self._unsynced):
                if seg.synced < 0:
                    self._forget(seg)
                    remove_file(seg.path)
                else:
                    fd = self._fd(seg)
                    _fileio.ops.ftruncate(fd, seg.synced)
                    _fileio.ops.fdatasync(fd)
            fsync_dir(self._path)
        except OSError as exc:
            logger.error(
                "%s: could not cut unsynced records off after a failed fsync (%s); "
                "reboot the machine before restarting, or they may be read back",
                self._path,
                exc,
            )

    def sync(self) -> None:
        """Make every record appended so far durable, with one fsync (group commit).

        Raises:
            DiskFullError: the disk filled up while flushing; the log is now unusable.
            WriteError: fsync failed; the log is now unusable (reopen it).
            LogUnusableError: the log is closed or failed.
        """
        if self._failed is not None or self._closed:
            self._raise_unusable()
        if not self._unsynced and not self._dir_unsynced:
            return
        self._flush()
        if self._segments and self._segments[-1].first_index != self._recorded_newest:
            # The newest segment is durable now: name it in the state file so
            # that losing it later is detected (see _recovery).
            try:
                self._write_state(LogState(self._first_index))
            except OSError as exc:
                self._failed = f"writing the state file failed: {exc}"
                raise write_error(self._path, "state", exc) from exc
        self._evict_files()

    def _flush(self) -> None:
        """fdatasync the unsynced segments, then the directory if it changed.

        Raises:
            DiskFullError, WriteError: an fsync failed; the log is now unusable.
        """
        segment = None
        try:
            for segment in self._unsynced:
                _fileio.ops.fdatasync(self._fd(segment))
            segment = None
            if self._dir_unsynced:
                fsync_dir(self._path)
        except OSError as exc:
            where = segment.path if segment is not None else self._path
            self._failed = f"fsync of {where} failed: {exc}"
            self._cut_back()
            raise write_error(where, "fsync", exc) from exc
        for segment in self._unsynced:
            segment.synced = segment.size
        self._unsynced.clear()
        self._dir_unsynced = False

    def truncate_from(self, index: int) -> None:
        """Drop record ``index`` and every record after it, durably.

        Afterwards ``last_index == index - 1``; the next append is ``index``.
        An ``index`` past ``last_index`` changes nothing.

        Raises:
            ValueError: ``index < first_index`` (those records are compacted).
            WriteError: a write failed; the log is now unusable (reopen it).
            LogUnusableError: the log is closed or failed.
        """
        if self._failed is not None or self._closed:
            self._raise_unusable()
        if index > self._last_index:
            return
        if index < self._first_index:
            raise ValueError(f"cannot truncate from {index}: log starts at {self._first_index}")
        try:
            self._write_state(LogState(self._first_index, index))
            self._cut_from(index)
            self._write_state(LogState(self._first_index))
        except OSError as exc:
            self._failed = f"truncate_from({index}) failed: {exc}"
            raise write_error(self._path, "truncate", exc) from exc

    def _cut_from(self, index: int) -> None:
        """Physically drop records >= ``index``: delete later segments, cut the one holding it."""
        if index > self._last_index:
            return
        k = bisect_right(self._seg_firsts, index) - 1
        for seg in reversed(self._segments[k + 1 :]):
            self._forget(seg)
            remove_file(seg.path)
        del self._segments[k + 1 :]
        del self._seg_firsts[k + 1 :]
        segment = self._segments[k]
        cut = index - segment.first_index
        offsets = segment.offsets
        if 0 < cut < len(offsets) and segment.batched and offsets[cut] == offsets[cut - 1]:
            self._cut_inside_batch(segment, cut, index)
        elif cut < len(offsets):
            size = offsets[cut]
            fd = self._fd(segment)
            _fileio.ops.ftruncate(fd, size)
            _fileio.ops.fdatasync(fd)
            del offsets[cut:]
            segment.size = size
        fsync_dir(self._path)
        segment.synced = segment.size  # the cut or the rewrite synced it
        self._unsynced.clear()
        self._dir_unsynced = False
        k = bisect_left(self._run_starts, index)
        del self._run_starts[k:]
        del self._run_terms[k:]
        self._last_index = index - 1

    def _cut_inside_batch(self, segment: OpenSegment, cut: int, index: int) -> None:
        """Drop entries >= ``index`` of the batch holding it, keeping the rest (see _rewrite)."""
        at = segment.offsets[cut]
        end = segment.batch_end(cut)
        fd = self._fd(segment)
        buf = os.pread(fd, end - at, at)
        record = prefix_record(buf, index, segment.path, at)
        rewrite = Rewrite(segment.first_index, at, index, record)
        write_rewrite(self._path, rewrite)
        segment.size = apply_rewrite(fd, rewrite)
        del segment.offsets[cut:]
        finish_rewrite(self._path)

    def compact_upto(self, index: int) -> None:
        """Drop every record up to and including ``index`` (a snapshot now covers them).

        Afterwards ``first_index == index + 1``. Whole segment files are
        deleted; records of a segment that is still partly live stay on disk
        but are no longer readable. If ``index >= last_index`` the log becomes
        empty and the next append is ``index + 1``. An ``index`` before
        ``first_index`` changes nothing. Records appended but not yet synced
        that stay live are made durable first (see docs/storage-format.md).

        Raises:
            DiskFullError, WriteError: a write failed; the log is now unusable (reopen it).
            LogUnusableError: the log is closed or failed.
        """
        if self._failed is not None or self._closed:
            self._raise_unusable()
        if index < self._first_index:
            return
        first = index + 1
        if index < self._last_index and self._unsynced:
            # The state file names the newest *durable* segment. With newer
            # segments waiting for a sync, that can be a segment this very
            # compaction deletes, and after a crash open would refuse the log
            # (the named newest segment is missing). Make them durable first,
            # so the state names the real newest one, which always survives.
            self._flush()
        try:
            if index >= self._last_index:
                # Every segment goes: the state names none as the newest.
                atomic_write(os.path.join(self._path, STATE_NAME), LogState(first).encode())
                self._recorded_newest = 0
            else:
                self._write_state(LogState(first))
            if index >= self._last_index:
                doomed = list(self._segments)
            else:
                k = bisect_right(self._seg_firsts, first) - 1
                doomed = self._segments[:k]
            for seg in doomed:
                self._forget(seg)
                remove_file(seg.path)
            if doomed:
                fsync_dir(self._path)
        except OSError as exc:
            self._failed = f"compact_upto({index}) failed: {exc}"
            raise write_error(self._path, "compact", exc) from exc
        del self._segments[: len(doomed)]
        del self._seg_firsts[: len(doomed)]
        self._first_index = first
        if index >= self._last_index:
            self._last_index = index
            self._run_starts.clear()
            self._run_terms.clear()
        else:
            self._trim_runs_before(first)

    def close(self) -> None:
        """Sync what was appended and release the files. Closing twice is harmless.

        Raises:
            WriteError: the final sync failed (the files are released anyway).
        """
        if self._closed:
            return
        try:
            if self._failed is None:
                self.sync()
        finally:
            self._release()

    def __enter__(self) -> SegmentLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---------------------------------------------------------------- internals

    def _raise_unusable(self) -> None:
        if self._closed:
            raise LogUnusableError(f"{self._path}: the log is closed")
        raise LogUnusableError(
            f"{self._path}: the log is unusable after an earlier failure "
            f"({self._failed}); close it and open it again"
        )

    def _write_state(self, state: LogState) -> None:
        """Write the state file, naming the newest segment known to be durable.

        Every segment but the newest was sealed; the newest counts once no
        append to it is waiting for a sync. When none qualifies the state
        names none (0), which turns the missing-segment check off.
        """
        if not state.newest:
            for seg in reversed(self._segments):
                if seg not in self._unsynced:
                    state.newest = seg.first_index
                    break
        atomic_write(os.path.join(self._path, STATE_NAME), state.encode())
        self._recorded_newest = state.newest

    def _trim_runs_before(self, first: int) -> None:
        k = bisect_right(self._run_starts, first) - 1
        if k > 0:
            del self._run_starts[:k]
            del self._run_terms[:k]

    def _fd(self, segment: OpenSegment) -> int:
        """The segment's file descriptor, opening it (and closing an idle one) if needed."""
        if segment.fd is None:
            segment.fd = _fileio.ops.open(segment.path, os.O_RDWR)
            self._open_files.append(segment)
            self._evict_files()
        return segment.fd

    def _evict_files(self) -> None:
        """Keep few descriptors open; never close the newest or an unsynced segment."""
        if len(self._open_files) <= _MAX_OPEN_FILES:
            return
        newest = self._segments[-1] if self._segments else None
        for seg in list(self._open_files):
            if len(self._open_files) <= _MAX_OPEN_FILES:
                break
            if seg is newest or seg in self._unsynced or seg.fd is None:
                continue
            os.close(seg.fd)
            seg.fd = None
            self._open_files.remove(seg)

    def _forget(self, segment: OpenSegment) -> None:
        """Close a segment that is about to be deleted and stop tracking it."""
        if segment.fd is not None:
            os.close(segment.fd)
            segment.fd = None
        if segment in self._open_files:
            self._open_files.remove(segment)
        if segment in self._unsynced:
            self._unsynced.remove(segment)

    def _release(self) -> None:
        """Close every descriptor; the object is unusable afterwards."""
        for seg in self._open_files:
            if seg.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(seg.fd)
                seg.fd = None
        self._open_files.clear()
        self._closed = True


_BATCH_OVERHEAD = batch_size([])  # a batch record's header and count
_PER_ENTRY = batch_size([Record(0, 0, 0, b"")]) - _BATCH_OVERHEAD


def _term_changes(records: Sequence[Record], last_term: int | None) -> list[tuple[int, int]]:
    """The (index, term) pairs where ``records`` change term, from ``last_term`` on."""
    out = []
    for record in records:
        if record.term != last_term:
            last_term = record.term
            out.append((record.index, last_term))
    return out
