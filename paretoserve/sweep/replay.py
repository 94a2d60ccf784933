"""The replay that checks a plan (`capacity --replay PATH`, `tune --traffic trace:PATH --verify`): the trace sent
through a served plan on its own schedule, its time scaled by `speed`, every request judged on its own against
the SLO's bare limits; the report says whether the goal held (at least the target attainment, no failed
request, every run limit met) and how the plan kept up over time, window by window.

Times in the report are the replay's own seconds from its first request's planned send (a trace's second is
1 / speed of them); rates are requests per second of the replay.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from paretoserve.bench.config import BenchConfig
from paretoserve.bench.records import RequestRecord
from paretoserve.bench.slo import RequestLimit
from paretoserve.bench.summary import per_request
from paretoserve.limits import UserError
from paretoserve.sweep.bench_runs import BenchRuns, LiveRuns
from paretoserve.sweep.capacity import read_rated_trace, write_scaled_trace
from paretoserve.sweep.rate_search import CapacityError

SPEED_MAX = 1000.0  # a day's trace in under 90 s
WINDOWS = 10  # the timeline's windows when no window length is given


class ReplayError(UserError):
    """A replay that cannot run as asked; the message names the flag."""


@dataclass(frozen=True)
class Window:
    """The requests planned to go out in [start_s, start_s + length_s) of the replay, and how they fared."""

    start_s: float
    length_s: float
    sent: int
    completed: int
    failed: int
    good: int  # completed within every bare SLO limit
    p50_ttft_ms: float | None  # over the completed requests; None when none completed
    p99_ttft_ms: float | None
    p50_e2el_ms: float | None
    p99_e2el_ms: float | None

    @property
    def offered_rps(self) -> float:
        return self.sent / self.length_s

    @property
    def attainment(self) -> float | None:
        """good / sent; None for a window in which nothing was planned."""
        return self.good / self.sent if self.sent else None

    def line(self) -> str:
        within = "-" if self.attainment is None else f"{self.attainment:.0%}"
        return (f"{self.start_s:7.4g}..{self.start_s + self.length_s:<7.4g} {self.offered_rps:6.3g} r/s "
                f"{self.sent:5d} {self.completed:5d} {self.failed:6d} {within:>6} "
                f"{_ms(self.p50_ttft_ms):>8}/{_ms(self.p99_ttft_ms):<8} "
                f"{_ms(self.p50_e2el_ms):>8}/{_ms(self.p99_e2el_ms):<8}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "offered_rps": self.offered_rps, "attainment": self.attainment}


@dataclass(frozen=True)
class ReplayReport:
    """One replay: counts are requests, times seconds of the replay, rates req/s."""

    trace: str  # the trace as given (not its scaled copy)
    speed: float
    trace_rps: float  # the trace's own mean rate
    slo: str
    target: float  # the attainment the goal needs, 0..1
    sent: int
    completed: int
    failed: int
    good: int
    run_limits_met: bool  # every p99_/mean_ --slo limit held over the replay (True when there is none)
    wall_s: float  # from the first planned send to the last answer
    windows: list[Window]
    first_error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def mean_rps(self) -> float:
        """The replay's mean offered rate: the trace's times `speed`."""
        return self.trace_rps * self.speed

    @property
    def attainment(self) -> float:
        """good / sent: a failed request is never good."""
        return self.good / self.sent if self.sent else 0.0

    @property
    def goal_met(self) -> bool:
        return self.sent > 0 and self.attainment >= self.target and self.failed == 0 and self.run_limits_met

    def lines(self) -> list[str]:
        """The verdict, then the timeline a window a line, then what went wrong."""
        verdict = "goal met" if self.goal_met else "goal NOT met"
        limits = "" if self.run_limits_met else "; a p99_/mean_ limit failed over the replay"
        out = [f"replay of {self.trace} at {self.speed:g}x its pace: {self.sent} requests, {self.mean_rps:.3g} req/s "
               f"on average (the trace's own {self.trace_rps:.3g}), {self.wall_s:.0f} s",
               f"{self.attainment:.1%} within {self.slo} (target {self.target:.1%}), {self.failed} failed{limits}: "
               f"{verdict}",
               f"{'window (s)':>15} {'offered':>10} {'sent':>5} {'done':>5} {'failed':>6} {'within':>6} "
               f"{'TTFT p50/p99 ms':>17} {'E2E p50/p99 ms':>17}"]
        out += [w.line() for w in self.windows]
        if self.first_error:
            out.append(f"first error: {self.first_error}")
        return out + [f"warning: {w}" for w in self.warnings]

    def to_dict(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "windows"}
        return {**out, "mean_rps": self.mean_rps, "attainment": self.attainment, "goal_met": self.goal_met,
                "windows": [w.to_dict() for w in self.windows]}


def replay_trace(bench: BenchConfig, trace: Path, out: Path, *, speed: float = 1.0, window_s: float | None = None,
                 attainment: float = 0.99, runs: BenchRuns | None = None,
                 echo: Callable[[str], None] = lambda line: None) -> ReplayReport:
    """Replay `trace` (a `--dataset trace:` JSONL) against `bench.url` at `speed` x its own pace and judge it.

    `bench` gives the URL, the SLO (at least one bare limit), access and request settings; its dataset, mode and
    request count are the replay's (the whole trace, each line once). At a speed other than 1 the scaled copy is
    written to `out`/traces/. `window_s`: the timeline's window in the replay's seconds (None: a tenth of the
    replay). `attainment`: the goal's target share of requests within the SLO. `runs` makes the bench run (the
    URL by default; a fake in tests); `echo` hears one line before it starts."""
    if not (math.isfinite(speed) and 0 < speed <= SPEED_MAX):
        raise ReplayError(f"--replay-speed must be in (0, {SPEED_MAX:g}], a multiple of the trace's pace; got "
                          f"{speed!r}")
    if window_s is not None and not (math.isfinite(window_s) and 0 < window_s <= 7 * 86400):
        raise ReplayError(f"--window must be in (0, 604800] seconds; got {window_s!r}")
    if not 0 < attainment <= 1:
        raise ReplayError(f"--attainment must be in (0, 1], a share of the requests; got {attainment!r}")
    if bench.slo is None or not bench.slo.per_request:
        raise ReplayError("--slo: a replay judges each request on its own; give at least one bare limit such as "
                          "'ttft_ms<=2000,tpot_ms<=100'")
    try:
        rows, rate = read_rated_trace(trace, "--replay ")
    except CapacityError as exc:
        raise ReplayError(str(exc)) from exc
    played = trace if speed == 1 else write_scaled_trace(rows, rate, out / "traces" / f"replay-x{speed:g}.jsonl",
                                                         rate * speed)
    run = dataclasses.replace(bench, dataset=f"trace:{played}", mode="trace", rate=None, requests=None,
                              duration_s=None, arrival="poisson", burstiness=None, ramp_up_s=None)
    echo(f"replay: {len(rows)} requests over {rows[-1].at_s / speed:.4g} s at {speed:g}x the trace's pace "
         f"({rate * speed:.3g} req/s on average), each judged against {bench.slo}")
    result = (runs or LiveRuns()).run(run)
    return replay_report(result, bench.slo.per_request, trace=str(trace), speed=speed, trace_rps=rate,
                         target=attainment, window_s=window_s, slo=str(bench.slo))


def replay_report(result: dict, limits: tuple[RequestLimit, ...], *, trace: str, speed: float, trace_rps: float,
                  target: float, window_s: float | None, slo: str) -> ReplayReport:
    """The report of a bench result that kept its requests (`run_bench(..., keep_requests=True)`)."""
    records = [RequestRecord(**r) for r in result.get("requests") or []]
    good = [r.ok and all(lim.holds(per_request(r).get(lim.metric)) for lim in limits) for r in records]
    errors = [r.error for r in records if r.error]
    completed = sum(1 for r in records if r.ok)
    return ReplayReport(trace=trace, speed=speed, trace_rps=trace_rps, slo=slo, target=target, sent=len(records),
                        completed=completed, failed=len(records) - completed, good=sum(good),
                        run_limits_met=bool(result.get("slo_met", True)), wall_s=float(result.get("duration") or 0.0),
                        windows=timeline(records, good, window_s), first_error=errors[0] if errors else None,
                        warnings=list(result.get("warnings") or []))


def timeline(records: list[RequestRecord], good: list[bool], window_s: float | None) -> list[Window]:
    """Each request in the window of its planned send time (`intended_s`), so a window's counts add up and a
    backlog shows as the latency of the requests that met it; the last window ends at the last planned send."""
    span = max((r.intended_s for r in records), default=0.0)
    width = window_s or (span / WINDOWS if span > 0 else 1.0)
    n = max(1, math.ceil(span / width - 0.1))  # a last sliver under a tenth of a window joins the one before
    groups: list[list[int]] = [[] for _ in range(n)]
    for i, r in enumerate(records):
        groups[min(int(r.intended_s // width), n - 1)].append(i)
    last = span - (n - 1) * width
    return [_window(k * width, width if k < n - 1 or last <= 0 else last, [records[i] for i in members],
                    sum(good[i] for i in members)) for k, members in enumerate(groups)]


def _window(start_s: float, length_s: float, records: list[RequestRecord], good: int) -> Window:
    done = [per_request(r) for r in records if r.ok]
    ttft = [d["ttft_ms"] for d in done if d["ttft_ms"] is not None]
    e2el = [d["e2el_ms"] for d in done if d["e2el_ms"] is not None]
    return Window(start_s=start_s, length_s=length_s, sent=len(records), completed=len(done),
                  failed=len(records) - len(done), good=good, p50_ttft_ms=_pct(ttft, 50), p99_ttft_ms=_pct(ttft, 99),
                  p50_e2el_ms=_pct(e2el, 50), p99_e2el_ms=_pct(e2el, 99))


def _pct(values: list, q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
