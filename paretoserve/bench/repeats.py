"""Repeated runs of one configuration: each headline figure's mean over the repeats and its 95 % interval.

The interval is Student's t over the repeats' own values, df = N - 1: each repeat contributes its
throughput, its mean TTFT, its p99 TTFT, ..., and the interval says where that figure of another run
would be expected to land. Percentiles are treated like means here (one value per repeat), not
bootstrapped over requests. With one repeat there is no interval: `ci95` is absent, not zero-width.
"""

from __future__ import annotations

import math
import statistics
from typing import Callable

from paretoserve.bench.metrics import GOODPUT, THROUGHPUT_METRICS
from paretoserve.bench.summary import LATENCY_METRICS, STATS
from paretoserve.limits import IntRange

REPEATS = IntRange(1, 100, "runs of the same configuration")
THROUGHPUTS = (*THROUGHPUT_METRICS, GOODPUT)
HEADLINE = (*THROUGHPUTS, *(f"{stat}_{metric}" for metric in LATENCY_METRICS for stat, _ in STATS),
            "energy_per_output_token_j")
COUNTS = ("completed", "failed", "total_input_tokens", "total_output_tokens", "connection_retries", "preemptions",
          "wall_s")
PEAKS = ("max_running", "kv_peak_fraction", "rss_peak_bytes", "device_memory_peak_bytes")
MEANS = ("mean_running", "mean_waiting", "engine_cpu_cores")
SUMMARY = (*HEADLINE, *COUNTS, *PEAKS, *MEANS, "duration", "warnings")  # what each run keeps of its own
WIDE_INTERVAL = 0.10  # a half-width past this share of the mean is worth a warning
# Two-sided 95 % quantiles of Student's t by degrees of freedom; past 30 the normal's 1.96 is within 2 %.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile(df: int) -> float:
    """The 97.5th percentile of Student's t with `df` degrees of freedom (df >= 1)."""
    return T_975[df - 1] if df <= len(T_975) else 1.96


def interval(values: list[float]) -> tuple[float, float] | None:
    """The 95 % t interval of the mean of `values`; None with fewer than two."""
    if len(values) < 2:
        return None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(len(values) - 1) * sd / math.sqrt(len(values))
    return mean - half, mean + half


def combine(runs: list[dict]) -> dict:
    """One result from the results of `runs` of the same configuration: the first run's description, series
    (samples, requests) and steady state; each headline figure's mean over the runs (those a run did not
    measure left out), counts summed, engine peaks the largest and engine means the mean; `repeats`,
    `ci95: {field: [low, high]}` and every run's summary under `repeat_summaries`. A single run comes back
    as it is, with `repeats: 1` and no `ci95`."""
    result = dict(runs[0])
    result["repeats"] = len(runs)
    if len(runs) == 1:
        return result
    ci95: dict[str, list[float]] = {}
    for field in HEADLINE:
        values = [r[field] for r in runs if isinstance(r.get(field), (int, float))]
        result[field] = statistics.fmean(values) if values else None
        bounds = interval(values) if len(values) == len(runs) else None
        if bounds is not None:
            ci95[field] = [bounds[0], bounds[1]]
    merges: tuple[tuple[tuple[str, ...], Callable[[list[float]], float]], ...] = (
        (COUNTS, sum), (PEAKS, max), (MEANS, statistics.fmean))
    for names, merge in merges:
        for name in names:
            if all(isinstance(r.get(name), (int, float)) for r in runs):
                result[name] = merge([r[name] for r in runs])
    result["duration"] = sum(r.get("duration") or 0.0 for r in runs)
    result["ci95"] = ci95
    result["warnings"] = [*dict.fromkeys(w for r in runs for w in r.get("warnings") or []), *wide(result, ci95)]
    result["repeat_summaries"] = [{k: r.get(k) for k in SUMMARY} for r in runs]
    return result


def runs_of(result: dict) -> list[dict]:
    """The runs a combined result was made of, as `combine` needs them again to add one more (a resumed
    sweep): the first with the result's description, the others their summaries."""
    summaries = result.get("repeat_summaries")
    if not summaries:
        return [result]
    first = {k: v for k, v in result.items() if k not in ("repeats", "ci95", "repeat_summaries", "warnings")}
    return [{**first, **summaries[0]}, *summaries[1:]]


def wide(result: dict, ci95: dict[str, list[float]]) -> list[str]:
    """A warning for each throughput whose interval is wider than WIDE_INTERVAL of its mean."""
    out = []
    for field in THROUGHPUTS:
        mean, bounds = result.get(field), ci95.get(field)
        if bounds and mean and (bounds[1] - bounds[0]) / 2 > WIDE_INTERVAL * abs(mean):
            out.append(f"{field}: the 95 % interval over {result['repeats']} repeats is ±"
                       f"{(bounds[1] - bounds[0]) / 2 / abs(mean):.0%} of the mean: the machine was noisy, or "
                       "more repeats are needed")
    return out
