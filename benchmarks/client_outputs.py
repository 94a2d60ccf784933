"""benchmarks/clients.py's view of each client: the command line that runs it and its output read into one
set of figures (GuideLLM's JSON, AIPerf's `profile_export_aiperf.json`, bench's `--out` JSON)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# AIPerf 0.13 in pure concurrency mode polls for a free slot without sleeping (its credit loop yields to the event
# loop and tries again), which keeps its timing_manager process busy for the whole run: about half a core, taken
# from a CPU engine. With a request rate far above what the engine completes (one tick per 10 ms here) the
# concurrency stays the limit, and the loop sleeps between ticks instead.
AIPERF_PACING = ("--request-rate", "100", "--arrival-pattern", "constant")


@dataclass
class Figures:
    """What a client reported about its own run, in one set of names."""

    completed: int
    failed: int
    input_tokens_per_request: float | None
    output_tokens_per_request: float | None
    output_throughput: float | None  # tok/s
    mean_ttft_ms: float | None
    p99_ttft_ms: float | None
    mean_itl_ms: float | None




def parse_guidellm(path: Path) -> Figures:
    """GuideLLM's `--output kind=json`: one benchmark, metrics of its successful requests."""
    bench = json.loads(path.read_text())["benchmarks"][0]
    m = bench["metrics"]

    def ok(name: str) -> dict:
        return m[name]["successful"]

    totals = m["request_totals"]
    completed = int(totals["successful"])
    out_tokens = ok("output_token_count")["total_sum"]
    return Figures(
        completed=completed, failed=int(totals["errored"]) + int(totals["incomplete"]),
        input_tokens_per_request=ok("prompt_token_count")["mean"],
        output_tokens_per_request=ok("output_token_count")["mean"],
        output_throughput=out_tokens / bench["duration"] if bench["duration"] else None,
        mean_ttft_ms=ok("time_to_first_token_ms")["mean"],
        p99_ttft_ms=ok("time_to_first_token_ms")["percentiles"]["p99"],
        mean_itl_ms=ok("inter_token_latency_ms")["mean"])


def parse_aiperf(artifacts: Path) -> Figures:
    """AIPerf's summary export, `profile_export_aiperf.json` (token counts from the server's usage); its
    `request_count` counts the valid requests, `error_request_count` (present when there were any) the others."""
    d = json.loads((artifacts / "profile_export_aiperf.json").read_text())

    def stat(name: str, key: str = "avg") -> float | None:
        return (d.get(name) or {}).get(key)

    failed = stat("error_request_count")
    if failed is None:
        failed = sum(int(e.get("count", 0)) for e in d.get("error_summary") or [])
    requests = stat("request_count") or 0
    return Figures(
        completed=int(requests), failed=int(failed),
        input_tokens_per_request=stat("input_sequence_length"),
        output_tokens_per_request=stat("output_sequence_length"),
        output_throughput=stat("output_token_throughput"), mean_ttft_ms=stat("time_to_first_token"),
        p99_ttft_ms=stat("time_to_first_token", "p99"), mean_itl_ms=stat("inter_token_latency"))


def parse_bench(path: Path) -> Figures:
    """`paretoserve bench --out`: vLLM's field names."""
    r = json.loads(path.read_text())
    completed = int(r["completed"])
    return Figures(
        completed=completed, failed=int(r["failed"]),
        input_tokens_per_request=r["total_input_tokens"] / completed if completed else None,
        output_tokens_per_request=r["total_output_tokens"] / completed if completed else None,
        output_throughput=r["output_throughput"], mean_ttft_ms=r["mean_ttft_ms"], p99_ttft_ms=r["p99_ttft_ms"],
        mean_itl_ms=r["mean_tpot_ms"])


# -- how to run each client ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    url: str
    model: str
    tokenizer: Path
    requests: int
    concurrency: int
    input_tokens: int
    output_tokens: int
    seed: int


def offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def bench_cmd(s: Shape, out: Path) -> tuple[list[str], dict[str, str], Path]:
    path = out / "bench.json"
    cmd = [sys.executable, "-m", "paretoserve", "bench", "--url", s.url, "--served-model-name", s.model,
           "--endpoint", "completions", "--input-tokens", str(s.input_tokens), "--output-tokens", str(s.output_tokens),
           "--mode", "concurrency", "--concurrency", str(s.concurrency), "--requests", str(s.requests),
           "--seed", str(s.seed), "--no-progress", "--out", str(path)]
    return cmd, offline_env(), path


def guidellm_cmd(exe: str, s: Shape, out: Path) -> tuple[list[str], dict[str, str], Path]:
    path = out / "guidellm.json"
    cmd = [exe, "run",
           "--backend", f"kind=openai_http,target={s.url},model={s.model},request_format=/v1/completions",
           "--profile", f"kind=concurrent,streams={s.concurrency}",
           "--constraint", f"kind=max_requests,count={s.requests}",
           "--data", f"kind=synthetic_text,prompt_tokens={s.input_tokens},output_tokens={s.output_tokens}",
           "--tokenizer", f"kind=huggingface_auto,model={s.tokenizer}",
           "--seed", f"kind=static,value={s.seed}",
           "--output", f"kind=json,path={path}",
           "--disable-console-interactive"]
    return cmd, offline_env(), path


def aiperf_cmd(exe: str, s: Shape, out: Path, paced: bool = False) -> tuple[list[str], dict[str, str], Path]:
    artifacts = out / ("aiperf-paced" if paced else "aiperf")
    cmd = [exe, "profile", "--model", s.model, "--url", s.url, "--endpoint-type", "completions", "--streaming",
           "--tokenizer", str(s.tokenizer), "--concurrency", str(s.concurrency), "--request-count", str(s.requests),
           "--synthetic-input-tokens-mean", str(s.input_tokens), "--synthetic-input-tokens-stddev", "0",
           "--output-tokens-mean", str(s.output_tokens), "--extra-inputs", "ignore_eos:true",
           "--use-server-token-count", "--random-seed", str(s.seed), "--artifact-dir", str(artifacts), "--ui", "none",
           *(AIPERF_PACING if paced else ())]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return cmd, env, artifacts


PARSERS = {"bench": parse_bench, "guidellm": parse_guidellm, "aiperf": parse_aiperf, "aiperf-paced": parse_aiperf}
