"""`paretoserve capacity --url URL --slo ... --out DIR`: the highest request rate a served plan (or any
OpenAI-compatible endpoint) sustains with at least --attainment of its requests within the SLO, found by a
search over open-loop rates; then one run past it, to show what a client sees there. With `--replay PATH`, no
search: the trace is replayed through the plan and judged against the same goal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from paretoserve.bench.config import BenchConfig
from paretoserve.cli import examples
from paretoserve.cli.bench_cmd import add_workload_args, config_from_args
from paretoserve.cli.common import UsageError
from paretoserve.sweep.capacity import CapacityConfig, CapacitySession
from paretoserve.sweep.capacity_console import budget_line, report_json, report_lines
from paretoserve.sweep.replay import replay_trace

# The search's own flags (None when not given), refused with --replay: name in args -> flag.
SEARCH_ONLY = {"start_rate": "--start-rate", "resolution": "--resolution", "max_runs": "--max-runs",
               "remeasure_budget": "--remeasure-budget", "overload": "--overload", "concurrency": "--concurrency"}
# bench's workload flags a replay takes from its trace instead.
TRACE_SETS = {"mode": "--mode", "rate": "--rate", "requests": "--requests", "duration": "--duration",
              "ramp_up": "--ramp-up", "arrival": "--arrival", "burstiness": "--burstiness",
              "input_tokens": "--input-tokens", "output_tokens": "--output-tokens"}


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("capacity", help=help, description=help,
                              epilog=examples("paretoserve capacity --url http://127.0.0.1:8000 "
                                              '--slo "p99_ttft_ms<=2000" --out capacity-out'))
    p.add_argument("--url", required=True, help="base URL of the plan (`paretoserve serve`) or any endpoint")
    a = p.add_argument_group("access")
    a.add_argument("--api-key", default=None, metavar="KEY", help="as bench's (default: $PARETOSERVE_API_KEY)")
    a.add_argument("--ca-file", default=None, metavar="PEM", help="as bench's")
    a.add_argument("--insecure", action="store_true", help="as bench's")
    add_workload_args(p)
    c = p.add_argument_group("capacity")
    c.add_argument("--attainment", type=float, default=0.99,
                   help="share of requests that must meet every bare --slo limit (default: %(default)s)")
    c.add_argument("--start-rate", type=float, default=None, metavar="RPS",
                   help="first rate tried (default: Little's law on a closed-loop run at --concurrency, or a "
                        "trace's own mean rate)")
    c.add_argument("--resolution", type=float, default=None,
                   help="stop when the failing rate is within this share above the capacity (default: "
                        f"{CapacityConfig.resolution})")
    c.add_argument("--max-runs", type=int, default=None,
                   help=f"runs at distinct rates at most (default: {CapacityConfig.max_runs})")
    c.add_argument("--remeasure-budget", type=int, default=None,
                   help="extra runs for rates whose attainment's 95 %% interval holds the target (default: "
                        f"{CapacityConfig.remeasure_budget})")
    c.add_argument("--overload", type=float, default=None,
                   help="a last run at this multiple of the capacity, to show what clients see; 0 = none "
                        f"(default: {CapacityConfig.overload})")
    r = p.add_argument_group("replay (instead of the search)")
    r.add_argument("--replay", type=Path, default=None, metavar="PATH",
                   help="replay this trace (the JSONL of --dataset trace:) through the plan at its own times and "
                        "judge it: at least --attainment within --slo and no failed request; exit status 1 if not")
    r.add_argument("--replay-speed", type=float, default=None, metavar="X",
                   help="play the trace X times faster (its rate x X): a long trace in less time (default: 1)")
    r.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="the timeline's window, in the replay's seconds (default: a tenth of the replay)")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, required=True,
                   help="the directory that keeps every run (a sweep directory), or a replay's replay.json")
    o.add_argument("--resume", action="store_true", help="continue the session in --out: runs it holds are reused")
    o.add_argument("--json", action="store_true", help="print the result as JSON to stdout")
    p.set_defaults(run=run)


def config_from_capacity_args(args: argparse.Namespace) -> CapacityConfig:
    """The flags checked; a mistake is a UserError naming its flag."""
    if args.slo is None:
        raise UsageError("--slo is required: capacity finds the rate at which requests meet it")
    if args.rate is not None or args.mode not in (None, "rate", "trace") or args.ramp_up is not None:
        raise UsageError("--rate, --mode and --ramp-up are the search's to set: give --start-rate for the first rate")
    concurrency = args.concurrency
    trace = args.dataset.startswith("trace:")
    args.concurrency = None  # the closed-loop run's, not the open-loop runs'
    args.mode, args.rate = ("trace", None) if trace else ("rate", 1.0)  # each run sets its own rate
    bench = config_from_args(args)
    given = {"attainment": args.attainment, "resolution": args.resolution, "max_runs": args.max_runs,
             "remeasure_budget": args.remeasure_budget, "start_rps": args.start_rate, "concurrency": concurrency,
             "overload": args.overload}
    return CapacityConfig(bench=bench, out=args.out, resume=args.resume,
                          **{k: v for k, v in given.items() if v is not None})


def replay_bench(args: argparse.Namespace) -> BenchConfig:
    """--replay's flags checked: the search's flags and those the trace sets are refused, naming the flag."""
    if args.slo is None:
        raise UsageError("--slo is required: a replay judges each request against it")
    for name, flag in {**SEARCH_ONLY, **TRACE_SETS}.items():
        if getattr(args, name) is not None:
            raise UsageError(f"{flag} does not apply to --replay, which sends each request of the trace once at its "
                             "own time (scale the times with --replay-speed)")
    if args.resume or args.dataset != "synthetic":
        flag = "--resume" if args.resume else "--dataset"
        raise UsageError(f"{flag} does not apply to --replay: give the trace as --replay PATH, and no search is "
                         "resumed")
    return config_from_args(args)


def run_replay(args: argparse.Namespace) -> int:
    """Replay the trace, print its report and keep it as --out/replay.json; 1 when the goal was not met."""
    bench = replay_bench(args)
    speed = 1.0 if args.replay_speed is None else args.replay_speed
    report = replay_trace(bench, args.replay.expanduser(), args.out, speed=speed, window_s=args.window,
                          attainment=args.attainment, echo=_echo(args))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "replay.json"
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(json.dumps(report.to_dict(), indent=2) if args.json else "\n".join([*report.lines(), f"kept in {path}"]))
    return 0 if report.goal_met else 1


def run(args: argparse.Namespace) -> int:
    if args.replay is not None:
        return run_replay(args)
    for flag, value in (("--replay-speed", args.replay_speed), ("--window", args.window)):
        if value is not None:
            raise UsageError(f"{flag} applies to --replay PATH only")
    config = config_from_capacity_args(args)
    echo = _echo(args)
    echo(budget_line(config))
    report = CapacitySession(config, echo=echo).run()
    if args.json:
        print(json.dumps(report_json(report, config), indent=2))
    else:
        print("\n".join(report_lines(report, config)))
    return 0


def _echo(args: argparse.Namespace) -> Callable[[str], None]:
    """Lines said as the work goes (each run's as it ends, also when stdout is a file: runs last minutes); none
    with --json."""
    return (lambda line: None) if args.json else (lambda line: print(line, flush=True))
