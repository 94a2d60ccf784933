"""`paretoserve advise DIR`: B_opt under a latency SLO, its KV need and the memory freed, the Pareto frontiers,
the replica plan and ready-to-run launch commands, from a sweep directory (own or imported); the plan also as
Ray Serve config (ray-serve.yaml, ray-serve-llm.yaml). Given a placement of several models (`tune --model A
--model B`'s placement.json, or its directory): each model's B_opt and plan, the device's memory map and the
placement against time-sharing and one device per model, as measured."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from paretoserve.advise import advise_table, load_table
from paretoserve.advise.advice_file import advice_json
from paretoserve.advise.capacity import capacity_advice
from paretoserve.advise.console import print_advice, print_placement
from paretoserve.advise.placement_view import placement_file, read_placement_view
from paretoserve.advise.ray_config import write_ray_configs
from paretoserve.cli import examples
from paretoserve.cli.advice_args import add_advice_args, advise_config, given_advice_flags
from paretoserve.cli.common import UsageError
from paretoserve.cli.traffic_args import add_traffic_args, traffic_of


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("advise", help=help, description=help,
                              epilog=examples('paretoserve advise sweep-out --slo "tpot_ms<=50"',
                                              "paretoserve advise tune-out --json"))
    p.add_argument("dir", metavar="DIR", help="sweep directory (paretoserve sweep or import vllm), or a placement: "
                                              "placement.json or the directory holding it (tune --model A --model B)")
    add_advice_args(p, "SLO (default: the paper's 3 x mean TPOT at B=32)")
    c = p.add_argument_group("capacity: the plan's measured capacity and the replicas a traffic needs")
    c.add_argument("--capacity-dir", default=None, metavar="DIR",
                   help="the `paretoserve capacity` runs made against the advised plan")
    add_traffic_args(c)
    p.add_argument("--json", action="store_true", help="print the advice as JSON")
    p.add_argument("--ray-out", type=Path, default=None,
                   help="where to write ray-serve.yaml and ray-serve-llm.yaml (default: DIR)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    placement = placement_file(args.dir)
    if placement is not None:
        return show_placement(args, placement)
    config = advise_config(args)
    table = load_table(args.dir)  # an AdviseError names DIR or the flag
    advice = advise_table(table, config)
    traffic, _ = traffic_of(args)
    if args.capacity_dir is not None:
        plan = advice.replica_plan
        advice = advice.model_copy(update={"capacity": capacity_advice(args.capacity_dir, plan.replicas,
                                                                       plan.max_batch, traffic, args.headroom)})
    elif traffic is not None:
        raise UsageError("--traffic needs --capacity-dir: the capacity runs (`paretoserve capacity`) of the plan")
    written = write_ray_configs(advice, table, args.ray_out or args.dir)
    if args.json:
        print(advice_json(advice))
    else:
        print_advice(advice)
    print("Ray Serve config: " + ", ".join(map(str, written)), file=sys.stderr if args.json else sys.stdout)
    return 0


def show_placement(args: argparse.Namespace, path: Path) -> int:
    """A placement as tune measured it; the flags that advise a sweep again are refused, not ignored."""
    given = given_advice_flags(args) + [flag for flag, value in (
        ("--capacity-dir", args.capacity_dir), ("--traffic", args.traffic), ("--peak", args.peak),
        ("--peak-window", args.peak_window), ("--ray-out", args.ray_out)) if value is not None]
    if given:
        raise UsageError(f"DIR: {path} is a placement, shown as tune measured it; {', '.join(given)} apply to a "
                         "sweep directory: advise each model's (OUT/<model>/sweep) with them")
    view = read_placement_view(path, "DIR")
    if args.json:
        print(json.dumps(view.to_dict(), indent=2))
    else:
        print_placement(view)
    return 0
