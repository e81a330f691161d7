"""``traft sim``: run the deterministic chaos simulator and check Raft's invariants.

Each seed is one run of :class:`~traft.sim.runner.Simulation`; the options
map one to one onto :class:`~traft.sim.runner.SimOptions`. The command stops
at the first run that breaks an invariant and prints the invariant, the
seed, the iteration and a command that replays exactly that run. Exit
status: 0 when every run held every invariant, 1 on a violation, 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import attrs

from traft.check import write_history
from traft.sim.runner import RunResult, SimOptions, Simulation

# traft sim's defaults: SimOptions' own, with swarm testing on.
_DEFAULTS = attrs.evolve(SimOptions(), swarm=True)

# (flag, SimOptions field, help). Rates are percentages.
_RATES = (
    ("--drop", "drop", "percent of delivered messages lost"),
    ("--dupe", "dupe", "percent of delivered messages also delivered again later"),
    ("--reorder", "reorder", "percent of delivered messages swapped with a later due one"),
    ("--partition", "partition", "percent chance per iteration that a partition starts"),
    ("--member", "member", "percent chance per iteration of a membership change"),
    ("--compaction", "compaction", "percent chance per iteration of a snapshot on one server"),
    ("--crash", "crash", "percent chance per iteration that a server crashes"),
    (
        "--install-crash",
        "install_crash",
        "percent of snapshot installs that crash between two of their steps",
    ),
    (
        "--stale-compaction",
        "stale_compaction",
        "percent of partition heals, while a server holds a stale tail past the leader's "
        "applied index, before which the leader compacts (the server then installs a "
        "snapshot its tail contradicts)",
    ),
    (
        "--early-send",
        "early_send",
        "percent of servers whose driver sends a leader's Ready before its fsync "
        "(thesis 10.2.1; the fsync then takes --fsync-ms while input goes on)",
    ),
    (
        "--chase",
        "chase",
        "percent of snapshots a leader is asked to send after which it keeps snapshotting "
        "while the follower waits for it (a leader snapshotting faster than a transfer takes)",
    ),
    ("--readd", "readd", "percent of membership changes that try to re-add a removed id"),
    (
        "--away",
        "away",
        "percent of removals whose server is crashed at once and kept down while the "
        "removal commits and the leader compacts",
    ),
    (
        "--transfer",
        "transfer",
        "percent chance per iteration that the leader is asked to transfer leadership "
        "to a random voter (thesis §3.10)",
    ),
    (
        "--replay",
        "replay",
        "percent chance per iteration that 1 to 3 old messages, sampled from the whole run "
        "so far, are delivered again",
    ),
    (
        "--leader-crash",
        "leader_crash",
        "percent of new leaders crashed before their term has committed an entry (at once "
        "or inside their next Ready)",
    ),
    (
        "--force-election",
        "force_election",
        "percent of voting membership changes after which the leader crashes (inside the "
        "Ready that carries the change, or once it is sent) and the next leader is asked "
        "for a change at once",
    ),
    (
        "--client",
        "client",
        "percent chance per iteration that a client starts an operation; "
        "above 100, operations per 100 iterations",
    ),
)


def _range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("..")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or A..B, got {text!r}") from None
    if b < a or a < 0:
        raise argparse.ArgumentTypeError(f"empty or negative range {text!r}")
    return a, b


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a percentage is 0..100, got {text}")
    return value


def _client_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a rate is not negative, got {text}")
    return value


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default X)" to every option's help that does not say it already.

    Not for on/off flags (off by default) and options without a default.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or action.default in (None, False, argparse.SUPPRESS)
        ):
            return text
        return f"{text} (default %(default)s)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``traft sim``."""
    parser.formatter_class = _HelpFormatter
    parser.epilog = (
        "Units: one iteration is --step-ms of virtual time. --drop, --dupe and\n"
        "--reorder are percentages of delivered messages; the other rates are\n"
        "percentage chances per iteration and may be fractions (--crash 0.2 is\n"
        "one crash every 500 iterations on average). Same options and seed give\n"
        "the same run, message for message."
    )
    g = parser.add_argument_group("cluster and length")
    g.add_argument(
        "--nodes",
        action="store_true",
        help="simulate whole nodes: real traft.node.Node drivers with the KV service, a "
        "simulated disk and network, virtual time (see docs/simulator.md)",
    )
    g.add_argument("--servers", type=int, default=_DEFAULTS.servers, help="initial voters")
    length = g.add_mutually_exclusive_group()
    length.add_argument(
        "--iterations", type=int, default=_DEFAULTS.iterations, help="iterations per run"
    )
    length.add_argument(
        "--duration-ms",
        type=int,
        default=None,
        help="virtual time per run, instead of --iterations (default: set by --iterations)",
    )
    seeds = g.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    seeds.add_argument(
        "--seeds", type=_range, default=None, metavar="A..B", help="seeds A to B (default: --seed)"
    )
    g.add_argument(
        "--step-ms", type=int, default=_DEFAULTS.step_ms, help="virtual ms per iteration"
    )
    g.add_argument(
        "--election-timeout-ms",
        type=int,
        default=_DEFAULTS.election_timeout_ms,
        help="the core's election timeout T (drawn in [T, 2T))",
    )
    g.add_argument(
        "--heartbeat-ms", type=int, default=_DEFAULTS.heartbeat_ms, help="the core's heartbeat"
    )
    g.add_argument(
        "--liveness-ms",
        type=int,
        default=_DEFAULTS.liveness_ms,
        help="virtual ms without progress, while a quorum is up and connected, that fail a run",
    )
    g.add_argument(
        "--catchup-ms",
        type=int,
        default=_DEFAULTS.catchup_ms,
        help="virtual ms a leader may keep a follower it could catch up from its log in "
        "SNAPSHOT state (replication_resumes)",
    )
    g.add_argument(
        "--no-check-quorum",
        action="store_true",
        help="run the core without check-quorum (leaders do not step down, votes are not withheld)",
    )
    g.add_argument(
        "--no-pre-vote",
        action="store_true",
        help="run the core without pre-vote (thesis §9.6: a server's timeout starts an election "
        "at once)",
    )
    g.add_argument(
        "--calm-ms",
        type=int,
        default=_DEFAULTS.calm_ms,
        help="virtual ms at the end of each run without faults (partitions healed, servers "
        "restarted, no loss), where a transfer must not leave the cluster leaderless for "
        "longer than an election timeout",
    )
    c = parser.add_argument_group("chaos (percentages)")
    for flag, field, text in _RATES:
        default = getattr(_DEFAULTS, field)
        kind = _client_rate if field == "client" else _rate
        c.add_argument(flag, type=kind, default=default, help=text)
    lo, hi = _DEFAULTS.delay_ms
    c.add_argument(
        "--delay-ms",
        type=_range,
        default=_DEFAULTS.delay_ms,
        metavar="MIN..MAX",
        help=f"one-way message delay range (default {lo}..{hi})",
    )
    flo, fhi = _DEFAULTS.fsync_ms
    c.add_argument(
        "--fsync-ms",
        type=_range,
        default=_DEFAULTS.fsync_ms,
        metavar="MIN..MAX",
        help=f"virtual time the fsync of an early-sent leader Ready takes (default {flo}..{fhi})",
    )
    ilo, ihi = _DEFAULTS.install_ms or (0, 0)
    installs = c.add_mutually_exclusive_group()
    installs.add_argument(
        "--install-ms",
        type=_range,
        default=_DEFAULTS.install_ms,
        metavar="MIN..MAX",
        help="virtual time each step of a snapshot install takes: save the file, restore "
        f"the state machine, truncate, compact (default {ilo}..{ihi})",
    )
    installs.add_argument(
        "--instant-installs",
        action="store_true",
        help="install a received snapshot at once, every step in a row",
    )
    c.add_argument(
        "--no-random-period",
        action="store_true",
        help="every server's clock moves exactly --step-ms per iteration",
    )
    c.add_argument(
        "--calm",
        action="store_true",
        help="set every chaos rate left at its default to 0 (clients stay) and turn swarm off",
    )
    c.add_argument(
        "--no-swarm",
        action="store_true",
        help="use the options exactly as given; by default each seed draws its own mix from "
        "them (servers from N-2 to N+2, each fault rate times 0, 0.5, 1, 2 or 4, early send "
        "for 0, --early-send or 100 percent of servers, 1, 2, 3 or --max-entries entries per "
        "message, and each of: no random clock period, no check-quorum, no pre-vote, no "
        "automatic promotion, no install guard, with a chance of 1 in 4; 1 seed in 10 has "
        "only reads): see docs/simulator.md",
    )
    c.add_argument(
        "--max-entries",
        type=int,
        default=_DEFAULTS.max_entries,
        help="the core's max_entries_per_message",
    )
    c.add_argument(
        "--no-auto-promote",
        action="store_true",
        help="do not promote caught-up non-voters automatically (only membership chaos does)",
    )
    c.add_argument(
        "--no-install-guard",
        action="store_true",
        help="the driver does not refuse a snapshot not newer than its commit index before "
        "saving it (the node does); the core must refuse it",
    )
    w = parser.add_argument_group("clients")
    w.add_argument("--clients", type=int, default=_DEFAULTS.clients, help="client processes")
    w.add_argument("--keys", type=int, default=_DEFAULTS.keys, help="distinct keys")
    w.add_argument(
        "--reads", type=_rate, default=_DEFAULTS.reads, help="percent of operations that are reads"
    )
    w.add_argument("--no-history-check", action="store_true", help="skip the linearizability check")
    w.add_argument(
        "--history",
        metavar="PATH",
        default=None,
        help="write each run's client history as JSON lines (traft check's format); "
        "{seed} in PATH is replaced by the seed (default: not written)",
    )
    o = parser.add_argument_group("output")
    o.add_argument("-q", "--quiet", action="store_true", help="print only failures and totals")
    o.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="full summary per run; on failure the last events",
    )
    o.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    o.add_argument("--trace", action="store_true", help="print a digest of every delivered message")


