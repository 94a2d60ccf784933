"""The traffic a plan must carry: a rate given by hand (`--traffic 5 --peak 12`) or read from a trace
(`--traffic trace:PATH`: its mean rate, and its busiest and quietest windows of `--peak-window` seconds)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from paretoserve.bench.trace import mean_rate, read_trace
from paretoserve.bench.workload import WorkloadError
from paretoserve.limits import UserError

PEAK_WINDOW_S = 60.0  # a trace's peak and low: the busiest and quietest minute


class TrafficError(UserError):
    """A --traffic, --peak or --peak-window that cannot be used; the message names the flag."""


class Traffic(BaseModel):
    """The traffic a plan must carry, in requests per second."""

    mean_rps: float  # requests/s; a trace's: its requests after the first over its span
    peak_rps: float | None = None  # None: no peak given, so the mean is all there is
    low_rps: float | None = None  # the quietest window of a trace; None for a rate given by hand
    window_s: float | None = None  # the window a trace's peak and low are taken over
    source: str  # how it was given: '--traffic 5 --peak 12' or 'trace:PATH'


def traffic_from_rates(mean_rps: float, peak_rps: float | None = None) -> Traffic:
    """`--traffic RATE [--peak RATE]`, checked: both in (0, 1e6] req/s, the peak at least the mean."""
    for flag, rate in (("--traffic", mean_rps), ("--peak", peak_rps)):
        if rate is not None and not (math.isfinite(rate) and 0 < rate <= 1e6):
            raise TrafficError(f"{flag} must be a rate in (0, 1e6] requests/s; got {rate!r}")
    if peak_rps is not None and peak_rps < mean_rps:
        raise TrafficError(f"--peak {peak_rps:g} is below --traffic {mean_rps:g}: the peak is the busiest rate")
    source = f"--traffic {mean_rps:g}" + (f" --peak {peak_rps:g}" if peak_rps is not None else "")
    return Traffic(mean_rps=mean_rps, peak_rps=peak_rps, source=source)


def traffic_from_trace(path: Path, window_s: float = PEAK_WINDOW_S) -> Traffic:
    """A trace's mean rate (its requests after the first over its span) and its busiest and quietest whole
    windows of `window_s` seconds (the mean stands for both when the trace is shorter than two windows)."""
    if not (math.isfinite(window_s) and 0 < window_s <= 86400):
        raise TrafficError(f"--peak-window must be in (0, 86400] seconds; got {window_s!r}")
    try:
        rows = read_trace(path, "--traffic trace:")
    except WorkloadError as exc:
        raise TrafficError(str(exc)) from exc
    mean = mean_rate(rows)
    if mean is None:
        raise TrafficError(f"--traffic trace:{path}: {len(rows)} requests over {rows[-1].at_s if rows else 0:g} s "
                           "have no rate; give a trace of two or more times")
    times = np.array([row.at_s for row in rows])
    span = float(times[-1])
    windows = int(span // window_s)
    if windows < 2:
        return Traffic(mean_rps=mean, peak_rps=mean, low_rps=mean, window_s=window_s, source=f"trace:{path}")
    counts, _ = np.histogram(times, bins=windows, range=(0.0, windows * window_s))
    return Traffic(mean_rps=mean, peak_rps=float(counts.max()) / window_s, low_rps=float(counts.min()) / window_s,
                   window_s=window_s, source=f"trace:{path}")
