"""`paretoserve advise`: placeholder until its issue lands."""

from __future__ import annotations

import argparse

from paretoserve.cli.common import UsageError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("advise", help="(not yet available)", description=__doc__)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise UsageError("this command is not available yet")