def options_from(args: argparse.Namespace) -> SimOptions:
    """Turn parsed arguments into :class:`SimOptions`."""
    rates = {field: getattr(args, field) for _, field, _ in _RATES}
    if args.calm:
        # Rates still at their defaults go to 0; rates given explicitly stay.
        rates = {
            field: (0.0 if value == getattr(_DEFAULTS, field) and field != "client" else value)
            for field, value in rates.items()
        }
        delay = (1, 1) if args.delay_ms == _DEFAULTS.delay_ms else args.delay_ms
    else:
        delay = args.delay_ms
    return SimOptions(
        servers=args.servers,
        iterations=args.iterations,
        duration_ms=args.duration_ms,
        step_ms=args.step_ms,
        delay_ms=delay,
        install_ms=None if args.instant_installs else args.install_ms,
        fsync_ms=args.fsync_ms,
        random_period=not args.no_random_period,
        election_timeout_ms=args.election_timeout_ms,
        heartbeat_ms=args.heartbeat_ms,
        liveness_ms=args.liveness_ms,
        catchup_ms=args.catchup_ms,
        check_quorum=not args.no_check_quorum,
        pre_vote=not args.no_pre_vote,
        calm_ms=args.calm_ms,
        clients=args.clients,
        keys=args.keys,
        check_history=not args.no_history_check,
        trace=args.trace,
        swarm=not (args.no_swarm or args.calm),
        max_entries=args.max_entries,
        reads=args.reads,
        auto_promote=not args.no_auto_promote,
        install_guard=not args.no_install_guard,
        **rates,
    )


