"""`paretoserve sweep`: for each engine configuration, start it, wait for health, run the workload, record."""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import time
from pathlib import Path

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.trace import TraceRow, read_trace
from paretoserve.cli import examples
from paretoserve.cli.bench_cmd import add_workload_args, config_from_args
from paretoserve.cli.common import UsageError, add_engine_choice, add_model_arg, add_repack_arg, stop_on_sigterm
from paretoserve.cli.sweep_search import search_args, search_args_record, search_line, search_plan
from paretoserve.engine.config import ctx_for
from paretoserve.limits import parse_int_list
from paretoserve.results.store import is_finished
from paretoserve.serve.config import knob_ranges
from paretoserve.sweep.grid import BACKENDS, SweepSpec, SweepSpecError
from paretoserve.sweep.session import POINT_URL, SessionConfig, SweepSession

# sweep.json's workload settings whose key does not name their flag (for --resume's mismatch message)
WORKLOAD_FLAG_NAMES = {"trace_sha256": "the trace's content (sha256 of --dataset trace:PATH)"}


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("sweep", help=help, description=help,
                              epilog=examples("paretoserve sweep --max-batch 1,4,16,64 --out sweep-out"))
    g = p.add_argument_group("grid")
    add_model_arg(g)
    g.add_argument("--max-batch", default="1,2,4,8,16,32,64", help="batch caps (default: %(default)s)")
    g.add_argument("--kv-tokens", default=None, help="KV budgets in tokens (default: the engine's own)")
    g.add_argument("--threads-per-replica", default="0", help="engine threads; 0 = all cores (default: 0)")
    g.add_argument("--replicas", default="1",
                   help="replicas per point; more than 1 runs behind `paretoserve serve`'s router, each replica "
                        "pinned to --threads-per-replica cores of its own (default: 1)")
    g.add_argument("--ctx-per-seq", type=int, default=None,
                   help="longest prompt + output (default: input + output tokens of the workload; not --engine-cmd)")
    e = p.add_argument_group("engine")
    add_engine_choice(e)
    e.add_argument("--engine-cmd", default=None,
                   help="command template of any other engine, with {model} {port} {max_batch} {kv_tokens} "
                        "{threads} {replica}")
    add_repack_arg(e)
    e.add_argument("--health-path", default=SweepSpec.health_path, help="readiness URL path (default: %(default)s)")
    e.add_argument("--health-timeout", type=float, default=SweepSpec.health_timeout_s,
                   help="seconds to wait for health (default: %(default)g)")
    e.add_argument("--backend", choices=BACKENDS, default="router",
                   help="router: one replica measured straight at its engine, several behind our router; ray: "
                        "every point through Ray Serve's proxy (`serve --backend ray`, the `ray` extra) "
                        "(default: %(default)s)")
    add_workload_args(p)
    search_args(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=Path("sweep"), help="results directory (default: ./sweep)")
    o.add_argument("--resume", action="store_true", help="continue the sweep in --out, skipping finished points")
    o.add_argument("--repeats", type=int, default=1,
                   help="runs of each point, interleaved round by round (A B A B) and each on a freshly started "
                        "engine; figures are means with 95 %% intervals (default: 1)")
    p.set_defaults(run=run)


def spec_from_args(args: argparse.Namespace, bench: BenchConfig, trace: list[TraceRow] | None = None) -> SweepSpec:
    """The grid of the flags; each value is checked against the range of the engine that runs it."""
    ranges = knob_ranges(args.engine, args.engine_cmd)

    def values(flag: str, field: str, text: str) -> tuple[int, ...]:
        return parse_int_list(flag, text, ranges[field], SweepSpecError)

    return SweepSpec(
        model=args.model, max_batch=values("--max-batch", "max_batch", args.max_batch),
        kv_tokens=values("--kv-tokens", "kv_tokens", args.kv_tokens) if args.kv_tokens is not None else (None,),
        threads=values("--threads-per-replica", "threads_per_replica", args.threads_per_replica),
        replicas=values("--replicas", "replicas", args.replicas), ctx_per_seq=_ctx_per_seq(args, bench, trace),
        engine=args.engine, engine_cmd=args.engine_cmd, repack=args.repack, health_path=args.health_path,
        metrics_path=bench.metrics_path,
        health_timeout_s=args.health_timeout, repeats=args.repeats,
        backend=_backend(args.backend))


