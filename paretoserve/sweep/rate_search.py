"""`paretoserve capacity`'s search: the highest open-loop request rate at which at least `--attainment` of the
requests meet the SLO.

Like the batch search (search.py) it is a generator: it yields the next (rate, extra runs) to measure and
receives the pooled RateRun through send(), so real engines and replays of recorded runs drive the same code.

1. Measure the first guess (Little's law on a closed-loop run, a trace's own rate, or --start-rate). Where the
   plan's closed-loop throughput is known it is the ceiling: no rate above it can be sustained, so it is the
   first failing bound (never run), and the first rate is START_SHARE of it.
2. Bracket: multiply the rate by `growth` while it meets the target; divide while it does not.
3. Bisect (geometric mean) between the highest rate that met and the lowest that did not, until they are
   within `resolution` of each other.
   Once bracketed, a rate whose attainment's 95 % interval holds the target is measured once more before it
   is judged, while `remeasure_budget` lasts (one run of ~100 requests cannot tell 98 % from 99 %).
The capacity is the highest rate that met the target; every rate above the lowest one that failed is taken
to fail as well (attainment falls as the rate rises).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Generator

from paretoserve.limits import IntRange, UserError
from paretoserve.results.rate_run import RateRun
from paretoserve.sweep.asked import Asked

Ask = tuple[float, int]  # (rate in requests/s, extra runs beyond the first that rate must now have)
RUNS = IntRange(2, 100, "first runs at distinct rates")
START_SHARE = 0.85  # of the closed-loop throughput: the first rate, where open-loop queueing starts to show
REMEASURES = IntRange(0, 100, "extra runs near the edge")


class CapacityError(UserError):
    """A capacity setting out of range, or a search that cannot go on; the message names the flag."""


@dataclass(frozen=True)
class RateSearchConfig:
    """How the rate search moves; rates in requests per second."""

    start_rps: float
    attainment: float = 0.99  # share of requests within the SLO (0..1)
    resolution: float = 0.05  # stop when the failing rate is within this share above the capacity
    growth: float = 2.0  # bracketing step, a factor
    # The most the plan completed in a closed loop: no open-loop rate above it is sustained (a short run above it
    # only ends before its queue shows), so it bounds the search from above without a run of its own.
    ceiling_rps: float | None = None
    max_runs: int = 10  # runs at distinct rates, re-measures not counted
    remeasure_budget: int = 3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_rps) and 0 < self.start_rps <= 1e6):
            raise CapacityError(f"--start-rate must be in (0, 1e6] requests/s; got {self.start_rps!r}")
        if not 0 < self.attainment < 1:
            raise CapacityError(f"--attainment must be in (0, 1), a share of requests; got {self.attainment!r}")
        if not 0.001 <= self.resolution <= 0.5:
            raise CapacityError(f"--resolution must be in [0.001, 0.5], a share of the rate; got {self.resolution!r}")
        if self.ceiling_rps is not None and not (math.isfinite(self.ceiling_rps) and self.ceiling_rps > 0):
            raise CapacityError(f"the closed-loop throughput must be > 0 req/s; got {self.ceiling_rps!r}")
        if not 1.1 <= self.growth <= 10:
            raise CapacityError(f"growth must be in [1.1, 10]; got {self.growth!r}")
        RUNS.check("--max-runs", self.max_runs, CapacityError)
        REMEASURES.check("--remeasure-budget", self.remeasure_budget, CapacityError)


@dataclass
class CapacityResult:
    """The knee: `capacity_rps` met the target, `failing_rps` (None when never reached) did not, or is the
    closed-loop throughput that bounds it (`at_ceiling`, never run)."""

    capacity_rps: float | None
    failing_rps: float | None
    stop_reason: str
    at_ceiling: bool = False
    measured: list[float] = field(default_factory=list)  # rates in the order first run
    remeasured: list[str] = field(default_factory=list)  # each rate measured again, and why
    remeasure_runs: int = 0
    runs: dict[float, RateRun] = field(default_factory=dict)  # the latest pooled run of each rate

    @property
    def knee(self) -> RateRun | None:
        return self.runs.get(self.capacity_rps) if self.capacity_rps is not None else None


def rounded(rate: float) -> float:
    """A rate to four significant digits, so that a resumed search asks for the very rates it recorded."""
    return float(f"{rate:.4g}")


Judge = Callable[[float, bool], Generator[Ask, RateRun, bool]]  # (rate, bracketed) -> it met the target


def capacity_search(config: RateSearchConfig) -> Generator[Ask, RateRun, CapacityResult]:
    """Yields (rate, extra runs) to measure, receives each rate's pooled RateRun via send(), returns the result.

    Raises CapacityError when even the lowest rate it may try misses the target."""
    runs: Asked[float, RateRun] = Asked()
    target = config.attainment

    def judge(rate: float, bracketed: bool) -> Generator[Ask, RateRun, bool]:
        run = yield from runs.measure(rate)
        while bracketed and run.near(target) and runs.spent < config.remeasure_budget:
            low, high = run.interval()
            runs.remeasured.append(f"{rate:g} req/s ({run.attainment:.1%} of {run.total}, 95 % interval "
                                   f"{low:.1%}..{high:.1%} holds {target:.0%})")
            run = yield from runs.again(rate)
        return run.meets(target)

    lo, hi = yield from _bracket(config, judge, runs)
    if hi is None:
        reason = f"budget: {len(runs.order)} runs (--max-runs) all met the SLO, up to {lo:g} req/s"
        return _result(lo, None, reason, runs)
    while hi / lo - 1 > config.resolution and len(runs.order) < config.max_runs:  # bisect
        middle = rounded(math.sqrt(lo * hi))
        if middle in (lo, hi):
            break
        if (yield from judge(middle, True)):
            lo = middle
        else:
            hi = middle
    above = "does not" if hi in runs.latest else "is the closed-loop throughput"
    if hi / lo - 1 <= config.resolution:
        reason = f"resolution: {lo:g} meets, {hi:g} {above} ({hi / lo - 1:.1%} apart, --resolution " \
                 f"{config.resolution:.0%})"
    else:
        reason = f"budget: {len(runs.order)} runs (--max-runs) spent with {lo:g} meeting and {hi:g} not ({above})"
    return _result(lo, hi, reason, runs)


def _bracket(config: RateSearchConfig, judge: Judge, runs: Asked[float, RateRun]
             ) -> Generator[Ask, RateRun, tuple[float, float | None]]:
    """From the first guess, multiply or divide by `growth` until one rate meets the target and one does not;
    returns (the highest that met, the lowest that did not or None when the budget ran out first)."""
    ceiling = config.ceiling_rps
    rate = rounded(min(config.start_rps, START_SHARE * ceiling) if ceiling else config.start_rps)
    lo: float | None = None
    hi: float | None = rounded(ceiling) if ceiling else None
    if (yield from judge(rate, hi is not None)):
        lo = rate
    else:
        hi = rate
    while (lo is None or hi is None) and len(runs.order) < config.max_runs:
        rate = rounded(lo * config.growth) if lo is not None else rounded(hi / config.growth)  # type: ignore[operator]
        if (yield from judge(rate, False)):
            lo = rate
        else:
            hi = rate
    if lo is None:
        raise CapacityError(f"--attainment {config.attainment:g}: no rate from {config.start_rps:.4g} down to "
                            f"{hi:.4g} req/s met the SLO in {len(runs.order)} runs; lower --start-rate or loosen "
                            "--slo")
    return lo, hi


def _result(lo: float, hi: float | None, reason: str, runs: Asked[float, RateRun]) -> CapacityResult:
    return CapacityResult(capacity_rps=lo, failing_rps=hi, stop_reason=reason, measured=runs.order,
                          remeasured=runs.remeasured, remeasure_runs=runs.spent, runs=runs.latest,
                          at_ceiling=hi is not None and hi not in runs.latest)
