"""`sweep --search bca`: find B_opt with fewer runs than a full grid.

The decision logic is a generator: it yields the next batch cap to measure and receives the
measured point through send(), so the same code drives real engines and replays of recorded data.

1. Measure the start cap (the SLO's reference batch, 32 by default); with an efficiency floor, batch 1 first.
2. With a roofline guess (`--hardware`), jump to the last cap the roofline predicts the climb would pass
   through (when it is beyond the next doubling): the climb goes on from it if it meets the SLO, else the
   bisection runs between the start and it.
3. Double while the point meets the SLO and the floor and each doubling still adds `min_gain` throughput;
   if the start point already fails, halve until one meets.
   When a doubling's gain is within the noise of `min_gain` (its 95 % interval over repeats holds it, or,
   with one run of each, it lies between 0 and twice `min_gain`, since one run says nothing of the noise),
   both caps are measured once more before deciding, while `remeasure_budget` runs last.
4. Bisect between the last cap that met the SLO and the first that did not.
B_opt is the largest measured batch that met everything, as the BCA over a full grid would pick it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Generator

from paretoserve.advise.advice import AdviseConfig
from paretoserve.advise.bca import judge
from paretoserve.advise.table import AdviseError, Point
from paretoserve.bench.slo import RunLimit
from paretoserve.limits import IntRange, UserError
from paretoserve.sweep.asked import Asked

# (first measured point, the SLO's limits) -> a cap to measure next (sweep/guess.py), or None for no guess.
Guess = Callable[[Point, list[RunLimit]], int | None]
# What the search asks for: (cap, extra runs beyond the sweep's --repeats that cap must now have).
Ask = tuple[int, int]
REMEASURE_BUDGET = IntRange(0, 100, "extra runs")


class SearchError(UserError):
    """The search cannot start or go on: a setting out of range, or a point that failed; the message says which."""


@dataclass(frozen=True)
class SearchConfig:
    """How the search moves; the SLO and efficiency floor come from an AdviseConfig."""

    candidates: tuple[int, ...]  # batch caps it may run, ascending (every integer up to --max-batch for a real sweep)
    start: int = 32  # first cap measured (the nearest candidate)
    min_gain: float = 0.1  # a doubling that adds less throughput than this share ends the climb (the plateau)
    remeasure_budget: int = 4  # extra runs the search may spend on doublings whose gain is within the noise

    def __post_init__(self) -> None:
        if not self.candidates or list(self.candidates) != sorted(set(self.candidates)) or self.candidates[0] < 1:
            raise SearchError("candidates must be distinct ascending batch caps >= 1")
        if not self.min_gain >= 0:
            raise SearchError(f"--min-gain must be >= 0; got {self.min_gain}")
        REMEASURE_BUDGET.check("--remeasure-budget", self.remeasure_budget, SearchError)


@dataclass
class SearchResult:
    b_opt: int  # measured batch of the chosen point
    b_opt_cap: int
    measured: list[int] = field(default_factory=list)  # caps in the order they were run
    stop_reason: str = ""
    guess: int | None = None  # the cap the roofline predicted, measured second (predicted, not B_opt)
    remeasured: list[str] = field(default_factory=list)  # each doubling measured again, and why
    remeasure_runs: int = 0  # extra runs spent on them, out of SearchConfig.remeasure_budget

    def remeasure_line(self, budget: int) -> str:
        """What the search spent of its re-measure budget, for the summary line."""
        spent = f"{self.remeasure_runs} of {budget} re-measure runs"
        return f"re-measured {'; '.join(self.remeasured)} ({spent})" if self.remeasured else spent


def nearest_cap(candidates: tuple[int, ...], target: float, above: int | None = None,
                below: int | None = None) -> int | None:
    """The candidate nearest `target` on a log scale, strictly above / below the given caps."""
    pool = [c for c in candidates if (above is None or c > above) and (below is None or c < below)]
    return min(pool, key=lambda c: (abs(math.log(c / target)), c)) if pool else None


def _guessed_cap(candidates: tuple[int, ...], guess: Guess | None, first: Point, limits: list, lo: int | None
                 ) -> int | None:
    """The cap the roofline predicts from the first point when that one met the SLO, if it lies beyond the
    next doubling of `lo` (the climb measures that one next anyway); else None."""
    guessed = guess(first, limits) if guess and lo is not None else None
    if lo is None or not guessed or guessed <= lo:
        return None
    cap, doubled = nearest_cap(candidates, guessed, above=lo), nearest_cap(candidates, 2 * lo, above=lo)
    return None if cap is None or (doubled is not None and cap <= doubled) else cap


MeasureCap = Callable[[int], Generator[Ask, Point, Point]]  # bca_search's: asks for the cap unless already measured


def within_noise(lo: Point, upper: Point, metric: str, min_gain: float) -> str | None:
    """Why the gain of doubling `lo` to `upper` cannot be told from `min_gain`, or None when it can."""
    gain = upper.throughput(metric) / lo.throughput(metric) - 1
    a, b = upper.interval(metric), lo.interval(metric)
    if a is None or b is None:
        if 0 < gain < 2 * min_gain:
            return f"{gain:+.1%} from one run each, within {min_gain:.0%} of --min-gain {min_gain:.0%}"
        return None
    low, high = a[0] / b[1] - 1, a[1] / b[0] - 1
    if low < min_gain <= high:
        return f"{gain:+.1%}, 95 % interval {low:+.1%} to {high:+.1%} around --min-gain {min_gain:.0%}"
    return None


def _halve(candidates: tuple[int, ...], measure: MeasureCap, meets: Callable[[int], bool], hi: int,
           limits: list[RunLimit]) -> Generator[Ask, Point, tuple[int, int]]:
    """Halve from `hi`, a cap that does not meet the SLO, until one does; returns (lo, hi)."""
    while True:
        lower = nearest_cap(candidates, hi / 2, below=hi)
        if lower is None:
            raise AdviseError(f"--slo: no batch meets {', '.join(map(str, limits))}, not even {hi}")
        yield from measure(lower)
        if meets(lower):
            return lower, hi
        hi = lower


def _bisect(candidates: tuple[int, ...], measure: MeasureCap, meets: Callable[[int], bool], lo: int, hi: int | None,
            reason: str) -> Generator[Ask, Point, str]:
    """Bisect between `lo`, the last cap that met the SLO, and `hi`, the first that did not (none to do when
    `hi` is None); returns the stop reason."""
    while hi is not None:
        middle = nearest_cap(candidates, math.sqrt(lo * hi), above=lo, below=hi)
        if middle is None:
            reason = reason or f"bracketed: {lo} meets the SLO, {hi} does not"
            break
        yield from measure(middle)
        lo, hi = (middle, hi) if meets(middle) else (lo, middle)
    return reason


def bca_search(search: SearchConfig, advice: AdviseConfig, guess: Guess | None = None
               ) -> Generator[Ask, Point, SearchResult]:
    """Yields (cap, extra runs) to measure, receives each measured Point via send(), returns the SearchResult."""
    runs: Asked[int, Point] = Asked()
    points, measure = runs.latest, runs.measure
    t1 = None
    if advice.min_efficiency > 0:
        if search.candidates[0] != 1:
            raise AdviseError("--min-efficiency needs batch 1 among the caps the search may run")
        t1 = (yield from measure(1)).throughput(advice.throughput_metric)
    start = nearest_cap(search.candidates,
                        advice.slo_ref_batch if advice.relative_multiple is not None else search.start)
    assert start is not None  # SearchConfig has at least one candidate
    first = yield from measure(start)
    limits = advice.limits([first])

    def meets(cap: int) -> bool:
        return judge(points[cap], limits, advice.min_efficiency, t1, advice.throughput_metric).meets

    lo, hi, reason = (start, None, "") if meets(start) else (None, start, "")
    guessed = _guessed_cap(search.candidates, guess, first, limits, lo)
    if guessed is not None:
        yield from measure(guessed)
        lo, hi = (guessed, None) if meets(guessed) else (lo, guessed)
    if lo is None:
        assert hi is not None  # a cap fails the SLO whenever none is known to meet it
        lo, hi = yield from _halve(search.candidates, measure, meets, hi, limits)
    while hi is None and not reason:  # double while it meets the SLO and still gains
        upper = nearest_cap(search.candidates, 2 * lo, above=lo)
        if upper is None:
            reason = f"reached the largest cap allowed ({lo})"
            break
        yield from measure(upper)
        while meets(upper) and runs.spent + 2 <= search.remeasure_budget and (
                why := within_noise(points[lo], points[upper], advice.throughput_metric, search.min_gain)):
            runs.remeasured.append(f"{lo} -> {upper} ({why})")
            yield from runs.again(lo, upper)
        if not meets(upper):
            hi = upper
            break
        gain = points[upper].throughput(advice.throughput_metric) / points[lo].throughput(advice.throughput_metric) - 1
        lo = upper
        if gain < search.min_gain:
            reason = f"plateau: doubling to {upper} added {gain:+.1%} throughput (< {search.min_gain:.0%})"
    reason = yield from _bisect(search.candidates, measure, meets, lo, hi, reason)
    meeting = [c for c in points if meets(c)]
    if not meeting:  # measuring again moved every cap that had met the SLO past it
        raise AdviseError(f"--slo: no batch meets {', '.join(map(str, limits))} once re-measured")
    chosen = max(meeting, key=lambda c: (points[c].batch, c))
    return SearchResult(b_opt=points[chosen].batch, b_opt_cap=chosen, measured=runs.order, stop_reason=reason,
                        guess=guessed, remeasured=runs.remeasured, remeasure_runs=runs.spent)
