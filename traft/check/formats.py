"""Reading and writing histories: traft's JSON lines and two Jepsen formats.

``traft``
    traft's own format, one JSON object per line, documented in
    ``docs/history-format.md``. :func:`write_history` writes it.
``jepsen-etcd``
    Jepsen's log of its etcd test (a compare-and-set register), lines
    ``INFO  jepsen.util - <process>\\t<type>\\t<f>\\t<value>`` (any run of
    whitespace may separate the fields); any other line is noise and skipped.
``edn-kv``
    One EDN map per line,
    ``{:process P, :type :invoke|:ok|:fail|:info, :f :get|:put|:append, :key "K", :value V}``.

In both Jepsen formats the time of an event is its line number, an ``:invoke``
opens an operation of its process and the process's next ``:ok`` / ``:fail`` /
``:info`` closes it; an operation still open at the end of the input has an
unknown outcome. The mapping of Jepsen's types onto :class:`Outcome` (a
``:fail`` cas *completed* with a mismatch; a timed-out read's result is
unknown) is spelt out next to each parser.

Every problem with the input is raised as one :class:`FormatError` that names
the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import attrs

from traft.check.history import KINDS, HistoryError, Operation, Outcome, Value

__all__ = [
    "FORMATS",
    "FormatError",
    "detect_format",
    "dump_operation",
    "parse_edn_kv",
    "parse_history",
    "parse_jepsen_etcd",
    "parse_traft",
    "read_history",
    "write_history",
]

FORMATS = ("traft", "jepsen-etcd", "edn-kv")


class FormatError(HistoryError):
    """The input is not a readable history in the expected format."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


# -- detection ---------------------------------------------------------------

# Jepsen separates the fields with tabs, but any run of whitespace between
# them is the same log (copies through editors and mail turn tabs to spaces).
_JEPSEN_LINE = re.compile(
    r"jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)(?:\s+(.*?))?\s*$"
)
_JEPSEN_MARK = re.compile(r"jepsen\.util\s+-\s")


def detect_format(text: str) -> str:
    """Guess the format of a history from its text.

    Raises:
        FormatError: the text looks like none of :data:`FORMATS`.
    """
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("{:"):
        return "edn-kv"
    if first.startswith("{"):
        return "traft"
    if _JEPSEN_MARK.search(text):
        return "jepsen-etcd"
    if not first:
        return "traft"  # an empty history, readable in the native format
    raise FormatError(
        "cannot tell the format (not JSON lines, EDN maps or a Jepsen log); "
        f"name it with one of {', '.join(FORMATS)}"
    )


def parse_history(text: str, fmt: str = "auto") -> list[Operation]:
    """Parse ``text`` in format ``fmt`` (``"auto"`` to detect it).

    Raises:
        FormatError: the text is not a valid history in that format.
        ValueError: ``fmt`` is not ``"auto"`` nor one of :data:`FORMATS`.
    """
    if fmt == "auto":
        fmt = detect_format(text)
    if fmt == "traft":
        return parse_traft(text.splitlines())
    if fmt == "jepsen-etcd":
        return parse_jepsen_etcd(text)
    if fmt == "edn-kv":
        return parse_edn_kv(text)
    raise ValueError(f"unknown history format {fmt!r} (choose auto or {', '.join(FORMATS)})")


def read_history(path: str | Path, fmt: str = "auto") -> list[Operation]:
    """Read the history file at ``path``.

    Raises:
        OSError: the file cannot be read.
        FormatError: it is not valid UTF-8 or not a valid history in that format.
        ValueError: ``fmt`` names no format.
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_history(text, fmt)


# -- traft JSON lines ----------------------------------------------------------

_FIELDS = frozenset(
    {"process", "call", "return", "op", "key", "value", "prev", "outcome", "result"}
)
_REQUIRED = ("process", "call", "return", "op", "outcome")


def parse_traft(lines: Iterable[str]) -> list[Operation]:
    """Parse traft's JSON lines format (``docs/history-format.md``).

    Raises:
        FormatError: a line is not a JSON object, lacks or misspells a field,
            holds a value of the wrong type, or describes an invalid operation.
    """
    ops: list[Operation] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"not JSON: {exc.msg}", number) from None
        if not isinstance(obj, dict):
            raise FormatError("each line must be a JSON object", number)
        try:
            ops.append(_operation_from_json(obj))
        except HistoryError as exc:
            raise FormatError(str(exc), number) from None
    return ops


def _operation_from_json(obj: dict[str, Any]) -> Operation:
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise HistoryError(f"unknown field {unknown[0]!r}")
    missing = [name for name in _REQUIRED if name not in obj]
    if missing:
        raise HistoryError(f"missing field {missing[0]!r}")
    process = obj["process"]
    if not _is_int(process):
        raise HistoryError(f"process must be an integer, not {process!r}")
    call, ret = obj["call"], obj["return"]
    if not _is_number(call):
        raise HistoryError(f"call must be a number, not {call!r}")
    if ret is not None and not _is_number(ret):
        raise HistoryError(f"return must be a number or null, not {ret!r}")
    kind = obj["op"]
    if kind not in KINDS:
        raise HistoryError(f"unknown op {kind!r} (one of {', '.join(KINDS)})")
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        raise HistoryError(f"key must be a string or null, not {key!r}")
    try:
        outcome = Outcome(obj["outcome"])
    except ValueError:
        raise HistoryError(f"outcome must be ok, fail or unknown, not {obj['outcome']!r}") from None
    op = Operation(
        process=process,
        call=call,
        ret=ret,
        kind=kind,
        key=key,
        arg=obj.get("value"),
        prev=obj.get("prev"),
        result=obj.get("result"),
        outcome=outcome,
    )
    op.validate()
    return op


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def dump_operation(op: Operation) -> str:
    """One line of traft's format (without the newline) for ``op``."""
    obj: dict[str, Value] = {
        "process": op.process,
        "call": op.call,
        "return": op.ret,
        "op": op.kind,
    }
    if op.key is not None:
        obj["key"] = op.key
    if op.arg is not None:
        obj["value"] = op.arg
    if op.prev is not None:
        obj["prev"] = op.prev
    obj["outcome"] = op.outcome.value
    if op.result is not None:
        obj["result"] = op.result
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def write_history(ops: Iterable[Operation], stream: TextIO) -> None:
    """Write ``ops`` to ``stream`` in traft's format, one line each.

    Raises:
        HistoryError: an operation is invalid.
    """
    for op in ops:
        op.validate()
        stream.write(dump_operation(op))
        stream.write("\n")


