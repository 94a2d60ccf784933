"""`paretoserve bench`: drive a workload through any OpenAI-compatible endpoint and summarise it."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console

from paretoserve.bench.access import Access
from paretoserve.bench.config import (
    ARRIVALS,
    ENDPOINTS,
    ENERGY_SOURCES,
    MODES,
    PROMPT_FORMATS,
    BenchConfig,
    BenchConfigError,
    TokenRange,
)
from paretoserve.bench.console import RichProgress, render, to_json
from paretoserve.bench.energy import DEFAULT_WATTS_PER_CORE
from paretoserve.bench.repeats import REPEATS, combine
from paretoserve.bench.runner import run_bench
from paretoserve.bench.slo import parse_slo
from paretoserve.cli import examples
from paretoserve.cli.common import UsageError
from paretoserve.openai_api.auth import ENV_VAR


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("bench", help=help, description=help,
                              epilog=examples("paretoserve bench --url http://127.0.0.1:8000 --concurrency 16 "
                                              "--requests 200"))
    p.add_argument("--url", required=True, help="base URL of the endpoint, e.g. http://127.0.0.1:8000")
    a = p.add_argument_group("access")
    a.add_argument("--api-key", default=None, metavar="KEY",
                   help="sent as 'Authorization: Bearer KEY' with every request, /metrics included (default: "
                        "$PARETOSERVE_API_KEY, else none)")
    a.add_argument("--ca-file", default=None, metavar="PEM",
                   help="https --url: trust the certificates in this file (a self-signed server's) instead of the "
                        "system's")
    a.add_argument("--insecure", action="store_true", help="https --url: do not check the server's certificate")
    add_workload_args(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    o.add_argument("--json", action="store_true", help="print the result JSON to stdout instead of the table")
    o.add_argument("--save-requests", action="store_true",
                   help="keep every request's record (timestamps of each token) in the JSON")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--repeats", type=int, default=1,
                   help="run the workload N times against the same server (not restarted between runs) and "
                        "report each figure's mean with its 95 %% interval (default: 1)")
    p.set_defaults(run=run)


def add_workload_args(p: argparse.ArgumentParser) -> None:
    """Workload, load and measurement flags: shared by bench and sweep."""
    w = p.add_argument_group("workload")
    w.add_argument("--endpoint", choices=ENDPOINTS, default="completions",
                   help="/v1/completions or /v1/chat/completions (default: %(default)s)")
    w.add_argument("--served-model-name", default=None,
                   help="the `model` sent with each request (default: the first model /v1/models lists)")
    w.add_argument("--dataset", default="synthetic",
                   help="synthetic, sharegpt:PATH, jsonl:PATH or trace:PATH (a JSONL of timestamp (ms), input_length, "
                        "output_length per request, replayed on its own schedule) (default: synthetic)")
    w.add_argument("--input-tokens", default=None,
                   help="prompt tokens of synthetic requests: N or LO:HI (default: 128)")
    w.add_argument("--output-tokens", default=None,
                   help="max_tokens: N or LO:HI (default: 128 for synthetic, the dataset's own lengths otherwise)")
    w.add_argument("--prompt-format", choices=PROMPT_FORMATS, default="auto",
                   help="synthetic prompts as token ids (exact lengths; paretoserve engines accept them) or text "
                        "(default: auto = ids when the endpoint is a paretoserve engine)")
    w.add_argument("--tokenizer", default="auto",
                   help="counts tokens of text datasets: a GGUF path, 'default' (the bundled model), 'none' "
                        "(~4 characters per token), or auto (default: the bundled model's when the endpoint serves it)")
    w.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=True,
                   help="ask for exactly max_tokens tokens (default: on; turn off for servers that refuse it)")
    w.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default: 0, greedy)")

    load = p.add_argument_group("load")
    load.add_argument("--mode", choices=MODES, default=None,
                      help="concurrency: closed loop; rate: open loop; burst: everything at t=0; trace: the times of "
                           "--dataset trace:PATH (default: trace with a trace, else concurrency)")
    load.add_argument("--concurrency", type=int, default=None,
                      help="requests in flight in concurrency mode (default: 8)")
    load.add_argument("--rate", type=float, default=None, help="requests per second in rate mode")
    load.add_argument("--arrival", choices=ARRIVALS, default=None,
                      help="rate mode's arrivals: poisson (seeded exponential gaps), constant (equal gaps) or gamma "
                           "(seeded gamma gaps, see --burstiness) (default: poisson)")
    load.add_argument("--burstiness", type=float, default=None,
                      help="--arrival gamma's shape, as vLLM's --burstiness: 1 = Poisson, < 1 burstier, > 1 more "
                           "regular (default: 1)")
    load.add_argument("--ramp-up", type=float, default=None, metavar="SECONDS",
                      help="rate mode: the rate grows linearly from 0 to --rate over this many seconds, then holds")
    load.add_argument("--requests", type=int, default=None, help="requests to send (default: 100 unless --duration)")
    load.add_argument("--duration", type=float, default=None, help="stop sending after this many seconds")
    load.add_argument("--seed", type=int, default=0, help="seeds prompts, lengths and arrivals (default: 0)")
    load.add_argument("--warmup", type=int, default=0, help="requests sent and discarded before the run (default: 0)")
    load.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request (default: 600)")
    load.add_argument("--slo", default=None,
                      help="e.g. 'tpot_ms<=30,p99_ttft_ms<=2000': bare metrics limit each request (goodput), "
                           "mean_/median_/p90_/p99_ ones the run")

    m = p.add_argument_group("measurement")
    m.add_argument("--metrics-path", default="/metrics", help="the endpoint's Prometheus path (default: /metrics)")
    m.add_argument("--sample-interval", type=float, default=1.0, help="seconds between samples (default: 1)")
    m.add_argument("--engine-pid", type=int, action="append", default=None,
                   help="engine process for RSS and CPU time (repeatable; default: whatever listens on a local "
                        "URL's port)")
    m.add_argument("--energy", choices=ENERGY_SOURCES, default="auto",
                   help="auto: NVML energy counter, else RAPL, else estimated from engine CPU time (default: auto)")
    m.add_argument("--watts-per-core", type=float, default=None,
                   help=f"power of one busy core for --energy estimated (default: {DEFAULT_WATTS_PER_CORE:g} W)")
    m.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before the measured run (in a sweep: each point's), wait up to this long for other "
                        "processes to keep fewer than 0.15 cores busy (default: 0, no wait)")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """Check every flag; a mistake is a BenchConfigError naming it."""
    trace = args.dataset.startswith("trace:")
    mode = args.mode or ("trace" if trace else "concurrency")
    if args.concurrency is not None and mode != "concurrency":
        raise BenchConfigError(f"--concurrency applies to --mode concurrency only; got --mode {mode}")
    if args.arrival is not None and mode != "rate":
        raise BenchConfigError(f"--arrival applies to --mode rate only; got --mode {mode}")
    for flag, value in (("--input-tokens", args.input_tokens), ("--output-tokens", args.output_tokens)):
        if trace and value is not None:
            raise BenchConfigError(f"{flag} does not apply to --dataset trace:PATH: each line's input_length and "
                                   "output_length set its tokens")
    return BenchConfig(
        url=args.url, endpoint=args.endpoint, served_model_name=args.served_model_name, dataset=args.dataset,
        input_tokens=TokenRange.parse("--input-tokens", args.input_tokens or "128"),
        output_tokens=TokenRange.parse("--output-tokens", args.output_tokens) if args.output_tokens else None,
        prompt_format=args.prompt_format, tokenizer=args.tokenizer, requests=args.requests,
        duration_s=args.duration, mode=mode, rate=args.rate, arrival=args.arrival or "poisson",
        burstiness=args.burstiness, ramp_up_s=args.ramp_up,
        concurrency=8 if args.concurrency is None else args.concurrency, seed=args.seed, warmup=args.warmup,
        ignore_eos=args.ignore_eos, temperature=args.temperature, request_timeout_s=args.request_timeout,
        slo=parse_slo(args.slo) if args.slo else None, metrics_path=args.metrics_path,
        sample_interval_s=args.sample_interval,
        engine_pids=tuple(args.engine_pid or ()), energy=args.energy, watts_per_core=args.watts_per_core,
        wait_quiet_s=args.wait_quiet, access=access_from_args(args))


def access_from_args(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Access:
    """bench's key (--api-key, else $PARETOSERVE_API_KEY) and TLS trust; sweep has none of these flags."""
    if not hasattr(args, "api_key"):
        return Access()
    key = args.api_key if args.api_key is not None else environ.get(ENV_VAR)
    return Access(api_key=key, ca_file=args.ca_file, insecure=args.insecure)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    REPEATS.check("--repeats", args.repeats, UsageError)
    if args.out is not None and not args.out.parent.is_dir():
        raise UsageError(f"--out: the directory {args.out.parent} does not exist")
    err = Console(stderr=True)
    runs = []
    for _ in range(args.repeats):
        if args.no_progress or args.json or not err.is_terminal:
            runs.append(asyncio.run(run_bench(cfg, keep_requests=args.save_requests)))
        else:
            with RichProgress(err) as progress:
                runs.append(asyncio.run(run_bench(cfg, progress, args.save_requests)))
    result = combine(runs)
    text = to_json(result)
    if args.out is not None:
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        render(result, Console())
        if args.out is not None:
            print(f"result written to {args.out}")
    return 1 if result["completed"] == 0 else 0
