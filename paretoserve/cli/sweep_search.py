"""`paretoserve sweep --search bca`: the flags, and running the adaptive search (sweep/search.py) on real engines."""

from __future__ import annotations

import argparse
import sys
import time

from pydantic import ValidationError

from paretoserve.advise import AdviseConfig, AdviseError
from paretoserve.cli.advice_args import flag_error
from paretoserve.cli.common import UsageError
from paretoserve.launch import LaunchError
from paretoserve.sweep.grid import SweepSpec
from paretoserve.sweep.runner import Measure, run_search
from paretoserve.sweep.search import SearchConfig
from paretoserve.sweep.store import SweepStore


def search_args(parser: argparse.ArgumentParser) -> None:
    s = parser.add_argument_group("search (--search bca; the SLO is --slo, or the paper's 3 x TPOT at B=32)")
    s.add_argument("--search", choices=("grid", "bca"), default="grid",
                   help="grid: every --max-batch value; bca: double from B=32 until the SLO, the efficiency floor "
                        "or the throughput gain breaks, then bisect; caps up to the largest --max-batch (default: grid)")
    s.add_argument("--slo-multiple", type=float, default=None, help="relative SLO: multiple of --slo-metric at ...")
    s.add_argument("--slo-ref-batch", type=int, default=32, help="... the run nearest this batch (default: 32)")
    s.add_argument("--slo-metric", default="tpot", help="tpot, itl, ttft or e2el, p99_/median_ allowed (default: tpot)")
    s.add_argument("--min-efficiency", type=float, default=0.0, help="floor on T(B) / (B x T(1)) (default: 0)")
    s.add_argument("--min-gain", type=float, default=0.1,
                   help="stop doubling when it adds less than this share of throughput (default: 0.1)")


def search_args_record(args: argparse.Namespace) -> dict:
    """What sweep.json keeps of the search, so --resume continues the same one."""
    if args.search != "bca":
        return {}
    return {"search": {k: getattr(args, k) for k in ("search", "slo_multiple", "slo_ref_batch", "slo_metric",
                                                     "min_efficiency", "min_gain")}}


def search_configs(args: argparse.Namespace, spec: SweepSpec) -> tuple[SearchConfig, AdviseConfig]:
    """The search's settings, checked before anything is created or started."""
    if any(len(values) > 1 for values in (spec.kv_tokens, spec.threads, spec.replicas)):
        raise UsageError("--search bca searches the batch cap only: give one --kv-tokens, --threads-per-replica "
                         "and --replicas value")
    try:
        slo = AdviseConfig(slo=args.slo, slo_multiple=args.slo_multiple, slo_ref_batch=args.slo_ref_batch,
                           slo_metric=args.slo_metric, min_efficiency=args.min_efficiency)
    except ValidationError as exc:
        raise flag_error(exc) from exc
    try:
        return SearchConfig(candidates=tuple(range(1, max(spec.max_batch) + 1)), min_gain=args.min_gain), slo
    except ValueError as exc:
        raise UsageError(f"--search bca: {exc}") from exc


def search_sweep(configs: tuple[SearchConfig, AdviseConfig], spec: SweepSpec, measure: Measure, store: SweepStore,
                 started: float) -> int:
    """Run the search, one engine point at a time (finished points of a resumed sweep are reused)."""
    search, slo = configs
    try:
        result, ran = run_search(spec, search, slo, measure, store)
    except (AdviseError, LaunchError) as exc:
        raise UsageError(f"--search bca: {exc}") from exc
    store.export_csv(store.dir / "points.csv")
    engine_s = sum(r.get("wall_s") or 0.0 for r in ran)
    print(f"search bca: B_opt = {result.b_opt} (cap {result.b_opt_cap}); ran {len(ran)} points "
          f"(caps {', '.join(map(str, result.measured))}) in {time.perf_counter() - started:.0f} s wall, "
          f"{engine_s:.0f} s of it in points; {result.stop_reason or 'done'}; {store.points_path}")
    print(f"next: paretoserve advise {store.dir}", file=sys.stderr)
    return 0
