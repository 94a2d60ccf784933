"""`paretoserve sweep`: for each engine configuration, start it, wait for health, run the workload, record."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from pathlib import Path

from paretoserve.bench.config import BenchConfig
from paretoserve.cli.bench_cmd import add_workload_args, config_from_args
from paretoserve.cli.common import UsageError, stop_on_sigterm
from paretoserve.cli.sweep_search import search_args, search_args_record, search_configs, search_sweep
from paretoserve.model import ModelError, resolve_model
from paretoserve.sweep.environment import collect_environment
from paretoserve.sweep.grid import SweepSpec, SweepSpecError, parse_int_list
from paretoserve.sweep.measure import bench_measure
from paretoserve.sweep.runner import run_points
from paretoserve.sweep.store import StoreError, SweepStore


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("sweep", help=help,
                              description=__doc__)
    g = p.add_argument_group("grid")
    g.add_argument("--model", default="default", help="GGUF file or 'default' (default: %(default)s)")
    g.add_argument("--max-batch", default="1,2,4,8,16,32,64", help="batch caps (default: %(default)s)")
    g.add_argument("--kv-tokens", default=None, help="KV budgets in tokens (default: the engine's own)")
    g.add_argument("--threads-per-replica", default="0", help="engine threads; 0 = all cores (default: 0)")
    g.add_argument("--replicas", default="1", help="replicas per point; more than 1 runs behind `paretoserve serve`'s router, each replica "
                        "pinned to --threads-per-replica cores of its own (default: 1)")
    g.add_argument("--ctx-per-seq", type=int, default=None,
                   help="embedded engine: longest prompt + output (default: input + output tokens of the workload)")
    e = p.add_argument_group("engine")
    e.add_argument("--engine-cmd", default=None,
                   help="command template of any other engine, with {model} {port} {max_batch} {kv_tokens} "
                        "{threads} {replica}; default: the embedded engine")
    e.add_argument("--health-path", default="/health", help="readiness URL path (default: /health)")
    e.add_argument("--health-timeout", type=float, default=300.0, help="seconds to wait for health (default: 300)")
    add_workload_args(p)
    search_args(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=Path("sweep"), help="results directory (default: ./sweep)")
    o.add_argument("--resume", action="store_true", help="continue the sweep in --out, skipping finished points")
    p.set_defaults(run=run)


def spec_from_args(args: argparse.Namespace, bench: BenchConfig) -> SweepSpec:
    try:
        ctx = args.ctx_per_seq
        if ctx is None and args.engine_cmd is None and bench.dataset == "synthetic":
            ctx = bench.input_tokens.high + 1 + (bench.output_tokens.high if bench.output_tokens else 128)
        return SweepSpec(
            model=args.model, max_batch=parse_int_list("--max-batch", args.max_batch, 1, 4096),
            kv_tokens=parse_int_list("--kv-tokens", args.kv_tokens, 16, 1 << 26) if args.kv_tokens else (None,),
            threads=parse_int_list("--threads-per-replica", args.threads_per_replica, 0, 1024),
            replicas=parse_int_list("--replicas", args.replicas, 1, 64), ctx_per_seq=ctx,
            engine_cmd=args.engine_cmd, health_path=args.health_path, metrics_path=bench.metrics_path,
            health_timeout_s=args.health_timeout)
    except SweepSpecError as exc:
        raise UsageError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    args.url = "http://127.0.0.1:1"  # checked now, replaced by each point's engine address
    bench = config_from_args(args)
    spec = spec_from_args(args, bench)
    search = search_configs(args, spec)
    if spec.engine_cmd is None:
        try:
            resolve_model(spec.model)  # build the bundled model once, before the first engine starts
        except ModelError as exc:
            raise UsageError(str(exc)) from exc
    store = SweepStore(args.out)
    spec_record = {**spec.as_dict(), "workload": {k: str(v) for k, v in dataclasses.asdict(bench).items()
                                                  if k not in ("url", "engine_pids")}, **search_args_record(args)}
    try:
        finished = store.open(spec_record, collect_environment(), args.resume)
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    measure = bench_measure(bench, saturate=args.concurrency is None)
    try:
        if search is not None:
            return search_sweep(search, spec, measure, store, time.perf_counter())
        points = spec.points()
        todo = [p for p in points if p.key() not in finished]
        print(f"sweep: {len(points)} points, {len(points) - len(todo)} already done, results in {args.out}",
              file=sys.stderr)
        records = run_points(spec, todo, measure, store, total=len(points), done=len(points) - len(todo))
    except KeyboardInterrupt:
        print(f"sweep interrupted; finished points are in {store.points_path}; continue with --resume",
              file=sys.stderr)
        return 130
    csv_path = store.export_csv(store.dir / "points.csv")
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed:
        print(f"point {r['key']} failed: {r['reason'][:300]}", file=sys.stderr)
    print(f"sweep done: {len(records) - len(failed)} ok, {len(failed)} failed; {store.points_path}, {csv_path}")
    return 1 if failed and len(failed) == len(records) else 0