# -- Jepsen: pairing invocations with completions ------------------------------


@attrs.define
class _Open:
    line: int
    kind: str
    key: str | None
    arg: Value
    prev: Value


class _Pairer:
    """Turns Jepsen's invoke / complete events into operations."""

    def __init__(self) -> None:
        self.open: dict[int, _Open] = {}
        self.ops: list[tuple[int, Operation]] = []

    def invoke(
        self, line: int, process: int, kind: str, key: str | None, arg: Value, prev: Value
    ) -> None:
        if process in self.open:
            raise FormatError(
                f"process {process} invokes {kind} while its {self.open[process].kind} "
                f"of line {self.open[process].line} is still open",
                line,
            )
        self.open[process] = _Open(line, kind, key, arg, prev)

    def complete(
        self, line: int, process: int, kind: str, key: str | None, outcome: Outcome, result: Value
    ) -> None:
        started = self.open.pop(process, None)
        if started is None:
            raise FormatError(f"process {process} completes a {kind} it never invoked", line)
        if started.kind != kind or started.key != key:
            raise FormatError(
                f"process {process} completes {kind} but invoked {started.kind} "
                f"on line {started.line}",
                line,
            )
        self._add(process, started, float(line), outcome, result)

    def _add(
        self, process: int, started: _Open, ret: float | None, outcome: Outcome, result: Value
    ) -> None:
        op = Operation(
            process=process,
            call=float(started.line),
            ret=ret,
            kind=started.kind,
            key=started.key,
            arg=started.arg,
            prev=started.prev,
            result=result if outcome is Outcome.OK else None,
            outcome=outcome,
        )
        try:
            op.validate()
        except HistoryError as exc:
            raise FormatError(str(exc), started.line) from None
        self.ops.append((started.line, op))

    def finish(self) -> list[Operation]:
        for process, started in list(self.open.items()):
            self._add(process, started, None, Outcome.UNKNOWN, None)
        self.open.clear()
        self.ops.sort(key=lambda item: item[0])
        return [op for _, op in self.ops]


# -- jepsen-etcd -----------------------------------------------------------------

_INT = re.compile(r"-?\d+")
_PAIR = re.compile(r"\[\s*(-?\d+)\s+(-?\d+)\s*\]")


def parse_jepsen_etcd(text: str) -> list[Operation]:
    """Parse a Jepsen etcd log into register operations (time = line number).

    Mapping (see the data set's README): ``:ok`` read / write / cas complete
    with their result (a read of ``nil`` returns ``None``, a cas ``True``);
    ``:fail :cas`` completed with a mismatch (``OK``, result ``False``: the
    register did not hold the expected value); ``:fail :read`` has an unknown
    result (``UNKNOWN``); ``:fail :write`` did not take effect (``FAIL``);
    ``:info`` is ``UNKNOWN``.

    Raises:
        FormatError: an operation line has an unreadable value, a process
            completes an operation it did not invoke or invokes two at once,
            or a non-empty log has no operation at all.
    """
    pairer = _Pairer()
    seen_any = False
    for number, line in enumerate(text.splitlines(), start=1):
        m = _JEPSEN_LINE.search(line)
        if m is None:
            continue
        seen_any = True
        process, typ, f, raw = int(m.group(1)), m.group(2), m.group(3), m.group(4) or ""
        if typ == "invoke":
            arg: Value = None
            prev: Value = None
            if f == "write":
                arg = _etcd_int(raw, number)
            elif f == "cas":
                prev, arg = _etcd_pair(raw, number)
            pairer.invoke(number, process, f, None, arg, prev)
            continue
        if typ == "info":
            outcome, result = Outcome.UNKNOWN, None
        elif typ == "ok":
            outcome = Outcome.OK
            if f == "read":
                result = None if raw == "nil" else _etcd_int(raw, number)
            else:
                result = True if f == "cas" else None
        elif f == "cas":
            outcome, result = Outcome.OK, False
        elif f == "read":
            outcome, result = Outcome.UNKNOWN, None
        else:
            outcome, result = Outcome.FAIL, None
        pairer.complete(number, process, f, None, outcome, result)
    if not seen_any and text.strip():
        raise FormatError("no Jepsen operation lines found (not a jepsen-etcd log?)")
    return pairer.finish()


