"""``traft check``: exit statuses, messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from traft.cli import main

LINEARIZABLE = (
    '{"process": 1, "call": 0, "return": 1, "op": "write", "value": 1, "outcome": "ok"}\n'
    '{"process": 2, "call": 2, "return": 3, "op": "read", "outcome": "ok", "result": 1}\n'
)
NOT_LINEARIZABLE = (
    '{"process": 1, "call": 0, "return": 1, "op": "write", "value": 1, "outcome": "ok"}\n'
    '{"process": 2, "call": 2, "return": 3, "op": "read", "outcome": "ok", "result": 2}\n'
)


def _file(tmp_path: Path, text: str, name: str = "history.jsonl") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_linearizable_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, LINEARIZABLE)
    assert main(["check", path, "--model", "register"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: linearizable (2 operations, 1 partition,")


@pytest.mark.timeout(30)
def test_space_separated_jepsen_log_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 10 bug 9: this exited 2 with "no Jepsen operation lines found"."""
    text = (
        "INFO  jepsen.util - 0 :invoke :write 1\n"
        "INFO  jepsen.util - 0 :ok :write 1\n"
        "INFO  jepsen.util - 1 :invoke :cas [1 2]\n"
        "INFO  jepsen.util - 1 :ok :cas [1 2]\n"
        "INFO  jepsen.util - 2 :invoke :read nil\n"
        "INFO  jepsen.util - 2 :ok :read 2\n"
    )
    path = _file(tmp_path, text, "jepsen.log")
    assert main(["check", path, "--model", "register"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: linearizable (3 operations,")


def test_not_linearizable_exits_1_with_explanation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, NOT_LINEARIZABLE)
    assert main(["check", path, "--model", "register", "--format", "traft"]) == 1
    out = capsys.readouterr().out
    assert "NOT linearizable" in out
    assert "p2 read() = 2 [2, 3] must take effect" in out


def test_quiet_prints_only_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, NOT_LINEARIZABLE)
    assert main(["check", path, "--model", "register", "-q"]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_undecided_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Concurrent unknown writes, reads of each, then a read of a value none wrote.
    lines = [
        f'{{"process": {i}, "call": 0, "return": null, "op": "write", "value": {i}, "outcome": "unknown"}}'
        for i in range(20)
    ]
    lines += [
        f'{{"process": {100 + i}, "call": 1, "return": 100, "op": "read", "outcome": "ok", "result": {i}}}'
        for i in range(20)
    ]
    lines.append(
        '{"process": 999, "call": 200, "return": 201, "op": "read", "outcome": "ok", "result": -1}'
    )
    path = _file(tmp_path, "\n".join(lines) + "\n")
    assert main(["check", path, "--model", "register", "--timeout", "0.2"]) == 2
    out = capsys.readouterr().out
    assert "undecided" in out and "did not finish within 0.2 s" in out


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("{oops\n", [], "line 1: not JSON"),
        (NOT_LINEARIZABLE, ["--format", "edn-kv"], "line 1: unreadable EDN"),
        (LINEARIZABLE, ["--model", "kv"], "model kv has no operation 'write'"),
        ("just some words\n", [], "cannot tell the format"),
    ],
)
def test_unreadable_input_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    args: list[str],
    message: str,
) -> None:
    path = _file(tmp_path, text)
    if "--model" not in args:
        args = [*args, "--model", "register"]
    assert main(["check", path, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("traft check: error: ")
    assert message in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.jsonl"), "--model", "kv"]) == 2
    assert "No such file or directory" in capsys.readouterr().err


def test_binary_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["check", str(path), "--model", "kv"]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_bad_timeout_is_a_usage_error(tmp_path: Path) -> None:
    path = _file(tmp_path, LINEARIZABLE)
    with pytest.raises(SystemExit) as exc:
        main(["check", path, "--model", "register", "--timeout", "-1"])
    assert exc.value.code == 2


def test_command_line_entry_point_has_no_traceback(tmp_path: Path) -> None:
    path = _file(tmp_path, "{oops\n")
    proc = subprocess.run(
        [sys.executable, "-m", "traft.cli", "check", path, "--model", "kv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "line 1: not JSON" in proc.stderr


def test_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(NOT_LINEARIZABLE))
    assert main(["check", "-", "--model", "register", "-q"]) == 1
    assert capsys.readouterr().out.startswith("-: NOT linearizable")
