"""The capacity advice: the request rate a plan sustains with `attainment` of its requests within the SLO (read
from a directory of capacity runs, `paretoserve capacity`), and the replicas and devices a traffic needs.

The plan is N replicas on one device; its capacity C is what those N sustain together, so one replica carries
C / N. A traffic of R req/s with headroom h needs ceil(R x (1 + h) / (C / N)) replicas, on ceil(replicas / N)
devices like the measured one. Every count comes with its arithmetic in words (`arithmetic`).
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel

from paretoserve.advise.table import AdviseError
from paretoserve.advise.traffic import Traffic
from paretoserve.bench.slo import RequestLimit, parse_slo
from paretoserve.results.rate_run import RateRun, to_rate_run
from paretoserve.results.store import StoreError, SweepStore

HEADROOM = 0.1  # share of capacity every replica count keeps spare, by default (tune's and advise's --headroom)


class RateFigures(BaseModel):
    """One rate of the capacity runs, pooled over its runs; times in ms."""

    rate_rps: float  # offered: the rate arrivals were drawn at, requests/s
    attainment: float  # share of requests sent (failed ones too) within every per-request limit, 0..1
    attainment_ci95: tuple[float, float]  # Wilson 95 % interval of attainment
    requests: int  # requests sent at this rate over its runs, failed ones included
    failed: int  # requests that failed, over its runs
    meets: bool  # attainment at or above the target, and every run limit held
    request_throughput: float  # completed requests/s, mean over its runs
    median_ttft_ms: float | None = None  # median time to first token, mean over the rate's runs
    p99_ttft_ms: float | None = None  # 99th percentile time to first token, mean over the rate's runs
    median_tpot_ms: float | None = None  # median time per output token, mean over the rate's runs
    p99_tpot_ms: float | None = None  # 99th percentile time per output token, mean over the rate's runs
    mean_e2el_ms: float | None = None  # mean end-to-end latency of a request, mean over the rate's runs


class ReplayCheck(BaseModel):
    """The traffic's trace replayed through the plan (`tune --traffic trace:PATH`; its timeline in `file`)."""

    file: str  # replay.json
    speed: float  # the trace's pace times this
    sent: int  # requests of the trace sent
    failed: int  # of those, requests that failed
    attainment: float  # share of requests sent within the SLO
    goal_met: bool  # attainment at or above the target, no request failed


class CapacityAdvice(BaseModel):
    """What the plan sustains under the SLO and what the traffic needs (advice.json's `capacity`)."""

    directory: str  # the capacity runs
    slo: str  # the per-request limits each request was judged by
    attainment_target: float  # share of requests (0..1) a rate must keep within the SLO to count as sustained
    capacity_rps: float  # the highest rate that met the target
    failing_rps: float | None  # the lowest that did not: the knee lies in [capacity_rps, failing_rps)
    knee: RateFigures  # the figures at capacity_rps
    rates: list[RateFigures]  # every rate run, lowest first
    replicas: int  # the plan's replicas on one device
    max_batch: int  # batch cap of each replica
    per_replica_rps: float  # capacity_rps / replicas
    headroom: float  # share of spare capacity every count keeps
    traffic: Traffic | None = None  # the traffic the counts below size for (--traffic); None: none given
    replicas_at_low: int | None = None  # replicas for the traffic's low rate, with headroom; None: no low
    replicas_at_mean: int | None = None  # replicas for the traffic's mean rate, with headroom; None: no traffic
    replicas_at_peak: int | None = None  # replicas for the traffic's peak rate, with headroom; None: no peak
    devices_at_mean: int | None = None  # ceil(replicas_at_mean / replicas) devices like this one; None: no traffic
    devices_at_peak: int | None = None  # ceil(replicas_at_peak / replicas); None: no peak
    arithmetic: list[str]  # each count's arithmetic in words
    summary: str  # what the plan sustains and what the traffic needs, in one sentence
    replay: ReplayCheck | None = None  # a trace traffic replayed through the plan (tune, unless --no-verify); else None

    def bounds(self, metric: str) -> list[tuple[str, float, bool]]:
        """(the limit as written, its bound in ms, whether it bounds each request) for every limit of the SLO on
        `metric` (e.g. 'ttft_ms'): the per-request ones and those on a statistic over each run (p99_ttft_ms)."""
        limits = parse_slo(self.slo).limits if self.slo else ()
        return [(str(lim), lim.bound_ms, isinstance(lim, RequestLimit)) for lim in limits
                if (lim.metric if isinstance(lim, RequestLimit) else lim.field).endswith(metric)]


