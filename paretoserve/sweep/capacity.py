"""One capacity session, `paretoserve capacity`: the first guess, the rate search (rate_search.py) run by run
against a served plan or any OpenAI-compatible URL, and one run past the knee; every run recorded in a sweep
directory as a capacity point (results/rate_run.py), so an interrupted session resumes where it stopped.

The runs are made by a `BenchRuns`: `run_bench` against the URL by default, a replay in tests.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.repeats import combine, runs_of
from paretoserve.bench.trace import TraceRow, mean_rate, read_trace, write_trace
from paretoserve.bench.workload import WorkloadError
from paretoserve.results.rate_run import RateRun, rate_key, to_rate_run
from paretoserve.results.store import CAPACITY_KIND, SweepStore
from paretoserve.sweep.asked import drive
from paretoserve.sweep.bench_runs import BenchRuns, LiveRuns
from paretoserve.sweep.environment import collect_environment
from paretoserve.sweep.overload import Overload, overload_of
from paretoserve.sweep.rate_search import (
    CapacityError,
    CapacityResult,
    RateSearchConfig,
    capacity_search,
    rounded,
)
from paretoserve.sweep.session import workload_record

SEARCH_FLAGS = {"attainment": "--attainment", "resolution": "--resolution", "max_runs": "--max-runs",
                "remeasure_budget": "--remeasure-budget", "start_rps": "--start-rate", "overload": "--overload",
                "concurrency": "--concurrency", "ceiling_rps": "the plan's closed-loop throughput"}


@dataclass(frozen=True)
class CapacityConfig:
    """One capacity session: the workload of every run, the search's settings, where the runs are kept."""

    bench: BenchConfig  # url, dataset, token lengths, SLO, --requests; each run sets its own mode, rate and seed
    out: Path
    attainment: float = 0.99
    resolution: float = 0.05
    max_runs: int = 10
    remeasure_budget: int = 3
    start_rps: float | None = None  # None: Little's law on a closed-loop run, or a trace's own mean rate
    ceiling_rps: float | None = None  # the plan's closed-loop throughput where already measured (tune): no run
    concurrency: int = 8  # the closed-loop run's requests in flight
    overload: float = 1.5  # the last run's rate as a multiple of the capacity; 0 = none
    resume: bool = False

    def __post_init__(self) -> None:
        self.search(1.0)  # every setting checked before anything is sent
        if self.bench.slo is None or not self.bench.slo.per_request:
            raise CapacityError("--slo: capacity judges each request on its own; give at least one bare limit such "
                                "as 'ttft_ms<=2000,tpot_ms<=100' (p99_/mean_ limits may be added)")
        if not (self.overload == 0 or 1 < self.overload <= 10):
            raise CapacityError(f"--overload must be 0 (none) or in (1, 10], a multiple of the capacity; got "
                                f"{self.overload!r}")

    def search(self, start_rps: float, ceiling_rps: float | None = None) -> RateSearchConfig:
        return RateSearchConfig(start_rps=start_rps, attainment=self.attainment, resolution=self.resolution,
                                max_runs=self.max_runs, remeasure_budget=self.remeasure_budget,
                                ceiling_rps=ceiling_rps)

    @property
    def trace(self) -> Path | None:
        path = self.bench.trace_path
        return Path(path).expanduser() if path else None


@dataclass
class CapacityReport:
    """What a session found: the search's result, how the first guess was made, the run past the knee."""

    result: CapacityResult
    guess: str  # how the first rate was chosen, in words
    overload: Overload | None
    runs: int  # bench runs made now (resumed ones not counted)
    wall_s: float