def _backend(name: str) -> str:
    """--backend, checked to be installed before any point runs."""
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise SweepSpecError('--backend ray needs Ray Serve, which is not installed in this Python: '
                             'pip install -e ".[ray]"')
    return name


def _ctx_per_seq(args: argparse.Namespace, bench: BenchConfig, trace: list[TraceRow] | None) -> int | None:
    """--ctx-per-seq, or for synthetic requests and traces the context the longest one needs; refused when it is
    shorter than that, since then every request of every point would fail (a trace's longest, at least)."""
    if args.engine_cmd is not None or (bench.dataset != "synthetic" and trace is None):
        return args.ctx_per_seq
    if trace is not None:
        longest = max(trace, key=lambda row: row.input_tokens + row.output_tokens)
        prompt, output = longest.input_tokens, longest.output_tokens
        what = f"the trace's longest request (line {longest.line}): input_length {prompt} + 1 (BOS) + " \
               f"output_length {output}"
    else:
        prompt, output = bench.input_tokens.high, bench.output_tokens.high if bench.output_tokens else 128
        what = f"--input-tokens {prompt} + 1 (BOS) + --output-tokens {output}"
    if args.ctx_per_seq is not None and args.ctx_per_seq < prompt + 1 + output:
        raise UsageError(f"--ctx-per-seq {args.ctx_per_seq} is too short for the workload: {what} need "
                         f"{prompt + 1 + output}; raise --ctx-per-seq or leave it out")
    return args.ctx_per_seq or ctx_for(prompt, output)  # the engine's range checks an explicit one


def run(args: argparse.Namespace) -> int:
    args.url = POINT_URL
    bench = config_from_args(args)
    trace = read_trace(Path(bench.trace_path).expanduser()) if bench.trace_path is not None else None
    spec = spec_from_args(args, bench, trace)
    search = search_plan(args, spec, bench.slo)
    session = SweepSession(SessionConfig(spec, bench, args.out, args.resume, saturate=args.concurrency is None,
                                         settings=search_args_record(args), flag_names=WORKLOAD_FLAG_NAMES))
    session.open()
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        if search is not None:
            print(f"search bca: up to {search.config.remeasure_budget} more runs where a doubling's gain is within "
                  f"the noise of --min-gain {search.config.min_gain:.0%}", file=sys.stderr)
            result, ran = session.search(search)
            session.export_csv()
            print(search_line(result, ran, search.config.remeasure_budget, time.perf_counter() - started,
                              session.store.points_path))
            print(f"next: paretoserve advise {session.store.dir}", file=sys.stderr)
            return 0
        todo, total = session.todo(), len(spec.points())
        print(f"sweep: {total} points, {total - len(todo)} already done, results in {args.out}", file=sys.stderr)
        records = session.run(todo)
    except KeyboardInterrupt:  # main exits with 128 + the signal's number
        print(f"sweep interrupted; finished points are in {session.store.points_path}; continue with --resume",
              file=sys.stderr)
        raise
    csv_path = session.export_csv()
    failed = [r for r in records if not is_finished(r)]
    for r in failed:
        print(f"point {r['key']} failed: {r['reason'][:300]}", file=sys.stderr)
    print(f"sweep done: {len(records) - len(failed)} ok, {len(failed)} failed; {session.store.points_path}, "
          f"{csv_path}")
    return 1 if failed and len(failed) == len(records) else 0
