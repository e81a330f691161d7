"""The ``traft`` command.

Each subcommand lives in its own module, which provides ``configure(parser)``
to declare its arguments and ``run(args) -> int`` to carry it out. The module
is imported only when its subcommand runs, so ``traft --help`` stays fast and a
subcommand's dependencies load only when needed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="traft",
        description="traft: Raft consensus for Python (core, simulator, node and tools).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in sorted(COMMANDS.items()):
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(sub_parser)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``traft`` command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args._module.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
