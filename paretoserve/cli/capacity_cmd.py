"""`paretoserve capacity --url URL --slo ... --out DIR`: the highest request rate a served plan (or any
OpenAI-compatible endpoint) sustains with at least --attainment of its requests within the SLO, found by a
search over open-loop rates; then one run past it, to show what a client sees there."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paretoserve.cli.bench_cmd import add_workload_args, config_from_args
from paretoserve.cli.common import UsageError
from paretoserve.sweep.capacity import CapacityConfig, CapacitySession
from paretoserve.sweep.capacity_console import budget_line, report_json, report_lines


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("capacity", help=help, description=__doc__)
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
    c.add_argument("--resolution", type=float, default=0.05,
                   help="stop when the failing rate is within this share above the capacity (default: %(default)s)")
    c.add_argument("--max-runs", type=int, default=10, help="runs at distinct rates at most (default: %(default)s)")
    c.add_argument("--remeasure-budget", type=int, default=3,
                   help="extra runs for rates whose attainment's 95 %% interval holds the target (default: "
                        "%(default)s)")
    c.add_argument("--overload", type=float, default=1.5,
                   help="a last run at this multiple of the capacity, to show what clients see; 0 = none "
                        "(default: %(default)s)")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, required=True, help="the directory that keeps every run (a sweep directory)")
    o.add_argument("--resume", action="store_true", help="continue the session in --out: runs it holds are reused")
    o.add_argument("--json", action="store_true", help="print the result as JSON to stdout")
    p.set_defaults(run=run)


def config_from_capacity_args(args: argparse.Namespace) -> CapacityConfig:
    """The flags checked; a mistake is a UserError naming its flag."""
    if args.slo is None:
        raise UsageError("--slo is required: capacity finds the rate at which requests meet it")
    if args.rate is not None or args.mode not in (None, "rate", "trace") or args.ramp_up is not None:
        raise UsageError("--rate, --mode and --ramp-up are the search's to set: give --start-rate for the first rate")
    concurrency = 8 if args.concurrency is None else args.concurrency
    trace = args.dataset.startswith("trace:")
    args.concurrency = None  # the closed-loop run's, not the open-loop runs'
    args.mode, args.rate = ("trace", None) if trace else ("rate", 1.0)  # each run sets its own rate
    bench = config_from_args(args)
    return CapacityConfig(bench=bench, out=args.out, attainment=args.attainment, resolution=args.resolution,
                          max_runs=args.max_runs, remeasure_budget=args.remeasure_budget, start_rps=args.start_rate,
                          concurrency=concurrency, overload=args.overload, resume=args.resume)


def run(args: argparse.Namespace) -> int:
    config = config_from_capacity_args(args)
    # each run's line as it ends, also when stdout is a file (runs last minutes)
    echo = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    echo(budget_line(config))
    report = CapacitySession(config, echo=echo).run()
    if args.json:
        print(json.dumps(report_json(report, config), indent=2))
    else:
        print("\n".join(report_lines(report, config)))
    return 0