def _etcd_int(raw: str, line: int) -> int:
    if not _INT.fullmatch(raw):
        raise FormatError(f"expected an integer, found {raw!r}", line)
    return int(raw)


def _etcd_pair(raw: str, line: int) -> tuple[int, int]:
    m = _PAIR.fullmatch(raw)
    if m is None:
        raise FormatError(f"expected [from to], found {raw!r}", line)
    return int(m.group(1)), int(m.group(2))


# -- edn-kv ------------------------------------------------------------------------

_EDN_TOKEN = re.compile(
    r"""\s*(?:
        (?P<brace>[{}])
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<keyword>:[^\s,{}\[\]()"]+)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<symbol>nil|true|false)
    )\s*,?""",
    re.VERBOSE,
)
_EDN_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _edn_string(token: str) -> str:
    return re.sub(r"\\(.)", lambda m: _EDN_ESCAPES.get(m.group(1), m.group(1)), token[1:-1])


def _edn_map(line: str, number: int) -> dict[str, object]:
    """Read one flat EDN map of keyword keys and scalar values."""
    tokens: list[tuple[str, object]] = []
    pos = 0
    text = line.strip()
    while pos < len(text):
        m = _EDN_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FormatError(f"unreadable EDN at column {pos + 1}", number)
        pos = m.end()
        group = m.lastgroup
        token = m.group(group or "")
        if group == "brace":
            tokens.append(("brace", token))
        elif group == "string":
            tokens.append(("value", _edn_string(token)))
        elif group == "keyword":
            tokens.append(("keyword", token[1:]))
        elif group == "number":
            tokens.append(("value", float(token) if "." in token else int(token)))
        else:
            tokens.append(("value", {"nil": None, "true": True, "false": False}[token]))
    if len(tokens) < 2 or tokens[0] != ("brace", "{") or tokens[-1] != ("brace", "}"):
        raise FormatError("expected one EDN map {...} per line", number)
    body = tokens[1:-1]
    if len(body) % 2:
        raise FormatError("EDN map with an odd number of forms", number)
    result: dict[str, object] = {}
    for (ktype, k), (vtype, v) in zip(body[::2], body[1::2], strict=True):
        if ktype != "keyword" or vtype == "brace" or not isinstance(k, str):
            raise FormatError("EDN map keys must be keywords and values scalars", number)
        result[k] = f":{v}" if vtype == "keyword" else v
    return result


def parse_edn_kv(text: str) -> list[Operation]:
    """Parse Jepsen kv EDN lines into kv operations (time = line number).

    ``:ok`` completes with the returned value as result for ``get`` (the
    string read, ``""`` when the key is absent); ``:fail`` did not take
    effect; ``:info`` and operations left open are ``UNKNOWN``.

    Raises:
        FormatError: a line is not such a map, has a missing or wrongly typed
            entry, or breaks the invoke/complete pairing.
    """
    pairer = _Pairer()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entry = _edn_map(line, number)
        process = entry.get("process")
        typ = entry.get("type")
        f = entry.get("f")
        key = entry.get("key")
        value = entry.get("value")
        if not _is_int(process):
            raise FormatError(f":process must be an integer, not {process!r}", number)
        assert isinstance(process, int)
        if typ not in (":invoke", ":ok", ":fail", ":info"):
            raise FormatError(f":type must be :invoke, :ok, :fail or :info, not {typ!r}", number)
        if f not in (":get", ":put", ":append"):
            raise FormatError(f":f must be :get, :put or :append, not {f!r}", number)
        if not isinstance(key, str):
            raise FormatError(f":key must be a string, not {key!r}", number)
        if value is not None and not isinstance(value, str | int | float | bool):
            raise FormatError(f":value must be a scalar, not {value!r}", number)
        kind = str(f)[1:]
        if typ == ":invoke":
            pairer.invoke(number, process, kind, key, None if kind == "get" else value, None)
        elif typ == ":ok":
            pairer.complete(
                number, process, kind, key, Outcome.OK, value if kind == "get" else None
            )
        else:
            outcome = Outcome.FAIL if typ == ":fail" else Outcome.UNKNOWN
            pairer.complete(number, process, kind, key, outcome, None)
    return pairer.finish()
