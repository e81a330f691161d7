"""The ``traft`` command.

Each subcommand lives in its own module, which provides ``configure(parser)``
to declare its arguments and ``run(args) -> int`` to carry it out. The module
is imported only when its subcommand runs (or its ``--help`` is asked for), so
``traft --help`` imports nothing but argparse and a subcommand's dependencies
(trio, prometheus-client, cattrs, ...) load only when needed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # not typing's: ``traft --help`` does without importing typing
if TYPE_CHECKING:
    from typing import Any

# name -> (module, one-line help). Keep sorted by name.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("traft.check.cli", "Check a recorded history for linearizability"),
    "del": ("traft.kv.cli.delete", "Delete a key (client)"),
    "get": ("traft.kv.cli.get", "Print a key's value, read linearizably (client)"),
    "leader": ("traft.kv.cli.leader", "Transfer leadership to another node (client)"),
    "log": ("traft.logcmd", "Inspect or verify a node's data directory without changing it"),
    "member": ("traft.kv.cli.member", "Add or remove a cluster member (client)"),
    "put": ("traft.kv.cli.put", "Set a key, or compare-and-set with --prev (client)"),
    "serve": ("traft.kv.serve", "Run one node of the replicated key-value and ticket service"),
    "sim": ("traft.sim.cli", "Run the deterministic chaos simulator and check Raft's invariants"),
    "status": ("traft.kv.cli.status", "Show every node's role, term, commit and log (client)"),
    "ticket": ("traft.kv.cli.ticket", "Take a unique, increasing ticket number (client)"),
}


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: arguments it does not know are its own usage error.

    Plain argparse hands a subcommand's leftover arguments back to the
    top-level parser, which reports them with ``traft``'s usage; ``traft put a
    b c`` should show ``put``'s. Nested subcommands (``member add``) get this
    class too, because argparse makes them with the parent's class.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed, extra


class _Version(argparse.Action):
    """``--version``: read from the installed package's metadata, only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print traft's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("traft")
        except PackageNotFoundError:
            text = "unknown (not installed)"
        print(f"traft {text}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported and configured.

    Every subcommand is listed (with its one-line help) whatever ``command`` is;
    ``None`` configures none of them, which is enough for ``traft --help``.
    """
    parser = argparse.ArgumentParser(
        prog="traft",
        description="traft: Raft consensus for Python (core, simulator, node and tools).",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubcommandParser)
    for name, (module_name, help_text) in sorted(COMMANDS.items()):
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.configure(sub_parser)
            sub_parser.set_defaults(_module=module)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    # The top-level options take no value, so the first word that is not an
    # option names the subcommand (argparse itself reports a wrong one).
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``traft`` command line; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args._module.run(args)
    return status


def traft_command() -> str:
    """How to type the ``traft`` command here, for hints such as "now run traft status".

    ``traft`` when the one on ``PATH`` is this installation's; otherwise this
    installation's script, relative to the current directory when it is below
    it (``.venv/bin/traft`` after ``make``, whose venv is not activated).
    """
    import os
    import shutil
    from pathlib import Path  # here, not at the top: ``traft --help`` needs neither

    script = Path(sys.executable).parent / "traft"
    on_path = shutil.which("traft")
    if not script.exists():
        return "traft" if on_path else f"{sys.executable} -m traft.cli"
    if on_path and Path(on_path).resolve() == script.resolve():
        return "traft"
    absolute = script.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return os.fspath(absolute)


if __name__ == "__main__":
    sys.exit(main())
