"""The capacity search (`paretoserve capacity`) against a grid of rates, as GuideLLM's sweep lays one, on one engine.

One embedded engine (`paretoserve engine`, the bundled model, --max-batch and --threads small so a run takes
seconds) serves both methods, their runs interleaved (search run, grid run, search run, ...) so that the load of
this shared machine falls on both alike. Every run sends --requests requests of fixed --input-tokens /
--output-tokens (ignore_eos, greedy), and each request is judged against the per-request --slo.

- The search: `CapacitySession`'s first guess (Little's law on a closed-loop run at --concurrency), then
  `capacity_search` (sweep/rate_search.py) with `capacity`'s defaults, each rate measured by the session's
  `measure`, so runs are pooled and kept in a sweep directory exactly as `paretoserve capacity` keeps them.
- The grid, laid as GuideLLM's sweep lays it: a closed-loop run at --concurrency for the most the engine does
  (its request throughput), then --grid-rates open-loop rates evenly spaced above a low rate up to that
  throughput, one run each. Its capacity is the highest grid rate that meets --attainment with every lower
  rate meeting it too (advise/capacity.py's `knee`). GuideLLM's low rate is a synchronous run's (concurrency
  1; `--grid-low sync`); on this CPU batching adds little (one request at a time does ~0.7-0.8 of the most),
  so the knee may lie below that rate, outside such a grid. The default low rate is 0: rates max/n .. max.

Printed: each method's capacity (req/s), runs made, wall time spent in its own runs, and the ratios search /
grid against the goal (issue 23): the same capacity within 10 %, in at most 40 % of the grid's runs and time.

    python benchmarks/capacity_search.py [--requests 30] [--slo 'ttft_ms<=1000,tpot_ms<=300'] [--max-batch 4]
        [--threads 1] [--input-tokens 16] [--output-tokens 8] [--concurrency 8] [--grid-rates 10]
        [--grid-low 0|SHARE|sync] [--attainment 0.99] [--resolution 0.05] [--remeasure-budget 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import tempfile
import time
from pathlib import Path
from typing import Generator

from paretoserve.advise.capacity import knee
from paretoserve.bench.config import BenchConfig, TokenRange
from paretoserve.bench.runner import run_bench
from paretoserve.bench.slo import parse_slo
from paretoserve.cli.common import stop_on_sigterm
from paretoserve.engine_process import EngineProcess, embedded_engine_cmd, free_port
from paretoserve.results.rate_run import RateRun, rate_key, to_rate_run
from paretoserve.sweep.capacity import CapacityConfig, CapacitySession, pooled
from paretoserve.sweep.rate_search import CapacityError, CapacityResult, capacity_search, rounded

CAPACITY_GOAL, RUNS_GOAL, WALL_GOAL = 0.10, 0.40, 0.40  # issue 23: within 10 %, at most 40 % of runs and time


class TimedRuns:
    """`run_bench` runs of one method (a capacity session's BenchRuns), counted and timed, with the cores other
    processes kept busy during each (bench's `other_cpu_cores`): the load this shared machine put on it."""

    def __init__(self) -> None:
        self.made, self.wall_s = 0, 0.0
        self.others: list[float] = []

    def run(self, bench: BenchConfig) -> dict:
        start = time.perf_counter()
        result = asyncio.run(run_bench(bench, keep_requests=True))
        self.made, self.wall_s = self.made + 1, self.wall_s + time.perf_counter() - start
        self.others.append(result.get("other_cpu_cores") or 0.0)
        return result

    def line(self) -> str:
        """Its runs, their time and the other processes' load, in words."""
        return f"{self.wall_s:.0f} s in its runs, other processes {sum(self.others) / self.made:.2f} cores busy"


def search_steps(session: CapacitySession) -> Generator[None, None, CapacityResult]:
    """`paretoserve capacity`'s search without its overload run, paused after each measured rate."""
    session.open()
    guess, how, ceiling = session.first_guess()
    print(f"search: first guess {how}", flush=True)
    yield
    search = capacity_search(session.config.search(guess, ceiling))
    try:
        ask = next(search)
        while True:
            run = session.measure(*ask)
            yield
            ask = search.send(run)
    except StopIteration as stop:
        return stop.value


def grid_steps(bench: BenchConfig, args: argparse.Namespace, runs: TimedRuns
               ) -> Generator[None, None, list[RateRun]]:
    """GuideLLM's sweep: (synchronous,) throughput, then evenly spaced rates above the low one up to the throughput;
    paused after each run."""
    closed = {}
    for concurrency in (1, args.concurrency) if args.grid_low == "sync" else (args.concurrency,):
        result = runs.run(dataclasses.replace(bench, mode="concurrency", concurrency=concurrency))
        closed[concurrency] = result["request_throughput"]
        yield
    high = closed[args.concurrency]
    low = closed[1] if args.grid_low == "sync" else high * args.grid_low
    print(f"grid: closed loop of {args.concurrency} {high:.3g} req/s; low rate {low:.3g} req/s"
          f"{' (synchronous)' if args.grid_low == 'sync' else ''}", flush=True)
    n = args.grid_rates
    measured = []
    for i in range(1, n + 1):
        rate = rounded(low + (high - low) * i / n)
        result = runs.run(dataclasses.replace(bench, mode="rate", rate=rate))
        run = to_rate_run(pooled(None, result, rate_key(rate), {"request_rate": rate}))
        measured.append(run)
        print(f"  grid   {rate:8.4g} req/s: {run.attainment:6.1%} of {run.total} within the SLO, "
              f"{run.request_throughput:.3g} req/s done, {run.failed} failed; others {runs.others[-1]:.2f} cores",
              flush=True)
        yield
    return measured


def grid_low(text: str) -> str | float:
    """--grid-low: 'sync', or a share of the closed-loop throughput in [0, 1)."""
    if text == "sync":
        return text
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not 0 <= share < 1:
        raise argparse.ArgumentTypeError(f"must be 'sync' or a share in [0, 1); got {text!r}")
    return share


def interleave(*methods: Generator[None, None, object]) -> list[object]:
    """Each method one run in turn until all have ended; their results, in order."""
    results: dict[int, object] = {}
    while len(results) < len(methods):
        for i, steps in enumerate(methods):
            if i in results:
                continue
            try:
                next(steps)
            except StopIteration as stop:
                results[i] = stop.value
    return [results[i] for i in range(len(methods))]


def verdict(ratio: float, goal: float, within: bool = False) -> str:
    ok = abs(ratio - 1) <= goal if within else ratio <= goal
    return f"{ratio:.2f} ({'within' if within else 'at most'} {'1 +- ' if within else ''}{goal:.2f}: " \
           f"{'met' if ok else 'MISSED'})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=30, help="requests per run (default: %(default)s)")
    p.add_argument("--slo", default="ttft_ms<=1000,tpot_ms<=300",
                   help="per-request limits each request is judged by (default: %(default)s)")
    p.add_argument("--attainment", type=float, default=0.99, help="share that must meet the SLO (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=4, help="the engine's batch cap (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="the engine's llama.cpp threads (default: %(default)s)")
    p.add_argument("--input-tokens", type=int, default=16)
    p.add_argument("--output-tokens", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=8,
                   help="the closed-loop runs' requests in flight: the search's first guess, the grid's top rate "
                        "(default: %(default)s)")
    p.add_argument("--grid-rates", type=int, default=10, help="open-loop rates of the grid (default: %(default)s)")
    p.add_argument("--grid-low", type=grid_low, default=0.0,
                   help="the grid's low rate, itself not run: a share of the closed-loop throughput, or 'sync' for "
                        "GuideLLM's synchronous run's rate (default: %(default)s)")
    p.add_argument("--resolution", type=float, default=0.05, help="the search's --resolution (default: %(default)s)")
    p.add_argument("--max-runs", type=int, default=10, help="the search's --max-runs (default: %(default)s)")
    p.add_argument("--remeasure-budget", type=int, default=3,
                   help="the search's --remeasure-budget (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="keep the search's sweep directory here (default: a "
                                                          "temporary one)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    port = free_port()
    ctx = args.input_tokens + args.output_tokens + 1  # + BOS
    cmd = embedded_engine_cmd(port, "127.0.0.1", "--max-batch", str(args.max_batch), "--threads", str(args.threads),
                              "--ctx-per-seq", str(ctx))
    start = time.perf_counter()
    with EngineProcess(cmd, f"http://127.0.0.1:{port}") as engine, tempfile.TemporaryDirectory() as tmp:
        engine.wait_healthy(600)
        bench = BenchConfig(url=engine.base_url, input_tokens=TokenRange(args.input_tokens, args.input_tokens),
                            output_tokens=TokenRange(args.output_tokens, args.output_tokens), requests=args.requests,
                            slo=parse_slo(args.slo), energy="none", engine_pids=engine.pids, seed=args.seed)
        asyncio.run(run_bench(dataclasses.replace(bench, requests=2 * args.max_batch), keep_requests=False))  # warm-up
        config = CapacityConfig(bench=bench, out=args.out or Path(tmp) / "search", attainment=args.attainment,
                                resolution=args.resolution, max_runs=args.max_runs,
                                remeasure_budget=args.remeasure_budget, concurrency=args.concurrency, overload=0)
        search_runs, grid_runs = TimedRuns(), TimedRuns()
        session = CapacitySession(config, runs=search_runs, echo=lambda line: print(
            f"  search {line[2:]}; others {search_runs.others[-1]:.2f} cores", flush=True))
        print(f"engine: bundled model, --max-batch {args.max_batch} --threads {args.threads}; {args.requests} "
              f"requests per run of {args.input_tokens} + {args.output_tokens} tokens; target {args.attainment:.0%} "
              f"within {args.slo}; the two methods interleaved", flush=True)
        try:
            found, grid = interleave(search_steps(session), grid_steps(bench, args, grid_runs))
        except CapacityError as exc:
            raise SystemExit(f"search: {exc}") from None
    assert isinstance(found, CapacityResult) and isinstance(grid, list)  # what the two steps return
    met, failing = knee(grid, args.attainment)
    search_rps, grid_rps = found.capacity_rps or 0.0, met.rate_rps if met else 0.0
    print(f"\nsearch: capacity {search_rps:.4g} req/s ({found.stop_reason}); {search_runs.made} runs (1 closed-loop + "
          f"{len(found.measured)} rates + {found.remeasure_runs} re-measures), {search_runs.line()}")
    above = f", {failing.rate_rps:.4g} does not" if failing else ", every grid rate met"
    print(f"grid:   capacity {grid_rps:.4g} req/s{above}; {grid_runs.made} runs ({grid_runs.made - len(grid)} "
          f"closed-loop + {len(grid)} rates), {grid_runs.line()}")
    print(f"total {time.perf_counter() - start:.0f} s, engine start and warm-up included")
    if not (search_rps and grid_rps):
        print("search / grid: no ratio, the grid has no capacity (its lowest rate missed the target)")
        return 1
    print(f"search / grid: capacity {verdict(search_rps / grid_rps, CAPACITY_GOAL, within=True)}, "
          f"runs {verdict(search_runs.made / grid_runs.made, RUNS_GOAL)}, "
          f"wall {verdict(search_runs.wall_s / grid_runs.wall_s, WALL_GOAL)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
