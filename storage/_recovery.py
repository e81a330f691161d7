"""Reading a log directory and deciding what recovery must do, without changing it.

Theory of operation: a log directory holds the segment files and one small
``state`` file, replaced atomically (``atomic_write``), which records

- ``first_index``: the first live index. Compaction writes it before deleting
  the segments it covers, so the first index survives restarts even when a
  segment still holds some compacted records, or none is left.
- ``truncate_from`` (0 when none): a truncation in progress. ``truncate_from``
  writes it, cuts the segments, then clears it, so a crash part-way through
  is finished on the next open and the log is the old one or the new one.
- ``newest`` (0 when unknown): the first index of the newest segment. It is
  written whenever a segment is created or the newest one changes, so a
  deleted newest segment, which leaves a log that merely looks shorter, is
  told apart from one that never grew (version 2; version 1 files have none).

:func:`plan_log` scans everything (every record's CRC, see ``_segment``) and
returns a :class:`LogPlan`: the live segments, and the repairs a crash may
have left owed: leftover temporary files, a batch record to rewrite (a cut
inside a batch, see ``_rewrite``), segments wholly before the first
index (an interrupted compaction), a torn tail or torn new segment to cut, a
truncation to finish (every segment after its point is deleted unread: a
power cut may have kept those deletions undone while the cut of the segment
before them stuck). ``SegmentLog.open`` carries the plan out; ``traft log
inspect`` and ``verify`` only print it. Damage that is not one of these
raises :class:`CorruptLogError` before anything is touched.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib

from ._errors import CorruptLogError
from ._rewrite import REWRITE_NAME, Rewrite, read_rewrite
from ._segment import SegmentScan, parse_segment_name, scan_segment, segment_name

STATE_NAME = "state"
STATE_MAGIC = b"TRAFTLOG"
STATE_VERSION = 2
STATE_FIELDS_V1 = struct.Struct("<8sIIQQ")
STATE_FIELDS = struct.Struct("<8sIIQQQ")
STATE_SIZE_V1 = STATE_FIELDS_V1.size + 4
STATE_SIZE = STATE_FIELDS.size + 4


class LogState:
    """The contents of a log's ``state`` file."""

    __slots__ = ("first_index", "truncate_from", "newest")

    def __init__(self, first_index: int, truncate_from: int = 0, newest: int = 0) -> None:
        self.first_index = first_index
        self.truncate_from = truncate_from
        self.newest = newest

    def encode(self) -> bytes:
        """The file's bytes: magic, version, flags, first index, truncate_from, newest, CRC."""
        fields = STATE_FIELDS.pack(
            STATE_MAGIC, STATE_VERSION, 0, self.first_index, self.truncate_from, self.newest
        )
        return fields + struct.pack("<I", zlib.crc32(fields))


def read_state(path: str) -> LogState:
    """Read and check the state file at ``path``.

    Raises:
        CorruptLogError: the file is short, has a bad CRC or impossible values.
        OSError: the file could not be read.
    """
    with open(path, "rb") as f:
        raw = f.read(STATE_SIZE + 1)
    if len(raw) not in (STATE_SIZE, STATE_SIZE_V1):
        raise CorruptLogError(path, 0, f"state file is {len(raw)} bytes, expected {STATE_SIZE}")
    fields = STATE_FIELDS if len(raw) == STATE_SIZE else STATE_FIELDS_V1
    (crc,) = struct.unpack_from("<I", raw, fields.size)
    if crc != zlib.crc32(raw[: fields.size]):
        raise CorruptLogError(path, fields.size, "bad CRC in state file")
    values = fields.unpack_from(raw)
    magic, version, _flags, first_index, truncate_from = values[:5]
    newest = values[5] if len(values) > 5 else 0
    if magic != STATE_MAGIC:
        raise CorruptLogError(path, 0, "not a log state file (bad magic)")
    if version != (STATE_VERSION if fields is STATE_FIELDS else 1):
        raise CorruptLogError(path, 8, f"unsupported state file version {version}")
    if first_index < 1 or (truncate_from and truncate_from < first_index):
        raise CorruptLogError(
            path, 16, f"impossible first index {first_index} / truncate_from {truncate_from}"
        )
    return LogState(first_index, truncate_from, newest)


