"""The `paretoserve` command line: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import sys

from paretoserve import __version__
from paretoserve.cli import (advise_cmd, bench_cmd, demo_cmd, engine_cmd, estimate_cmd, import_cmd, report_cmd,
                             serve_cmd, sweep_cmd, tune_cmd)
from paretoserve.cli.common import UsageError

SUBCOMMANDS = (engine_cmd, bench_cmd, sweep_cmd, import_cmd, advise_cmd, report_cmd, serve_cmd, estimate_cmd, tune_cmd,
               demo_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paretoserve", description=__doc__)
    parser.add_argument("--version", action="version", version=f"paretoserve {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; user mistakes print one line naming the flag and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except UsageError as exc:
        print(f"paretoserve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `paretoserve advise --json | head`: the reader left, nothing to report
        sys.stderr.close()
        return 1
