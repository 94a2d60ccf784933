"""Each engine tuned by paretoserve against the same engine as it starts by default, under the same SLO.

For each engine preset: `paretoserve tune --engine E` (search, no replica run) picks B_opt under the SLO
(the paper's 3 x mean TPOT at B=32 unless --slo) and the KV cache for it; then the engine is started twice,
once as `tune` advises (batch cap B_opt, KV for B_opt sequences) and once with its own defaults, and both
get the same load: a closed loop of --concurrency users (streamed, fixed lengths, ignore_eos), through
paretoserve's bench. Printed side by side: goodput (requests meeting the SLO's TPOT bound, per second),
output tok/s, peak engine memory (RSS), p99 TTFT, and the ratios tuned / default.

The defaults: the embedded engine's (`paretoserve engine`: cap 64, KV for 64 x 2,048 tokens);
llama-server's (no -np, no -c: its own slot count and the model's training context); vLLM's own
`--max-num-seqs` and `--max-model-len` with its KV sized by memory (`--gpu-memory-utilization`
--vllm-memory, since its default of 0.9 of RAM does not start on a machine in use).

    python benchmarks/engine_defaults.py [--engines embedded,llama-server,vllm] [--concurrency 64]
        [--requests 256] [--threads 2] [--duration 15] [--slo tpot_ms<=100] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
from pathlib import Path

from paretoserve.advise import AdviseConfig
from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.bench.slo import parse_slo
from paretoserve.cli.common import stop_on_sigterm
from paretoserve.engine.repack import cpu_flags
from paretoserve.engine_process import EngineProcess, embedded_engine_cmd, free_port
from paretoserve.model import resolve_model
from paretoserve.presets import preset
from paretoserve.presets.llama_server import find_llama_server, no_repack
from paretoserve.presets.vllm import hf_model, server_argv
from paretoserve.serve.config import ServeConfig
from paretoserve.tune import TuneConfig, run_tune

FIELDS = ("request_goodput", "output_throughput", "rss_peak_bytes", "p99_ttft_ms", "mean_tpot_ms", "max_running",
          "completed", "failed")


def default_argv(engine: str, port: int, threads: int, vllm_memory: float) -> list[str]:
    """The engine as a user starts it without tuning: only the model, the port, the threads (and what the
    machine needs: llama-server's --no-repack on AMX)."""
    if engine == "embedded":
        return embedded_engine_cmd(port, "127.0.0.1", "--threads", str(threads))
    if engine == "llama-server":
        argv = [str(find_llama_server()), "-m", str(resolve_model("default").path), "--host", "127.0.0.1",
                "--port", str(port), "-t", str(threads), "--metrics"]
        return argv + (["--no-repack"] if no_repack("auto", cpu_flags()) else [])
    return [*server_argv(hf_model("default"), port, threads), "--gpu-memory-utilization", f"{vllm_memory:.2f}"]


def measure(argv: list[str], env: dict[str, str], args: argparse.Namespace, slo: str) -> dict:
    """Bench fields of one engine started with `argv`, warmed up, then driven by the closed loop."""
    port = int(argv[argv.index("--port") + 1])
    with EngineProcess(argv, f"http://127.0.0.1:{port}", "/health", env=env) as process:
        process.wait_healthy(600.0)

        def bench(concurrency: int, requests: int) -> dict:
            cfg = BenchConfig(url=process.base_url, input_tokens=TokenRange(args.input_tokens, args.input_tokens),
                              output_tokens=TokenRange(args.output_tokens, args.output_tokens), requests=requests,
                              concurrency=concurrency, energy="none", engine_pids=process.pids, seed=args.seed,
                              slo=parse_slo(slo))
            return asyncio.run(run_bench(cfg, keep_requests=False))

        bench(4, 4)  # warm-up
        result = bench(args.concurrency, args.requests)
    return {k: result.get(k) for k in FIELDS}


def compare(engine: str, args: argparse.Namespace, work: Path) -> dict:
    """Tune `engine`, then measure its tuned and default configurations under the tuned SLO."""
    cfg = TuneConfig(engine=engine, out=work / engine, threads=args.threads, duration_s=args.duration,
                     input_tokens=args.input_tokens, output_tokens=args.output_tokens, verify=False,
                     advice=AdviseConfig(slo=args.slo) if args.slo else AdviseConfig())
    tuned = run_tune(cfg, say=lambda line: print(f"  {line}", flush=True))
    limits = {lim.field: lim.bound_ms for lim in tuned.advice.slo.limits}
    bound = limits.get("mean_tpot_ms") or next(iter(limits.values()))
    slo = f"tpot_ms<={bound:.6g}"  # per request: its own TPOT within the run's bound
    plan = ServeConfig(engine=engine, max_batch=tuned.advice.b_opt_max_batch, kv_tokens=tuned.advice.commands.kv_tokens,
                       ctx_per_seq=tuned.advice.commands.ctx_per_seq, threads_per_replica=args.threads, pin=False)
    port = free_port()
    out = {"b_opt": tuned.advice.b_opt, "slo": slo, "tune_s": tuned.wall_s,
           "tuned": measure(plan.command(0, port, args.threads), plan.env, args, slo)}
    out["default"] = measure(default_argv(engine, free_port(), args.threads, args.vllm_memory),
                             dict(preset(engine).env), args, slo)
    for name in ("tuned", "default"):
        r = out[name]
        print(f"  {engine} {name}: goodput {r['request_goodput']:.2f} req/s, {r['output_throughput']:.1f} tok/s, "
              f"RSS {r['rss_peak_bytes'] / 1e9:.2f} GB, p99 TTFT {r['p99_ttft_ms']:.0f} ms, max running "
              f"{r['max_running']}, {r['failed']} failed", flush=True)
    return out


def table(results: dict[str, dict]) -> None:
    print("\n| engine | B_opt (SLO) | goodput req/s tuned / default | tok/s tuned / default | RSS GB tuned / default "
          "| p99 TTFT ms tuned / default | goodput ratio | memory ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for engine, r in results.items():
        t, d = r["tuned"], r["default"]
        ratio = t["request_goodput"] / d["request_goodput"] if d["request_goodput"] else float("inf")
        print(f"| {engine} | {r['b_opt']} ({r['slo']}) | {t['request_goodput']:.2f} / {d['request_goodput']:.2f} "
              f"| {t['output_throughput']:.1f} / {d['output_throughput']:.1f} "
              f"| {t['rss_peak_bytes'] / 1e9:.2f} / {d['rss_peak_bytes'] / 1e9:.2f} "
              f"| {t['p99_ttft_ms']:.0f} / {d['p99_ttft_ms']:.0f} | {ratio:.2f} "
              f"| {t['rss_peak_bytes'] / d['rss_peak_bytes']:.2f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="embedded,llama-server,vllm")
    p.add_argument("--concurrency", type=int, default=64, help="users of the closed loop (default: %(default)s)")
    p.add_argument("--requests", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--input-tokens", type=int, default=32)
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--duration", type=float, default=15.0, help="tune's seconds of load per point")
    p.add_argument("--slo", default=None, help="tune's --slo (default: the paper's 3 x mean TPOT at B=32)")
    p.add_argument("--vllm-memory", type=float, default=0.5,
                   help="vLLM default run: --gpu-memory-utilization, a share of RAM on CPU (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for engine in args.engines.split(","):
            preset(engine).check()
            print(f"{engine}:", flush=True)
            results[engine] = compare(engine, args, Path(work))
    table(results)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
