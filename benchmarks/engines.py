"""Engines side by side: the embedded engine, llama-server and vLLM on CPU, same model, same workload, same client.

For each engine preset and each batch cap, one engine is started as the preset starts it (`--engine`: the
embedded engine, llama-server with -np = cap, vLLM with --max-num-seqs = cap), warmed up, and driven by
paretoserve's bench at concurrency = cap (streamed, fixed --input-tokens and --output-tokens, ignore_eos,
greedy); the engines run one after another at each cap, so drift on the machine hits them alike. Engines
that are not installed are left out, and said so. vLLM runs its HF export of the same model (bf16, where
the llama.cpp engines run the Q4_K_M GGUF).

Printed per cap: output tok/s, mean ITL, p99 TTFT and failed requests of each engine, and each engine's
tok/s over llama-server's (the goal: the embedded engine at no less than 1.0 at every cap, 0 failures).

    python benchmarks/engines.py [--caps 1,2,4,8,16,32,64] [--engines embedded,llama-server,vllm]
        [--threads 2] [--input-tokens 32] [--output-tokens 64] [--requests-per-slot 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.cli.common import stop_on_sigterm
from paretoserve.engine_process import EngineProcess, free_port
from paretoserve.limits import UserError
from paretoserve.presets import PresetError, preset
from paretoserve.serve.config import ServeConfig

FIELDS = ("output_throughput", "mean_itl_ms", "p99_ttft_ms", "completed", "failed")
BASELINE = "llama-server"


def measure(engine: str, cap: int, args: argparse.Namespace) -> dict:
    """Bench fields of one engine at one batch cap, on a freshly started engine warmed up first."""
    ctx = args.input_tokens + 1 + args.output_tokens
    plan = ServeConfig(engine=engine, max_batch=cap, ctx_per_seq=ctx, threads_per_replica=args.threads,
                       model=args.model, pin=False)
    port = free_port()
    with EngineProcess(plan.command(0, port, args.threads), f"http://127.0.0.1:{port}", plan.health_path,
                       env=plan.env) as process:
        process.wait_healthy(args.health_timeout)

        def bench(concurrency: int, requests: int) -> dict:
            cfg = BenchConfig(url=process.base_url, input_tokens=TokenRange(args.input_tokens, args.input_tokens),
                              output_tokens=TokenRange(args.output_tokens, args.output_tokens), requests=requests,
                              concurrency=concurrency, energy="none", engine_pids=process.pids, seed=args.seed)
            return asyncio.run(run_bench(cfg, keep_requests=False))

        bench(min(cap, 4), min(cap, 4))  # warm-up: first-request costs stay out
        result = bench(cap, max(4, args.requests_per_slot * cap))
    r = {k: result.get(k) for k in FIELDS}
    print(f"  {engine:>12} cap {cap:>3}: {r['output_throughput']:.1f} tok/s, mean ITL {r['mean_itl_ms']:.1f} ms, "
          f"p99 TTFT {r['p99_ttft_ms']:.0f} ms, {r['completed']} ok / {r['failed']} failed", flush=True)
    return r


def installed(engines: list[str]) -> list[str]:
    """The engines whose preset can start here; the others are named with what installs them."""
    kept = []
    for name in engines:
        try:
            preset(name).check()
            kept.append(name)
        except PresetError as exc:
            print(f"left out: {exc}")
    return kept


def table(results: dict[str, dict[int, dict]], caps: list[int]) -> None:
    engines = list(results)
    print("\n| cap | " + " | ".join(f"{e} tok/s | {e} ITL ms | {e} p99 TTFT ms | {e} failed" for e in engines)
          + "".join(f" | {e} / {BASELINE}" for e in engines if e != BASELINE and BASELINE in results) + " |")
    print("|" + " --- |" * (1 + 4 * len(engines) + sum(e != BASELINE and BASELINE in results for e in engines)))
    for cap in caps:
        row = [str(cap)]
        for e in engines:
            r = results[e][cap]
            row += [f"{r['output_throughput']:.1f}", f"{r['mean_itl_ms']:.1f}", f"{r['p99_ttft_ms']:.0f}",
                    str(r["failed"])]
        if BASELINE in results:
            base = results[BASELINE][cap]["output_throughput"]
            row += [f"{results[e][cap]['output_throughput'] / base:.2f}" if base else "-"
                    for e in engines if e != BASELINE]
        print("| " + " | ".join(row) + " |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--caps", default="1,2,4,8,16,32,64")
    p.add_argument("--engines", default="embedded,llama-server,vllm")
    p.add_argument("--model", default="default", help="default: the bundled model (vLLM: its HF export)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--input-tokens", type=int, default=32)
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--requests-per-slot", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--health-timeout", type=float, default=300.0)
    p.add_argument("--json", default=None, help="write every figure here")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    caps = [int(c) for c in args.caps.split(",")]
    engines = installed(args.engines.split(","))
    results: dict[str, dict[int, dict]] = {e: {} for e in engines}
    try:
        for cap in caps:
            print(f"cap {cap}:", flush=True)
            for engine in engines:
                results[engine][cap] = measure(engine, cap, args)
    except UserError as exc:
        print(f"engines.py: {exc}")
        return 2
    table(results, caps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
