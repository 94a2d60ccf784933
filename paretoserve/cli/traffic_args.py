"""The traffic flags, declared once: `tune` measures the plan's capacity and sizes it for them, `advise
--capacity-dir` sizes it from capacity runs made earlier. `tune` adds the flags of its capacity step."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from paretoserve.advise.capacity import HEADROOM
from paretoserve.advise.traffic import PEAK_WINDOW_S, Traffic, traffic_from_rates, traffic_from_trace
from paretoserve.bench.slo import SloError, parse_slo
from paretoserve.cli.common import UsageError

if TYPE_CHECKING:
    from paretoserve.tune.config import CapacityStep

TRACE = "trace:"


def add_traffic_args(group: argparse._ArgumentGroup) -> None:
    """--traffic, --peak, --peak-window and --headroom."""
    group.add_argument("--traffic", default=None, metavar="RPS|trace:PATH",
                       help="the traffic the plan must carry: a mean rate in requests/s, or a trace (`bench "
                            "--dataset trace:` format) whose mean, peak and low rates it gives")
    group.add_argument("--peak", type=float, default=None, metavar="RPS",
                       help="with --traffic RPS: the busiest rate (default: none, the mean only)")
    group.add_argument("--peak-window", type=float, default=None, metavar="SECONDS",
                       help=f"with --traffic trace:PATH: the window its peak and low rates are taken over "
                            f"(default: {PEAK_WINDOW_S:g})")
    group.add_argument("--headroom", type=float, default=HEADROOM,
                       help="share of capacity every replica count keeps spare (default: %(default)s)")


def add_capacity_step_args(group: argparse._ArgumentGroup) -> None:
    """tune's own: the traffic flags, and how the capacity step measures."""
    from paretoserve.tune.config import CapacityStep  # here, not above: advise takes the traffic flags without tune

    add_traffic_args(group)
    group.add_argument("--capacity", action="store_true",
                       help="measure the plan's capacity even without --traffic (it is measured with one)")
    group.add_argument("--attainment", type=float, default=CapacityStep.attainment,
                       help="share of requests that must meet every --capacity-slo limit; with several --model, the "
                            "share of each model's requests within its SLO at the mix's capacity (default: "
                            "%(default)s)")
    group.add_argument("--capacity-slo", default=None, metavar="SLO",
                       help="per-request limits of the capacity runs, e.g. 'ttft_ms<=2000,tpot_ms<=100' (default: "
                            "the advice's limits on each request, plus ttft_ms<=2000)")
    group.add_argument("--replay-speed", type=float, default=None,
                       help=f"with --traffic trace:PATH: replay the trace this many times faster through the plan "
                            f"(default: {CapacityStep.replay_speed:g})")


def traffic_of(args: argparse.Namespace) -> tuple[Traffic | None, Path | None]:
    """(the traffic the flags give, the trace it was read from)."""
    given = args.traffic
    trace = given is not None and given.startswith(TRACE)
    for flag, value in (("--peak-window", args.peak_window), ("--replay-speed", getattr(args, "replay_speed", None))):
        if value is not None and not trace:
            raise UsageError(f"{flag} is for --traffic trace:PATH; got no trace")
    if given is None:
        if args.peak is not None:
            raise UsageError("--peak needs --traffic: the peak of which traffic?")
        return None, None
    if trace:
        if args.peak is not None:
            raise UsageError("--peak is for --traffic RPS; a trace gives its own peak (over --peak-window)")
        path = Path(given.removeprefix(TRACE)).expanduser()
        window = PEAK_WINDOW_S if args.peak_window is None else args.peak_window
        return traffic_from_trace(path, window), path
    try:
        rate = float(given)
    except ValueError:
        raise UsageError(f"--traffic must be a rate in requests/s or trace:PATH; got {given!r}") from None
    return traffic_from_rates(rate, args.peak), None


def capacity_step(args: argparse.Namespace) -> CapacityStep | None:
    """tune's capacity step from its flags; None when neither --traffic nor --capacity asks for it."""
    from paretoserve.tune.config import CapacityStep

    traffic, trace = traffic_of(args)
    if traffic is None and not args.capacity:
        unused = [flag for flag, given in (("--capacity-slo", args.capacity_slo is not None),
                                           ("--headroom", args.headroom != CapacityStep.headroom)) if given]
        if unused:  # a capacity setting with no capacity step to take it
            raise UsageError(f"{unused[0]} applies to the capacity step: give --capacity or --traffic")
        return None
    try:
        slo = parse_slo(args.capacity_slo) if args.capacity_slo else None
    except SloError as exc:
        raise UsageError(str(exc).replace("--slo:", "--capacity-slo:", 1)) from None
    speed = CapacityStep.replay_speed if args.replay_speed is None else args.replay_speed
    return CapacityStep(traffic=traffic, trace=trace, attainment=args.attainment, slo=slo, headroom=args.headroom,
                        replay_speed=speed)
