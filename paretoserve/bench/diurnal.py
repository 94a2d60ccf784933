"""A diurnal trace made in code (`paretoserve trace`): the traffic `capacity --replay` and `tune --traffic trace:`
check a plan against, for the README and the tests.

The rate follows a raised cosine from `low_rps` at t = 0 up to `peak_rps` half a period later and back, a day's
traffic compressed into `period_s`; `bursts` short windows, evenly spaced over the trace, multiply it by
`burst_factor`. Arrivals are a non-homogeneous Poisson process drawn by thinning (Lewis and Shedler, 1979): a
homogeneous process at the highest rate, each arrival kept with probability rate(t) / highest rate, from one
seeded numpy generator. The trace starts with a request at t = 0, so its clock and a replay's agree. Token
lengths are fixed or drawn uniformly from a range. The file is the `timestamp_s` JSONL that `--dataset
trace:PATH` reads (bench/trace.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paretoserve.bench.config import TokenRange
from paretoserve.bench.trace import TraceRow, write_trace
from paretoserve.limits import IntRange, UserError

RATE_MAX = 10_000.0  # req/s: far beyond what one machine's plan serves
SPAN_MAX = 7 * 86400.0  # seconds: a week
DRAWS_MAX = 10_000_000  # candidate arrivals (highest rate x duration): bounds the memory and the file's size
BURSTS = IntRange(0, 1000)
SEED = IntRange(0, 2**63 - 1)
BURST_SHARE = 0.02  # a burst's default length, as a share of the duration


class DiurnalError(UserError):
    """A trace shape that cannot be drawn; the message names the flag."""


@dataclass(frozen=True)
class Diurnal:
    """The shape of a diurnal trace: rates in req/s, times in seconds, lengths in tokens."""

    low_rps: float
    peak_rps: float
    duration_s: float
    period_s: float | None = None  # None: the duration (the trace is one "day")
    bursts: int = 0
    burst_factor: float = 3.0  # a burst's rate as a multiple of the ramp's rate at that moment
    burst_s: float | None = None  # None: BURST_SHARE of the duration
    input_tokens: TokenRange = TokenRange(128, 128)
    output_tokens: TokenRange = TokenRange(128, 128)
    seed: int = 0

    def __post_init__(self) -> None:
        _check("--peak-rate", self.peak_rps, 0.0, RATE_MAX, low_open=True)
        _check("--low-rate", self.low_rps, 0.0, self.peak_rps)
        _check("--duration", self.duration_s, 0.0, SPAN_MAX, low_open=True)
        _check("--period", self.period, 0.0, SPAN_MAX, low_open=True)
        BURSTS.check("--bursts", self.bursts, DiurnalError)
        _check("--burst-factor", self.burst_factor, 1.0, 100.0)
        _check("--burst-length", self.burst_length_s, 0.0, self.duration_s, low_open=True)
        if self.bursts * self.burst_length_s > self.duration_s:
            raise DiurnalError(f"--bursts {self.bursts} x --burst-length {self.burst_length_s:g} s exceed --duration "
                               f"{self.duration_s:g} s: the bursts would overlap")
        SEED.check("--seed", self.seed, DiurnalError)
        draws = self.highest_rps * self.duration_s
        if draws > DRAWS_MAX:
            raise DiurnalError(f"--peak-rate {self.peak_rps:g} x --burst-factor {self.burst_factor:g} x --duration "
                               f"{self.duration_s:g} s = {draws:.3g} arrivals to draw; at most {DRAWS_MAX:.0e}")

    @property
    def period(self) -> float:
        """Seconds from one low to the next."""
        return self.duration_s if self.period_s is None else self.period_s

    @property
    def burst_length_s(self) -> float:
        return BURST_SHARE * self.duration_s if self.burst_s is None else self.burst_s

    @property
    def highest_rps(self) -> float:
        """The rate no moment exceeds: the thinning's homogeneous rate."""
        return self.peak_rps * (self.burst_factor if self.bursts else 1.0)

    def burst_windows(self) -> list[tuple[float, float]]:
        """(start, end) in seconds of each burst: centred on (i + 1/2) x duration / bursts."""
        step, half = self.duration_s / max(self.bursts, 1), self.burst_length_s / 2
        return [((i + 0.5) * step - half, (i + 0.5) * step + half) for i in range(self.bursts)]

    def rate(self, t: np.ndarray) -> np.ndarray:
        """The rate in req/s at times `t` (seconds): the raised cosine, times burst_factor inside a burst."""
        ramp = self.low_rps + (self.peak_rps - self.low_rps) * (1.0 - np.cos(2.0 * np.pi * t / self.period)) / 2.0
        inside = np.zeros(np.shape(t), dtype=bool)
        for start, end in self.burst_windows():
            inside |= (t >= start) & (t < end)
        return np.where(inside, ramp * self.burst_factor, ramp)


def diurnal_rows(shape: Diurnal) -> list[TraceRow]:
    """The trace's requests in time order, as `read_trace` returns them from the file `write_diurnal` writes
    (times rounded to the microsecond, `line` the request's line in it)."""
    rng = np.random.default_rng(shape.seed)
    top = shape.highest_rps
    candidates = np.sort(rng.uniform(0.0, shape.duration_s, rng.poisson(top * shape.duration_s)))
    kept = candidates[rng.uniform(0.0, top, candidates.size) < shape.rate(candidates)]
    times = np.round(np.concatenate(([0.0], kept[kept > 0.0])), 6)
    n_in, n_out = _lengths(rng, shape.input_tokens, times.size), _lengths(rng, shape.output_tokens, times.size)
    rows = zip(times, n_in, n_out, strict=True)
    return [TraceRow(float(t), int(i), int(o), line) for line, (t, i, o) in enumerate(rows, 1)]


def write_diurnal(shape: Diurnal, path: Path) -> list[TraceRow]:
    """Draw the trace and write it to `path` (its folder created), one JSON object per line; its rows."""
    rows = diurnal_rows(shape)
    write_trace(rows, path)
    return rows


def _lengths(rng: np.random.Generator, tokens: TokenRange, n: int) -> np.ndarray:
    """`n` token counts, uniform over the range (both ends included)."""
    return rng.integers(tokens.low, tokens.high + 1, size=n)


def _check(flag: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    """`value` within [low, high] ((low, high] with `low_open`), else a DiurnalError naming the flag."""
    if not (math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
        raise DiurnalError(f"{flag} must be in {'(' if low_open else '['}{low:g}, {high:g}]; "
                           f"got {value!r}")
