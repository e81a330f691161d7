"""The ``traft`` command itself: lazy subcommands, --version, usage errors, help, hints."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from traft import cli
from traft.sim import cli as sim_cli

pytestmark = pytest.mark.timeout(60)

HEAVY = ("trio", "prometheus_client", "cattrs", "msgpack", "hypercorn", "attrs", "traft.core")


def imported_by(*argv: str) -> set[str]:
    """The modules a fresh interpreter has loaded after ``traft ARGV``."""
    code = (
        "import sys, json, traft.cli\n"
        "try:\n"
        f"    traft.cli.main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_imports_no_subcommand() -> None:
    modules = imported_by("--help")
    assert not {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY}
    assert not {m for m in modules if m.startswith(("traft.kv", "traft.sim", "traft.check"))}


def test_a_subcommand_loads_only_its_own_module() -> None:
    modules = imported_by("log", "--help")
    assert "traft.logcmd" in modules
    assert not {m for m in modules if m.startswith(("traft.kv", "traft.sim", "traft.check"))}


def test_version_comes_from_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"traft {version('traft')}\n"


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["put", "a", "b", "c"], "usage: traft put "),
        (["get", "a", "b"], "usage: traft get "),
        (["member", "add", "4", "h:1", "h:2", "extra"], "usage: traft member add "),
        (["log", "inspect", "d", "extra"], "usage: traft log inspect "),
    ],
)
def test_extra_arguments_show_the_subcommands_usage(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and f"unrecognized arguments: {argv[-1]}" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout", "0"], "--timeout: must be more than 0 seconds, got 0"),
        (["--timeout", "-1"], "--timeout: must be more than 0 seconds"),
        (["--timeout", "nan"], "--timeout: must be more than 0 seconds"),
        (["--timeout", "soon"], "--timeout: not a number of seconds: 'soon'"),
        (["--retry-for", "-0.5"], "--retry-for: must be 0 or more seconds, got -0.5"),
        (["--retry-for", "inf"], "--retry-for: must be 0 or more seconds"),
    ],
)
def test_bad_timeouts_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["get", "k", "--url", "http://127.0.0.1:1", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: traft get ") and message in err


def test_retry_for_zero_is_allowed() -> None:
    parser = cli.build_parser("get")
    args = parser.parse_args(["get", "k", "--retry-for", "0", "--timeout", "0.5"])
    assert (args.retry_for, args.timeout) == (0.0, 0.5)


def test_sim_help_gives_every_options_default() -> None:
    parser = argparse.ArgumentParser(prog="traft sim")
    sim_cli.configure(parser)
    text = parser.format_help()
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0:
            continue  # --help and on/off flags (off unless given)
        assert action.help, f"{action.option_strings[0]} has no help"
        # The option's entry: from its line to the next line that starts an option.
        # (at a line's start: another option's wrapped help may name it too)
        start = text.index(f"\n  {', '.join(action.option_strings)} ") + 1
        end = text.find("\n  -", start + 1)
        entry = " ".join(text[start:end].split())
        assert "default" in entry, entry
        if action.default is not None:
            shown = (
                f"{action.default[0]}..{action.default[1]}"
                if isinstance(action.default, tuple)
                else str(action.default)
            )
            assert shown in entry, entry


def test_hints_name_the_venvs_traft_when_traft_is_not_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bindir = tmp_path / ".venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "traft").write_text("#!/bin/sh\n")
    (bindir / "traft").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bindir / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cli.traft_command() == ".venv/bin/traft"
    monkeypatch.setenv("PATH", str(bindir))
    assert cli.traft_command() == "traft"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cli.traft_command() == str(bindir / "traft")
