"""`paretoserve advise DIR`: B_opt under a latency SLO, its KV need and the memory freed, the Pareto frontiers,
the replica plan and ready-to-run launch commands, from a sweep directory (own or imported)."""

from __future__ import annotations

import argparse
import json

from paretoserve.advise import advise
from paretoserve.advise.console import print_advice
from paretoserve.cli.advice_args import add_advice_args, advise_config


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("advise", help=help,
                              description=__doc__)
    p.add_argument("dir", metavar="DIR", help="sweep directory (paretoserve sweep or import vllm)")
    add_advice_args(p, "SLO (default: the paper's 3 x mean TPOT at B=32)")
    p.add_argument("--json", action="store_true", help="print the advice as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = advise_config(args)
    advice = advise(args.dir, config)  # an AdviseError names DIR or the flag
    if args.json:
        print(json.dumps(advice.model_dump(), indent=2))
    else:
        print_advice(advice)
    return 0
