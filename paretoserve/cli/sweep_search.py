"""`paretoserve sweep --search bca`: its flags, turned into the search plan (sweep/session.py), and its summary line."""

from __future__ import annotations

import argparse
from pathlib import Path

from paretoserve.bench.slo import Slo
from paretoserve.cli.advice_args import add_advice_flags, advise_config
from paretoserve.cli.common import UsageError
from paretoserve.sweep.grid import SweepSpec
from paretoserve.sweep.search import SearchConfig, SearchResult
from paretoserve.sweep.session import SearchPlan, plan_search

# The advice flags the search reads (the SLO's own --slo is the workload's), with what they mean here.
SEARCH_FLAGS = ("slo_multiple", "slo_ref_batch", "slo_metric", "min_efficiency", "hardware", "model_geometry")
SEARCH_HELP = {
    "hardware": "jump ahead: after the start point, measure the last cap the roofline of this hardware (a "
                "`paretoserve estimate --hardware` name or YAML) predicts the doubling would pass (default: no "
                "roofline)",
    "model_geometry": "with --hardware: the model's .gguf or config.json (default: --model; needed with --engine-cmd)",
}


def search_args(parser: argparse.ArgumentParser) -> None:
    s = parser.add_argument_group("search (--search bca; the SLO is --slo, or the paper's 3 x TPOT at B=32)")
    s.add_argument("--search", choices=("grid", "bca"), default="grid",
                   help="grid: every --max-batch value; bca: double from B=32 until the SLO, the efficiency floor "
                        "or the throughput gain breaks, then bisect; caps up to the largest --max-batch "
                        "(default: grid)")
    s.add_argument("--min-gain", type=float, default=SearchConfig.min_gain,
                   help="stop doubling when it adds less than this share of throughput (default: %(default)s)")
    add_remeasure_arg(s, SearchConfig.remeasure_budget)
    add_advice_flags(s, SEARCH_FLAGS, SEARCH_HELP)
    s.add_argument("--calibrate", metavar="DIR", default=None,
                   help="with --hardware: fit the roofline to this earlier sweep on the same hardware and engine "
                        "(default: the uncalibrated roofline)")


def add_remeasure_arg(group, default: int) -> None:
    """--remeasure-budget, shared by `sweep --search bca` and `tune`."""
    group.add_argument("--remeasure-budget", type=int, default=default, metavar="RUNS",
                       help="extra runs the search may spend measuring both caps of a doubling again when its gain "
                            "is within the noise of --min-gain (0-100; default: %(default)s)")


def search_args_record(args: argparse.Namespace) -> dict:
    """What sweep.json keeps of the search, so --resume continues the same one."""
    if args.search != "bca":
        return {}
    return {"search": {k: getattr(args, k) for k in ("search", *SEARCH_FLAGS, "min_gain", "calibrate")}}


def search_plan(args: argparse.Namespace, spec: SweepSpec, slo: Slo | None) -> SearchPlan | None:
    """The search's settings and its roofline guess (None for a grid sweep), checked before anything is
    created or started. `slo` is the workload's parsed --slo: each point's bench counts goodput by it per
    request, and the search judges each point's run summary by it (a bare metric is the run's mean)."""
    given = [flag for flag, value in (("--hardware", args.hardware), ("--calibrate", args.calibrate),
                                      ("--model-geometry", args.model_geometry)) if value is not None]
    if args.search != "bca":
        if given:
            raise UsageError(f"{given[0]} guides --search bca; a grid sweep runs every point")
        return None
    if any(len(values) > 1 for values in (spec.kv_tokens, spec.threads, spec.replicas)):
        raise UsageError("--search bca searches the batch cap only: give one --kv-tokens, --threads-per-replica "
                         "and --replicas value")
    if args.hardware is None and given:
        raise UsageError(f"{given[0]} needs --hardware (the roofline it applies to)")
    return plan_search(spec, advise_config(args, SEARCH_FLAGS, slo=slo), args.min_gain, args.remeasure_budget,
                       args.calibrate)


def search_line(result: SearchResult, ran: list[dict], budget: int, wall_s: float, points_path: Path) -> str:
    """The search's summary: B_opt, the caps it ran, its wall time and why it stopped."""
    engine_s = sum(r.get("wall_s") or 0.0 for r in ran)
    jumped = f"; the roofline's guess {result.guess} (predicted) was measured after the start" if result.guess else ""
    return (f"search bca: B_opt = {result.b_opt} (cap {result.b_opt_cap}){jumped}; ran {len(ran)} points "
            f"(caps {', '.join(map(str, result.measured))}) in {wall_s:.0f} s wall, "
            f"{engine_s:.0f} s of it in points; {result.stop_reason or 'done'}; "
            f"{result.remeasure_line(budget)}; {points_path}")
