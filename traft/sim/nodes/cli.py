"""``traft sim --nodes``: run whole-node simulations and print what they found.

The options are those of ``traft sim``; the ones that apply here keep their
names (``--servers``, ``--seed``/``--seeds``, ``--duration-ms``,
``--calm-ms``, ``--election-timeout-ms``, ``--heartbeat-ms``, ``--drop``,
``--dupe``, ``--reorder``, ``--delay-ms``, ``--partition``, ``--member``,
``--crash``, ``--clients``, ``--keys``, ``--no-history-check``,
``--history``, ``--calm``, ``-q``, ``-v``, ``--json``). An option left at
``traft sim``'s default takes the node mode's default instead
(:class:`~traft.sim.nodes.options.NodeSimOptions`); ``--step-ms`` is the
nemesis's step. The first failing seed stops the command, which prints the
failed check, the last events and the command that replays the run.
Exit status: 0 when every run passed, 1 on a failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import attrs

from traft.sim.nodes.options import NodeSimOptions
from traft.sim.nodes.runner import run_one
from traft.sim.runner import SimOptions

_CORE = SimOptions()
_NODE = NodeSimOptions()
# traft sim's option name -> NodeSimOptions field, for the options both modes have.
_SHARED = (
    "servers",
    "duration_ms",
    "calm_ms",
    "step_ms",
    "election_timeout_ms",
    "heartbeat_ms",
    "drop",
    "dupe",
    "reorder",
    "delay_ms",
    "partition",
    "member",
    "crash",
    "clients",
    "keys",
)
_RATES = ("drop", "dupe", "reorder", "partition", "member", "crash", "enospc", "eio", "slow_fsync")


def given_options(argv: list[str]) -> set[str]:
    """The ``traft sim`` option names (dests) that appear in ``argv``."""
    from traft.sim.cli import configure

    parser = argparse.ArgumentParser(add_help=False)
    configure(parser)
    flags = {s: a.dest for a in parser._actions for s in a.option_strings}  # noqa: SLF001
    return {flags[token.split("=")[0]] for token in argv if token.split("=")[0] in flags}


def options_from(args: argparse.Namespace, argv: list[str] | None = None) -> NodeSimOptions:
    """The node mode's options from ``traft sim``'s parsed arguments.

    An option counts when it appears in ``argv``; without ``argv``, when its
    value differs from ``traft sim``'s default.
    """
    given = given_options(argv) if argv is not None else None
    values: dict[str, Any] = {}
    for name in _SHARED:
        value = getattr(args, name, None)
        if value is None:
            continue
        if given is not None and name not in given:
            continue
        if given is None and value == getattr(_CORE, name):
            continue
        values[name] = tuple(value) if name == "delay_ms" else value
    if getattr(args, "calm", False):
        for name in _RATES:
            values.setdefault(name, 0.0)
    if getattr(args, "no_history_check", False):
        values["check_history"] = False
    return attrs.evolve(_NODE, **values)


def replay_command(options: NodeSimOptions, seed: int) -> str:
    """A command line that replays one run exactly."""
    parts = ["traft sim --nodes"]
    for field in attrs.fields(NodeSimOptions):
        name = field.name
        value = getattr(options, name)
        if value == getattr(_NODE, name):
            continue
        flag = "--" + name.replace("_", "-")
        if name not in _SHARED and name != "check_history":
            # Not settable from the command line: say so rather than drop it.
            parts.append(f"(option {name}={value!r})")
        elif name == "check_history":
            parts.append("--no-history-check")
        elif name == "delay_ms":
            parts.append(f"{flag} {value[0]}..{value[1]}")
        elif isinstance(value, float):
            parts.append(f"{flag} {value:g}")
        else:
            parts.append(f"{flag} {value}")
    parts.append(f"--seed {seed} -v")
    return " ".join(parts)


_LINE = (
    "seed {seed}: servers {servers} virtual {virtual_s}s ops {operations} "
    "(ok {ops_ok} fail {ops_fail} unknown {ops_unknown}) crashes {crashes} "
    "disk crash points {disk_crash_points} power losses {power_losses} "
    "disk errors {disk_errors} partitions {partitions} added {members_added} "
    "removed {members_removed} {speed}x real time"
)


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Run the seeds of ``traft sim --nodes``; returns the exit status.

    ``argv`` (the command line) tells which options were given (see :func:`options_from`).
    """
    options = options_from(args, argv)
    if args.seeds is not None:
        first, last = args.seeds
    else:
        first = last = args.seed if args.seed is not None else 0
    out = sys.stderr if args.json else sys.stdout
    records: list[dict[str, Any]] = []
    status = 0
    virtual = cpu = 0.0
    for seed in range(first, last + 1):
        result = run_one(options, seed)
        s = result.summary
        virtual += s["virtual_s"]
        cpu += s["sim_cpu_s"]
        if args.history:
            path = args.history.replace("{seed}", str(seed))
            # traft check takes one model per file: the tickets go beside the KV operations.
            lines = result.history.splitlines(keepends=True)
            tickets = [line for line in lines if '"ticket"' in line]
            with open(path, "w", encoding="utf-8") as stream:
                stream.writelines(line for line in lines if '"ticket"' not in line)
            with open(path + ".tickets", "w", encoding="utf-8") as stream:
                stream.writelines(tickets)
        record = dict(s, fingerprint=result.fingerprint)
        if args.verbose:
            print(f"seed {seed}:", file=out)
            for key, value in s.items():
                print(f"  {key.replace('_', ' ')}: {value}", file=out)
            print(f"  fingerprint: {result.fingerprint}", file=out)
        elif not args.quiet or result.failures:
            print(_LINE.format(**s), file=out)
        if result.failures:
            replay = replay_command(options, seed)
            record["replay"] = replay
            record["failed"] = [attrs.asdict(f) for f in result.failures]
            print("last events:", file=out)
            for line in result.events[-25 if not args.verbose else -80 :]:
                print(f"  {line}", file=out)
            for failure in result.failures:
                print(f"FAILED {failure.check} at seed {seed}: {failure.detail}", file=out)
            print(f"replay: {replay}", file=out)
            records.append(record)
            status = 1
            break
        records.append(record)
    speed = round(virtual / cpu, 1) if cpu else 0.0
    print(
        f"{len(records)} run(s), {virtual:.0f} virtual s in {cpu:.1f} CPU s "
        f"({speed}x real time), {'1 failure' if status else 'no failures'}",
        file=out,
    )
    if args.json:
        json.dump({"ok": status == 0, "runs": records}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    return status
