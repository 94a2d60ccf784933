"""Replication on this CPU: one replica with 2 threads vs two replicas with 1 thread each, same load.

Both run the embedded engine on the bundled model behind `paretoserve serve` (ReplicaServer: the
router in its own process), each replica pinned to its own cores; one replica of --max-batch, or two
of half of it each, so both have the same total batch cap. For each total concurrency, the same
workload goes through the router with paretoserve's bench (`run_bench`: streamed requests, fixed
--input-tokens and --output-tokens, ignore_eos, greedy, token-id prompts): --requests-per-slot x
concurrency requests (at least --min-requests), each point on a freshly started server warmed up
with a few requests; the two plans run back to back at each concurrency.

Printed per concurrency: aggregate output tok/s, mean ITL and p99 TTFT of both, and 2x1 / 1x2 ratios
(tok/s ratio > 1: the replicas win; latency ratio < 1: the replicas are faster).

    python benchmarks/replication.py [--concurrency 1,2,4,8,16,32,64] [--input-tokens 32] [--output-tokens 64]
                                     [--requests-per-slot 2] [--min-requests 4] [--max-batch 64] [--json out.json]

Hand measurement to compare (bare llama.cpp loops, this machine): 2 x 1 thread 135 tok/s against 82
for 1 x 2 threads at total batch 2; one process wins from batch 4 on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.cli.common import stop_on_sigterm
from paretoserve.engine.config import available_cores
from paretoserve.model import resolve_model
from paretoserve.serve import ReplicaServer, ServeConfig

FIELDS = ("output_throughput", "mean_itl_ms", "p99_ttft_ms")


def measure(plan: ServeConfig, concurrency: int, args: argparse.Namespace) -> dict:
    """Bench fields of one replica plan at one total concurrency, on a fresh server warmed up first."""
    with ReplicaServer(plan) as server:
        server.wait_healthy(600)

        def bench(concurrency: int, requests: int) -> dict:
            cfg = BenchConfig(url=server.base_url, input_tokens=TokenRange(args.input_tokens, args.input_tokens),
                              output_tokens=TokenRange(args.output_tokens, args.output_tokens), requests=requests,
                              concurrency=concurrency, energy="none", engine_pids=server.pids, seed=args.seed)
            return asyncio.run(run_bench(cfg))

        bench(plan.replicas, 2 * plan.replicas)  # warm-up: first-request costs of each replica stay out
        result = bench(concurrency, max(args.min_requests, args.requests_per_slot * concurrency))
    r = {k: result.get(k) for k in (*FIELDS, "completed", "failed", "duration")}
    print(f"  {plan.replicas} x {plan.threads_per_replica} thread(s), concurrency {concurrency:>3}: "
          f"{r['output_throughput']:.1f} tok/s, mean ITL {r['mean_itl_ms']:.1f} ms, "
          f"p99 TTFT {r['p99_ttft_ms']:.0f} ms, {r['completed']} ok / {r['failed']} failed "
          f"in {r['duration']:.1f} s", flush=True)
    return r


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", default="1,2,4,8,16,32,64", help="total concurrencies")
    ap.add_argument("--input-tokens", type=int, default=32)
    ap.add_argument("--output-tokens", type=int, default=64)
    ap.add_argument("--requests-per-slot", type=int, default=2, help="requests = this x concurrency")
    ap.add_argument("--min-requests", type=int, default=4)
    ap.add_argument("--max-batch", type=int, default=64, help="total batch cap, split among the replicas")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # unwinds through ReplicaServer, which stops its replicas
    if available_cores() < 2:
        raise SystemExit("needs 2 usable cores (one replica with 2 threads, or two with 1 each)")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    model = str(resolve_model("default").path)
    ctx = args.input_tokens + args.output_tokens + 1  # + BOS
    plans = {"1x2": ServeConfig(replicas=1, threads_per_replica=2, max_batch=args.max_batch, ctx_per_seq=ctx,
                                model=model),
             "2x1": ServeConfig(replicas=2, threads_per_replica=1, max_batch=max(1, args.max_batch // 2),
                                ctx_per_seq=ctx, model=model)}
    print(f"bundled model, {args.input_tokens} input / {args.output_tokens} output tokens, ignore_eos, streamed, "
          f"through the router; other processes on this machine add noise")
    # Both plans back to back at each concurrency, so that a busier or quieter spell of this shared
    # machine falls on both sides of a ratio rather than on one plan's whole curve.
    results = {name: {} for name in plans}
    for concurrency in concurrencies:
        for name, plan in plans.items():
            results[name][concurrency] = measure(plan, concurrency, args)
    one, two = results["1x2"], results["2x1"]
    print(f"\n{'conc':>4} | {'1x2 tok/s':>9} {'2x1 tok/s':>9} {'ratio':>5} | "
          f"{'1x2 ITL':>7} {'2x1 ITL':>7} {'ratio':>5} | "
          f"{'1x2 p99 TTFT':>12} {'2x1 p99 TTFT':>12} {'ratio':>5}")
    for c in concurrencies:
        a, b = one[c], two[c]
        print(f"{c:>4} | {a['output_throughput']:>9.1f} {b['output_throughput']:>9.1f} "
              f"{ratio(b['output_throughput'], a['output_throughput']):>5} | {a['mean_itl_ms']:>7.1f} "
              f"{b['mean_itl_ms']:>7.1f} {ratio(b['mean_itl_ms'], a['mean_itl_ms']):>5} | "
              f"{a['p99_ttft_ms']:>12.0f} {b['p99_ttft_ms']:>12.0f} {ratio(b['p99_ttft_ms'], a['p99_ttft_ms']):>5}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
