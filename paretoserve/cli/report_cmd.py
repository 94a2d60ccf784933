"""`paretoserve report`: one self-contained HTML report of a sweep (curves, frontiers, memory, energy, replicas,
the recommendation and its launch commands), with every plot also written as a PNG beside it."""

from __future__ import annotations

import argparse
from pathlib import Path

from paretoserve.cli.common import UsageError
from paretoserve.report import ReportConfig, ReportError, load_advice_file, write_report


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="one self-contained HTML report (and PNGs) of a sweep directory",
                              description=__doc__)
    p.add_argument("dir", metavar="DIR", type=Path, help="sweep directory (from `sweep` or `import vllm`)")
    p.add_argument("-o", "--out", type=Path, default=Path("report.html"),
                   help="HTML file to write; the PNGs go beside it as <name>_<plot>.png (default: report.html)")
    p.add_argument("--advice", type=Path, default=None,
                   help="use a saved `advise --json` output instead of advising here (the SLO flags are then unused)")
    slo = p.add_argument_group("advice (passed to advise)")
    slo.add_argument("--slo", default=None, help="absolute SLO, e.g. 'tpot_ms<=30' or 'p99_itl_ms<=50'")
    slo.add_argument("--slo-multiple", type=float, default=None, help="relative SLO: this multiple of the latency ...")
    slo.add_argument("--slo-ref-batch", type=int, default=None, help="... at this batch cap ...")
    slo.add_argument("--slo-metric", default=None, help="... of this metric (tpot or itl)")
    slo.add_argument("--min-efficiency", type=float, default=None,
                     help="batching efficiency floor T(B) / (B x T(1))")
    slo.add_argument("--device-memory", default=None, help="device memory, bytes or with a unit (64GiB, 80GB)")
    p.add_argument("--dpi", type=int, default=ReportConfig.dpi, help="PNG resolution (default: %(default)s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = ReportConfig(dpi=args.dpi)
        if args.advice is not None:
            advice, reason = load_advice_file(args.advice), None
        else:
            advice, reason = _advise(args)
        files = write_report(args.dir, args.out, advice=advice, no_advice_reason=reason, config=config)
    except ReportError as exc:
        raise UsageError(str(exc)) from exc
    verdict = f"B_opt = {files.b_opt}" if files.b_opt is not None else "no recommendation"
    print(f"report: {files.html} ({verdict}; {len(files.plots)} plots beside it)")
    return 0


def _advise(args: argparse.Namespace) -> tuple[dict | None, str | None]:
    """The advice for the sweep with the SLO flags given, or None and why it could not be computed."""
    return None, "the advise step is not built yet; pass --advice FILE with a saved `advise --json` output"