def replay_command(options: SimOptions, seed: int) -> str:
    """A ``traft sim`` command line that replays one run exactly."""
    parts = ["traft sim"]
    for field in attrs.fields(SimOptions):
        name = field.name
        value = getattr(options, name)
        if value == getattr(_DEFAULTS, name) or name in ("trace", "history_timeout_s"):
            continue
        if name == "random_period":
            parts.append("--no-random-period")
        elif name == "check_quorum":
            parts.append("--no-check-quorum")
        elif name == "pre_vote":
            parts.append("--no-pre-vote")
        elif name == "check_history":
            parts.append("--no-history-check")
        elif name in ("swarm", "auto_promote", "install_guard"):
            parts.append(f"--no-{name.replace('_', '-')}")
        elif name in ("delay_ms", "fsync_ms"):
            parts.append(f"--{name.replace('_', '-')} {value[0]}..{value[1]}")
        elif name == "install_ms":
            parts.append(
                "--instant-installs" if value is None else f"--install-ms {value[0]}..{value[1]}"
            )
        elif name in ("max_extra_servers", "client_timeout_ms"):
            continue
        else:
            parts.append(
                f"--{name.replace('_', '-')} {value:g}"
                if isinstance(value, float)
                else f"--{name.replace('_', '-')} {value}"
            )
    parts.append(f"--seed {seed} -v")
    return " ".join(parts)


