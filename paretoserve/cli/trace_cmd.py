"""`paretoserve trace --out PATH --low-rate R --peak-rate R --duration S`: write a diurnal trace (a raised-cosine
ramp with bursts, Poisson arrivals) as the JSONL `--dataset trace:`, `capacity --replay` and `tune --traffic
trace:` read."""

from __future__ import annotations

import argparse
from pathlib import Path

from paretoserve.bench.config import TokenRange
from paretoserve.bench.diurnal import BURST_SHARE, Diurnal, write_diurnal
from paretoserve.cli import examples
from paretoserve.cli.common import UsageError


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("trace", help=help, description=help,
                              epilog=examples("paretoserve trace --out trace.jsonl --low-rate 1 --peak-rate 8 "
                                              "--duration 600 --bursts 3"))
    p.add_argument("--out", type=Path, required=True, help="the JSONL file to write (its folder is created)")
    p.add_argument("--low-rate", type=float, required=True, metavar="RPS", help="the rate at t = 0, the quietest")
    p.add_argument("--peak-rate", type=float, required=True, metavar="RPS",
                   help="the rate half a period later, the busiest (bursts aside)")
    p.add_argument("--duration", type=float, required=True, metavar="SECONDS", help="the trace's length")
    p.add_argument("--period", type=float, default=None, metavar="SECONDS",
                   help="seconds from one low to the next (default: --duration, one 'day')")
    p.add_argument("--bursts", type=int, default=0, metavar="N",
                   help="short windows at a multiple of the rate, evenly spaced (default: %(default)s)")
    p.add_argument("--burst-factor", type=float, default=Diurnal.burst_factor,
                   help="a burst's rate as a multiple of the ramp's (default: %(default)s)")
    p.add_argument("--burst-length", type=float, default=None, metavar="SECONDS",
                   help=f"each burst's length (default: {BURST_SHARE * 100:g} %% of --duration)")
    p.add_argument("--input-tokens", default="128", help="each request's input_length: N or LO:HI (default: 128)")
    p.add_argument("--output-tokens", default="128", help="each request's output_length: N or LO:HI (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="seeds the arrivals and the lengths (default: 0)")
    p.set_defaults(run=run)


def shape_from_args(args: argparse.Namespace) -> Diurnal:
    """The flags checked (a DiurnalError or BenchConfigError names the flag)."""
    return Diurnal(low_rps=args.low_rate, peak_rps=args.peak_rate, duration_s=args.duration, period_s=args.period,
                   bursts=args.bursts, burst_factor=args.burst_factor, burst_s=args.burst_length,
                   input_tokens=TokenRange.parse("--input-tokens", args.input_tokens),
                   output_tokens=TokenRange.parse("--output-tokens", args.output_tokens), seed=args.seed)


def run(args: argparse.Namespace) -> int:
    shape = shape_from_args(args)
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a directory; give the trace's file name")
    rows = write_diurnal(shape, args.out)
    print(f"wrote {len(rows)} requests over {rows[-1].at_s:.4g} s to {args.out}: {shape.low_rps:g} req/s at t = 0 "
          f"rising to {shape.peak_rps:g} req/s at {shape.period / 2:.4g} s{_bursts(shape)}")
    return 0


def _bursts(shape: Diurnal) -> str:
    """The bursts in words: their factor and the first few windows."""
    if not shape.bursts:
        return ""
    windows = ", ".join(f"{start:.4g}..{end:.4g} s" for start, end in shape.burst_windows()[:4])
    return f"; {shape.bursts} bursts at {shape.burst_factor:g}x: {windows}{', ...' if shape.bursts > 4 else ''}"
