"""`paretoserve advise DIR`: B_opt under a latency SLO, its KV need and the memory freed, the Pareto frontiers,
the replica plan and ready-to-run launch commands, from a sweep directory (own or imported); the plan also as
Ray Serve config (ray-serve.yaml, ray-serve-llm.yaml)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paretoserve.advise import advise_table, load_table
from paretoserve.advise.advice_file import advice_json
from paretoserve.advise.console import print_advice
from paretoserve.advise.ray_config import write_ray_configs
from paretoserve.cli.advice_args import add_advice_args, advise_config


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("advise", help=help,
                              description=__doc__)
    p.add_argument("dir", metavar="DIR", help="sweep directory (paretoserve sweep or import vllm)")
    add_advice_args(p, "SLO (default: the paper's 3 x mean TPOT at B=32)")
    p.add_argument("--json", action="store_true", help="print the advice as JSON")
    p.add_argument("--ray-out", type=Path, default=None,
                   help="where to write ray-serve.yaml and ray-serve-llm.yaml (default: DIR)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = advise_config(args)
    table = load_table(args.dir)  # an AdviseError names DIR or the flag
    advice = advise_table(table, config)
    written = write_ray_configs(advice, table, args.ray_out or args.dir)
    if args.json:
        print(advice_json(advice))
    else:
        print_advice(advice)
    print("Ray Serve config: " + ", ".join(map(str, written)), file=sys.stderr if args.json else sys.stdout)
    return 0