class CapacitySession:
    """A sweep directory of capacity runs against one URL; `run` it."""

    def __init__(self, config: CapacityConfig, runs: BenchRuns | None = None,
                 echo: Callable[[str], None] = print) -> None:
        self.config, self.runs, self.echo = config, runs or LiveRuns(), echo
        self.store = SweepStore(config.out)
        self.made = 0

    def open(self) -> None:
        """Create the directory, or take up the one to resume (StoreError when it holds other settings)."""
        c = self.config
        settings = {k: getattr(c, k) for k in SEARCH_FLAGS}
        record = {"kind": CAPACITY_KIND, "url": c.bench.url, "workload": workload_record(c.bench), "capacity": settings}
        self.store.open(record, collect_environment(), c.resume, flag_names=SEARCH_FLAGS)

    def run(self) -> CapacityReport:
        """The whole session; CapacityError when no rate meets the SLO."""
        start = time.perf_counter()
        self.open()
        guess_rps, guess, ceiling = self.first_guess()
        search = self.config.search(guess_rps, ceiling)
        result = drive(capacity_search(search), self.measure)
        overload = None
        if self.config.overload and result.capacity_rps is not None:
            overload = self.overload(rounded(result.capacity_rps * self.config.overload))
        return CapacityReport(result, guess, overload, self.made, time.perf_counter() - start)

    def first_guess(self) -> tuple[float, str, float | None]:
        """(rate in req/s, how it was found, the closed-loop throughput that bounds the search or None):
        --start-rate, the plan's closed-loop throughput as tune measured it, a trace's own mean rate, or Little's
        law on a closed-loop run at --concurrency: throughput = requests in flight / mean latency."""
        c = self.config
        if c.start_rps is not None:
            return c.start_rps, f"--start-rate {c.start_rps:g}", None
        if c.ceiling_rps is not None:
            return c.ceiling_rps, f"the plan's closed-loop request throughput, {c.ceiling_rps:.4g} req/s", c.ceiling_rps
        if c.trace is not None:
            rate = self._trace[1]
            return rate, f"the trace's own mean rate, {rate:.3g} req/s", None
        key = f"closed-c{c.concurrency}"
        record = self.store.finished_capacity().get(key)
        if record is None:
            bench = dataclasses.replace(c.bench, mode="concurrency", rate=None, arrival="poisson", burstiness=None,
                                        ramp_up_s=None, concurrency=c.concurrency)
            result = self._bench(bench)
            record = {**_without_requests(result), "key": key, "kind": CAPACITY_KIND, "status": "ok",
                      "config": {"mode": "concurrency", "concurrency": c.concurrency}}
            self.store.append(record)
        e2el_ms = record.get("mean_e2el_ms")
        if not e2el_ms:
            raise CapacityError(f"--concurrency {c.concurrency}: the closed-loop run completed no request, so there "
                                f"is no first guess; give --start-rate ({record.get('warnings', [''])[:1]})")
        rate, done = c.concurrency / (e2el_ms / 1e3), float(record.get("request_throughput") or 0.0)
        return rate, (f"Little's law on a closed loop of {c.concurrency}: {c.concurrency} / {e2el_ms / 1e3:.2f} s "
                      f"mean latency = {rate:.3g} req/s (measured {done:.3g}, the ceiling)"), done or None

    def measure(self, rate: float, extra: int) -> RateRun:
        """The runs at `rate` pooled, with `extra` + 1 runs in all (those the directory holds are not made again)."""
        key = rate_key(rate)
        record = self.store.finished_capacity().get(key)
        if record is None or int(record.get("repeats") or 1) < extra + 1:
            result = self._bench(self._at(rate, seed=self.config.bench.seed + extra))
            record = pooled(record, result, key, {"request_rate": rate, **self._load(rate)})
            self.store.append(record)
            run = to_rate_run(record)
            self.echo(f"  {rate:8.4g} req/s: {run.attainment:6.1%} of {run.total} within the SLO"
                      f"{'' if run.slo_met else ' (a run limit failed)'}, {run.request_throughput:.3g} req/s done, "
                      f"{run.failed} failed{f' (run {extra + 1})' if extra else ''}")
        return to_rate_run(record)

    def overload(self, rate: float) -> Overload:
        """One run at `rate` past the capacity: what the client saw (overload.py)."""
        key = f"overload-{rate:.4g}"
        record = self.store.finished_capacity().get(key)
        if record is None:
            result = self._bench(self._at(rate, seed=self.config.bench.seed))
            summary = overload_of(result, rate)
            record = {**_without_requests(result), "key": key, "kind": CAPACITY_KIND, "status": "ok",
                      "config": {"overload_rate": rate, **self._load(rate)}, "overload": summary.to_dict()}
            self.store.append(record)
        return Overload(**record["overload"])

    def _bench(self, bench: BenchConfig) -> dict:
        self.made += 1
        return self.runs.run(bench)

    def _at(self, rate: float, seed: int) -> BenchConfig:
        """The workload at `rate`: open-loop arrivals as the flags say, or the trace's times scaled to it."""
        c = self.config
        if c.trace is None:
            return dataclasses.replace(c.bench, mode="rate", rate=rate, seed=seed)
        scaled = self.store.dir / "traces" / f"{rate_key(rate)}.jsonl"
        write_scaled_trace(*self._trace, scaled, rate)
        return dataclasses.replace(c.bench, dataset=f"trace:{scaled}", seed=seed)

    @functools.cached_property
    def _trace(self) -> tuple[list[TraceRow], float]:
        """The --dataset trace's rows and mean rate, read once per session."""
        assert self.config.trace is not None  # asked for only in trace mode
        return read_rated_trace(self.config.trace)

    def _load(self, rate: float) -> dict:
        b = self.config.bench
        if self.config.trace is not None:
            return {"mode": "trace", "trace_scale": rate / self._trace[1]}
        return {"mode": "rate", "arrival": b.arrival, "burstiness": b.gamma_shape, "requests": b.request_limit,
                "duration_s": b.duration_s}


