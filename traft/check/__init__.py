"""traft.check: a linearizability checker for recorded histories.

Pure Python (standard library and attrs), no I/O in the checker core.
Record a history with :class:`History` (or build :class:`Operation` values),
then ask :func:`check_history` whether it is linearizable for one of the
sequential specifications in :data:`MODELS` (``register``, ``kv``,
``tickets``). :mod:`traft.check.formats` reads traft's JSON lines and two
Jepsen formats; ``traft check FILE --model M`` is the command-line face.

The search is Wing & Gong's (1993) with Lowe's (2017) memoisation; see
:mod:`traft.check.linearizability` for the theory of operation.
"""

from traft.check.formats import (
    FORMATS,
    FormatError,
    parse_history,
    read_history,
    write_history,
)
from traft.check.history import KINDS, History, HistoryError, Operation, Outcome, Value
from traft.check.linearizability import CheckResult, Verdict, Violation, check_history
from traft.check.models import MODELS, KVModel, Model, RegisterModel, TicketsModel, get_model

__all__ = [
    "FORMATS",
    "KINDS",
    "MODELS",
    "CheckResult",
    "FormatError",
    "History",
    "HistoryError",
    "KVModel",
    "Model",
    "Operation",
    "Outcome",
    "RegisterModel",
    "TicketsModel",
    "Value",
    "Verdict",
    "Violation",
    "check_history",
    "get_model",
    "parse_history",
    "read_history",
    "write_history",
]