_LINE = (
    "seed {seed}: servers {servers} iterations {iterations} elections {elections} "
    "terms {terms} leader changes {leader_changes} committed {committed} "
    "snapshots {snapshots} membership {membership_changes} crashes {crashes} "
    "delivered {delivered} dropped {dropped} duplicated {duplicated} "
    "invariants {invariants_checked} violations {violations} "
    "{messages_per_s} msg/s"
)


def _print_run(result: RunResult, verbose: bool, out: Any) -> None:
    s = result.summary
    if verbose:
        width = max(len(k) for k in s)
        for key, value in s.items():
            print(f"  {key.replace('_', ' '):<{width}}  {value}", file=out)
    else:
        print(_LINE.format(**s), file=out)
    if result.digest is not None:
        print(f"seed {result.seed}: trace digest {result.digest}", file=out)


def run(args: argparse.Namespace) -> int:
    """Run the seeds; returns the exit status."""
    if getattr(args, "nodes", False):
        from traft.sim.nodes.cli import run as run_nodes

        return run_nodes(args, sys.argv[1:])
    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"traft sim: {exc}", file=sys.stderr)
        return 2
    if args.seeds is not None:
        first, last = args.seeds
    else:
        first = last = args.seed if args.seed is not None else 0
    out = sys.stderr if args.json else sys.stdout
    results: list[dict[str, Any]] = []
    status = 0
    totals = {"runs": 0, "delivered": 0, "invariants_checked": 0, "cpu_s": 0.0}
    for seed in range(first, last + 1):
        sim = Simulation(options, seed)
        if args.verbose:
            sim.keep_recent(80)
        result = sim.run()
        if args.history:
            path = args.history.replace("{seed}", str(seed))
            with open(path, "w", encoding="utf-8") as stream:
                write_history(sim.workload.operations(), stream)
        s = result.summary
        totals["runs"] += 1
        totals["delivered"] += s["delivered"]
        totals["invariants_checked"] += s["invariants_checked"]
        totals["cpu_s"] += s["cpu_s"]
        record = dict(s)
        if result.digest is not None:
            record["trace_digest"] = result.digest
        if not args.quiet or result.violation is not None:
            if args.verbose:
                print(f"seed {seed}:", file=out)
            _print_run(result, args.verbose, out)
        if result.violation is not None:
            replay = replay_command(options, seed)
            record["iteration"] = result.iteration
            record["replay"] = replay
            v = result.violation
            if args.verbose and sim.recent:
                print("last events before the violation:", file=out)
                for line in sim.recent:
                    print(f"  {line}", file=out)
            print(
                f"VIOLATION {v.name} at seed {seed}, iteration {result.iteration}: {v.detail}",
                file=out,
            )
            print(f"replay: {replay}", file=out)
            results.append(record)
            status = 1
            break
        results.append(record)
    rate = round(totals["delivered"] / totals["cpu_s"]) if totals["cpu_s"] else 0
    if not args.verbose or totals["runs"] > 1:
        print(
            f"{totals['runs']} run(s), {totals['delivered']} messages delivered, "
            f"{totals['invariants_checked']} invariant checks, "
            f"{'1 violation' if status else 'no violations'}, {rate} msg/s",
            file=out,
        )
    if args.json:
        json.dump({"ok": status == 0, "runs": results}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return status