def rate_figures(record: dict, target: float) -> RateFigures:
    """One capacity record (results/rate_run.py) as the figures the advice and the report show."""
    run = to_rate_run(record)
    return RateFigures(rate_rps=run.rate_rps, attainment=run.attainment, attainment_ci95=run.interval(),
                       requests=run.total, failed=run.failed, meets=run.meets(target),
                       request_throughput=run.request_throughput,
                       **{name: record.get(name) for name in ("median_ttft_ms", "p99_ttft_ms", "median_tpot_ms",
                                                              "p99_tpot_ms", "mean_e2el_ms")})


def knee(runs: list[RateRun], target: float) -> tuple[RateRun | None, RateRun | None]:
    """(the highest rate that met `target` below the lowest that did not, that lowest failing rate): the rule of
    the search (sweep/rate_search.py), applied to whatever runs a directory holds."""
    failing = min((r for r in runs if not r.meets(target)), key=lambda r: r.rate_rps, default=None)
    below = [r for r in runs if r.meets(target) and (failing is None or r.rate_rps < failing.rate_rps)]
    return max(below, key=lambda r: r.rate_rps, default=None), failing


def needed(rate_rps: float, per_replica_rps: float, headroom: float) -> int:
    """Replicas that carry `rate_rps` with `headroom` to spare, each sustaining `per_replica_rps`."""
    return max(1, math.ceil(rate_rps * (1 + headroom) / per_replica_rps - 1e-9))


def capacity_advice(directory: str | Path, replicas: int, max_batch: int, traffic: Traffic | None = None,
                    headroom: float = HEADROOM) -> CapacityAdvice:
    """The capacity of the plan (`replicas` x cap `max_batch`) measured in `directory` (a `paretoserve capacity`
    directory: its target and SLO as it kept them), and what `traffic` needs; AdviseError naming --capacity-dir
    when it is not one, or holds no rate that met its target."""
    store = SweepStore(directory)
    try:
        spec = store.read_spec()["spec"]
        target, slo = float(spec["capacity"]["attainment"]), str(spec["workload"]["slo"])
        records = [r for r in store.finished_capacity().values() if "request_rate" in r["config"]]
    except (StoreError, KeyError, TypeError, ValueError) as exc:
        raise AdviseError(f"--capacity-dir: {directory} is not a directory of `paretoserve capacity` runs "
                          f"({type(exc).__name__}: {exc})") from exc
    figures = sorted((rate_figures(r, target) for r in records), key=lambda f: f.rate_rps)
    met, failing = knee([to_rate_run(r) for r in records], target)
    if met is None:
        raise AdviseError(f"--capacity-dir: {directory} holds {len(records)} rate runs and none met {target:.0%} "
                          "of requests within the SLO")
    capacity = met.rate_rps
    per_replica = capacity / replicas
    plan = f"{replicas} x cap {max_batch}"
    low, high = met.interval()
    summary = (f"{plan} sustains {capacity:.3g} req/s with {met.attainment:.1%} of requests within the SLO "
               f"(95 % interval {low:.1%}..{high:.1%}; target {target:.0%})")
    arithmetic = [f"one replica carries {capacity:.3g} / {replicas} = {per_replica:.3g} req/s"]
    counts: dict[str, int] = {}
    if traffic is not None:
        for name, rate in (("low", traffic.low_rps), ("mean", traffic.mean_rps), ("peak", traffic.peak_rps)):
            if rate is not None:
                counts[f"replicas_at_{name}"] = n = needed(rate, per_replica, headroom)
                arithmetic.append(f"{name} {rate:.3g} req/s x (1 + {headroom:g} headroom) / {per_replica:.3g} = "
                                  f"{rate * (1 + headroom) / per_replica:.2f} -> {_count(n, 'replica')}")
        at_mean = counts["replicas_at_mean"]
        busiest = counts.get("replicas_at_peak", at_mean)
        counts["devices_at_mean"] = math.ceil(at_mean / replicas)
        devices = math.ceil(busiest / replicas)
        peak = ""
        if traffic.peak_rps is not None:
            counts["devices_at_peak"] = devices
            peak = f", peak {traffic.peak_rps:.3g}"
        at_peak = f" and {busiest} at the peak" if peak else ""
        summary += (f"; your traffic (mean {traffic.mean_rps:.3g}{peak} req/s) needs {_count(at_mean, 'replica')} "
                    f"of this plan's engine at the mean{at_peak} ({_count(devices, 'device')} like this one, "
                    f"{_count(replicas, 'replica')} each)")
    return CapacityAdvice(directory=str(directory), slo=slo, attainment_target=target, capacity_rps=capacity,
                          failing_rps=failing.rate_rps if failing else None,
                          knee=next(f for f in figures if f.rate_rps == capacity), rates=figures, replicas=replicas,
                          max_batch=max_batch, per_replica_rps=per_replica, headroom=headroom, traffic=traffic,
                          arithmetic=arithmetic, summary=summary, **counts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