class LogPlan:
    """What is in a log directory and what opening it will repair (see module docstring).

    ``segments`` are the live segments in index order; the last one's scan may
    carry a torn tail (``torn`` set) that is cut at ``end``. ``first_index`` and
    ``last_index`` are the log's bounds once the repairs are made.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.exists = os.path.isdir(path)
        self.state: LogState | None = None
        self.segments: list[SegmentScan] = []
        self.doomed: list[tuple[str, str]] = []  # (segment path, why it goes)
        self.dropped: list[SegmentScan] = []
        self.leftovers: list[str] = []
        self.first_index = 1
        self.last_index = 0
        self.truncate_from = 0
        self.rewrite: Rewrite | None = None

    @property
    def torn(self) -> SegmentScan | None:
        """The live segment whose torn tail will be cut, if any."""
        for scan in self.segments:
            if scan.torn is not None:
                return scan
        return None

    def repairs(self) -> list[str]:
        """Human-readable list of what opening the log would change."""
        return [text for _level, text in self.repairs_by_level()]

    def repairs_by_level(self) -> list[tuple[int, str]]:
        """:meth:`repairs` with a logging level each: WARNING where bytes a
        writer wrote are cut away (never acknowledged, but worth a look),
        INFO for the routine completion of an interrupted operation."""
        out = [(logging.INFO, f"delete leftover temporary file {name}") for name in self.leftovers]
        for seg_path, why in self.doomed:
            out.append((logging.INFO, f"delete {os.path.basename(seg_path)}: {why}"))
        for scan in self.dropped:
            out.append((logging.WARNING, f"delete {os.path.basename(scan.path)}: {scan.torn}"))
        torn = self.torn
        if torn is not None:
            text = f"cut {os.path.basename(torn.path)} to {torn.end} bytes: {torn.torn}"
            out.append((logging.WARNING, text))
        if self.rewrite is not None:
            rw = self.rewrite
            text = (
                f"rewrite the batch record at offset {rw.offset} of {segment_name(rw.segment)} "
                f"with its entries before index {rw.truncate_from}"
            )
            out.append((logging.INFO, text))
        if self.truncate_from:
            text = f"finish interrupted truncation from index {self.truncate_from}"
            out.append((logging.INFO, text))
        if self.state is None and not self.exists:
            out.append((logging.INFO, "create an empty log"))
        elif self.state is None:
            out.append((logging.INFO, "write the initial state file"))
        return out


def plan_log(path: str) -> LogPlan:
    """Scan the log directory ``path`` and plan its recovery; changes nothing.

    Raises:
        CorruptLogError: damage other than what a crash leaves (see module docstring).
        OSError: a file could not be read.
    """
    plan = LogPlan(path)
    if not plan.exists:
        return plan
    found: list[tuple[int, str]] = []
    has_state = False
    for name in os.listdir(path):
        index = parse_segment_name(name)
        if index is not None:
            found.append((index, os.path.join(path, name)))
        elif name == STATE_NAME:
            has_state = True
        elif name in (STATE_NAME + ".tmp", REWRITE_NAME + ".tmp"):
            plan.leftovers.append(name)
    found.sort()
    state_path = os.path.join(path, STATE_NAME)
    if not has_state:
        if found:
            raise CorruptLogError(
                state_path, 0, f"state file is missing but the log has {len(found)} segment(s)"
            )
        return plan
    state = plan.state = read_state(state_path)
    first = plan.first_index = state.first_index
    rewrite = read_rewrite(path)
    if rewrite is not None:
        if state.truncate_from and rewrite.truncate_from == state.truncate_from:
            plan.rewrite = rewrite  # an interrupted cut inside a batch (see _rewrite)
        else:
            plan.leftovers.append(REWRITE_NAME)
    if state.newest and not state.truncate_from and all(i != state.newest for i, _ in found):
        # The state names a newest segment that is gone: without this check
        # the log would just look shorter and acknowledged records would
        # vanish silently.
        raise CorruptLogError(
            os.path.join(path, segment_name(state.newest)),
            0,
            f"the newest segment (first index {state.newest}, named by the state file) "
            "is missing: records are lost",
        )

    # Segments after a pending truncation point go, whatever they hold: the
    # interrupted truncation may already have cut the one before them.
    cut = state.truncate_from
    if cut:
        while len(found) > 1 and found[-1][0] > cut:
            plan.doomed.append((found.pop()[1], f"after interrupted truncation from {cut}"))
    # Segments that end before the first index need not be scanned: the next
    # segment's name proves it. The last one is always scanned.
    live: list[SegmentScan] = []
    for k, (index, seg_path) in enumerate(found):
        is_last = k == len(found) - 1
        if not is_last and found[k + 1][0] <= first:
            plan.doomed.append((seg_path, "wholly before the first index (compacted)"))
            continue
        scan = scan_segment(seg_path, index, is_last)
        if scan.drop_file:
            plan.dropped.append(scan)
        else:
            live.append(scan)

    for prev, scan in zip(live, live[1:], strict=False):
        if scan.first_index != prev.last_index + 1:
            raise CorruptLogError(
                scan.path,
                0,
                f"segment starts at index {scan.first_index} but the previous segment "
                f"ends at {prev.last_index} (a segment is missing or out of place)",
            )
    if live and live[0].first_index > first:
        raise CorruptLogError(
            live[0].path,
            0,
            f"the log starts at index {first} (state file) but its first segment starts "
            f"at {live[0].first_index} (records are missing)",
        )
    # Segments holding only compacted records go, except an empty segment
    # waiting at the first index (it is where the next record goes).
    while live and live[0].last_index < first and live[0].first_index < first:
        plan.doomed.append((live.pop(0).path, "wholly before the first index (compacted)"))
    plan.segments = live
    plan.doomed.sort()
    last = live[-1].last_index if live else first - 1
    if state.truncate_from:
        plan.truncate_from = state.truncate_from
        last = min(last, state.truncate_from - 1)
    plan.last_index = last
    return plan