def pooled(held: dict | None, result: dict, key: str, config: dict) -> dict:
    """The record of a rate after one more run: bench's figures combined over the runs (bench/repeats.py), the
    requests within the SLO and the requests sent summed, every run limit required to hold in every run."""
    runs = [*(runs_of(held) if held else []), _without_requests(result)]
    total = int(result.get("completed") or 0) + int(result.get("failed") or 0)
    good = round(float(result.get("slo_attainment") or 0.0) * total)
    counts = [*(held.get("slo_counts") or [] if held else []), [good, total]]
    record = combine(runs)
    record.update(key=key, kind=CAPACITY_KIND, status="ok", config=config, slo_counts=counts,
                  slo_good=sum(g for g, _ in counts), slo_requests=sum(t for _, t in counts),
                  slo_met=bool(result.get("slo_met", True)) and (held or {}).get("slo_met", True) is not False)
    return record


def trace_rate(path: Path) -> float:
    """A trace's mean request rate in req/s: its requests after the first over its span."""
    return read_rated_trace(path)[1]


def read_rated_trace(path: Path, flag: str = "--dataset trace:") -> tuple[list[TraceRow], float]:
    """A trace's rows and its mean request rate in req/s (see trace_rate); CapacityError naming `flag`."""
    try:
        rows = read_trace(path, flag)
    except WorkloadError as exc:
        raise CapacityError(str(exc)) from exc
    rate = mean_rate(rows)
    if rate is None:
        raise CapacityError(f"{flag}{path}: {len(rows)} requests over {rows[-1].at_s if rows else 0:g} s "
                            "have no rate to scale; give a trace of two or more times")
    return rows, rate


def write_scaled_trace(rows: list[TraceRow], source_rate: float, target: Path, rate: float) -> Path:
    """The trace's `rows` (mean rate `source_rate` req/s) with their times stretched or squeezed so the mean rate
    is `rate` req/s (token lengths kept), in seconds (`timestamp_s`)."""
    return write_trace(rows, target, time_scale=source_rate / rate)


def _without_requests(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "requests"}
