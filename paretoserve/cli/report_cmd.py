"""`paretoserve report`: one self-contained HTML report of a sweep (curves, frontiers, memory, energy, replicas,
the recommendation and its launch commands), with every plot also written as a PNG beside it; of a placement of
several models (`tune --model A --model B`'s OUT), the memory map, each model's curve and the placement against the
alternatives."""

from __future__ import annotations

import argparse
from pathlib import Path

from paretoserve.advise import Advice
from paretoserve.advise.advice_file import read_advice
from paretoserve.advise.placement_view import placement_file
from paretoserve.cli import examples
from paretoserve.cli.advice_args import add_advice_args, advise_config, given_advice_flags
from paretoserve.cli.common import UsageError
from paretoserve.report import ReportConfig, compute_advice, read_for_report, write_placement_report, write_report


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("report", help=help, description=help,
                              epilog=examples("paretoserve report sweep-out -o report.html",
                                              "paretoserve report tune-out"))
    p.add_argument("dir", metavar="DIR", type=Path, help="sweep directory (from `sweep` or `import vllm`), or a "
                                                         "placement: placement.json or the directory holding it "
                                                         "(`tune --model A --model B`)")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="HTML file to write; the PNGs go beside it as <name>_<plot>.png (default: report.html; "
                        "for a placement, report.html beside its placement.json)")
    p.add_argument("--advice", type=Path, default=None,
                   help="a saved `advise --json` output to show instead of advising here (then without the "
                        "advice flags)")
    p.add_argument("--dpi", type=int, default=ReportConfig.dpi, help="PNG resolution (default: %(default)s)")
    add_advice_args(p, "advice, as `paretoserve advise` takes it (default: the paper's 3 x mean TPOT at B=32)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = ReportConfig(dpi=args.dpi)  # a ReportError names DIR or the flag
    if placement_file(args.dir) is not None:
        return placement_report(args, config)
    if args.advice is not None:
        given = given_advice_flags(args)
        if given:
            raise UsageError(f"--advice shows a saved advice as it is; {', '.join(given)} apply only when "
                             "the report advises itself: drop them or drop --advice")
        advice: Advice | None = read_advice(args.advice, "--advice")
        reason = None
        sweep = read_for_report(args.dir)
    else:
        advise = advise_config(args)
        sweep = read_for_report(args.dir)  # read once, for the advice and the page
        advice, reason = compute_advice(sweep, advise)
    files = write_report(sweep, args.out or Path("report.html"), advice=advice, no_advice_reason=reason, config=config)
    verdict = f"B_opt = {files.b_opt}" if files.b_opt is not None else f"no recommendation: {reason}"
    print(f"report: {files.html} ({len(files.plots)} plots beside it); {verdict}")
    return 0


def placement_report(args: argparse.Namespace, config: ReportConfig) -> int:
    """The page of a placement, its advice as each model's tune gave it: the advice flags are refused, not ignored."""
    given = given_advice_flags(args) + (["--advice"] if args.advice is not None else [])
    if given:
        raise UsageError(f"DIR: {args.dir} is a placement, shown with each model's advice from its tune; "
                         f"{', '.join(given)} apply to a sweep directory: report each model's (OUT/<model>/sweep)")
    files = write_placement_report(args.dir, args.out, config)
    print(f"report: {files.html} ({len(files.plots)} plots beside it); the memory map, each model's curve and the "
          "placement against the alternatives")
    return 0
