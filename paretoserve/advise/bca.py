"""The Batching Configuration Advisor: the largest measured batch within the latency SLO and efficiency floor.

    B_opt = the largest measured B with L(B) <= SLO and T(B) / (B x T(1)) > min_efficiency

The SLO is absolute (`tpot_ms<=30,p99_ttft_ms<=2000`) or the paper's relative form (a multiple of the
latency of the run nearest a reference batch, 3 x mean TPOT at B=32 by default), or both.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from paretoserve.advise.table import AdviseError, Point
from paretoserve.bench.slo import METRICS, RunLimit, Slo, SloError, field_name, parse_slo

RELATIVE_METRIC = re.compile(r"^(?:(mean|median|p50|p90|p99)_)?(ttft|tpot|itl|e2el)(?:_ms)?$")


STEP_LATENCIES = ("_tpot_ms", "_itl_ms")  # latency fields that scale with the time per decode step


class Verdict(BaseModel):
    """How one single-replica point fares against the SLO and the efficiency floor."""

    key: str  # the point's points.jsonl key
    batch: int  # measured peak batch per replica: the BCA's B
    max_batch: int  # the batch cap the engine was started with
    throughput: float  # in the advice's throughput_metric unit; the mean over repeats
    throughput_ci95: tuple[float, float] | None = None  # over repeats: the 95 % interval; None for one run
    efficiency: float | None  # T(B) / (B x T(1)); None without a batch-1 point
    meets: bool  # every limit holds and, where there is one, the efficiency floor is beaten
    reasons: list[str]  # why it fails; empty when it meets every limit
    repeats: int = 1  # runs the figures are the mean of
    certainty: str | None = None  # over repeats: "within the interval" | "at the mean only" | "fails"; None: one run


class BcaChoice(BaseModel):
    b_opt: int
    point_key: str
    throughput_at_b_opt: float
    best_throughput: float  # the most any single-replica point reached, within the SLO or not
    throughput_fraction_at_b_opt: float
    verdicts: list[Verdict]  # every single-replica point, smallest batch first
    rejected: list[Verdict]  # every point with a larger batch than B_opt, with why


def nearest(points: list[Point], batch: int) -> Point:
    """The point whose measured batch is nearest `batch` (the smaller one on a tie)."""
    return min(points, key=lambda p: (abs(p.batch - batch), p.batch))


def resolve_limits(points: list[Point], slo: Slo | str | None, multiple: float | None, ref_batch: int,
                   metric: str) -> list[RunLimit]:
    """The limits a point's summary is judged by: those of `slo` over the run (a bare metric is the run's
    mean), plus, when `multiple` is given, multiple x metric(run nearest ref_batch). `slo` is parsed
    already when it comes from an AdviseConfig; text is parsed here."""
    if isinstance(slo, str):
        try:
            slo = parse_slo(slo) if slo else None
        except SloError as exc:
            raise AdviseError(str(exc)) from exc
    limits = list(slo.over_run()) if slo is not None else []
    if multiple is not None:
        if not multiple > 0:
            raise AdviseError(f"--slo-multiple must be > 0; got {multiple:g}")
        match = RELATIVE_METRIC.match(metric.strip())
        if not match:
            raise AdviseError(f"--slo-metric: cannot read {metric!r}; use one of {', '.join(m[:-3] for m in METRICS)}, "
                              "optionally prefixed mean_, median_, p90_ or p99_ (e.g. 'tpot', 'p99_itl')")
        name = field_name(match.group(1), match.group(2) + "_ms")
        ref = nearest(points, ref_batch)
        if name not in ref.latency_ms:
            raise AdviseError(f"--slo-metric: the sweep's points have no {name} (they have: "
                              f"{', '.join(sorted(ref.latency_ms))})")
        bound = multiple * ref.latency_ms[name]
        limits.append(RunLimit(field=name, bound_ms=bound, origin=f"{multiple:g} x {name} at B={ref.batch} "
                                                               f"({ref.latency_ms[name]:.4g} ms)"))
    for limit in limits:
        missing = [p.key for p in points if limit.field not in p.latency_ms]
        if missing:
            have = sorted(set.intersection(*(set(p.latency_ms) for p in points)))
            raise AdviseError(f"--slo: the sweep's points have no {limit.field} (point {missing[0]}); "
                              f"fields measured in every point: {', '.join(have)}")
    return limits


def judge(point: Point, limits: list[RunLimit], min_efficiency: float, t1: float | None,
          metric: str) -> Verdict:
    """Check one point against every limit and the efficiency floor."""
    throughput = point.throughput(metric)
    efficiency = throughput / (point.batch * t1) if t1 else None
    reasons = [f"{limit.field} {point.latency_ms[limit.field]:.4g} ms > {limit.bound_ms:.4g} ({limit.origin})"
               for limit in limits if not limit.holds(point.latency_ms[limit.field])]
    if min_efficiency > 0 and efficiency is not None and not efficiency > min_efficiency:
        reasons.append(f"batching efficiency {efficiency:.3f} <= {min_efficiency:g} "
                       f"(T(B) / (B x T(1)), T(1) = {t1:.4g})")
    return Verdict(key=point.key, batch=point.batch, max_batch=point.max_batch, throughput=throughput,
                   throughput_ci95=point.interval(metric), efficiency=efficiency, meets=not reasons, reasons=reasons,
                   repeats=point.repeats, certainty=certainty(point, limits, not reasons))


def certainty(point: Point, limits: list[RunLimit], meets: bool) -> str | None:
    """Whether a repeated point meets the SLO within its 95 % interval (every limit holds at the interval's
    worse end), at the mean only, or fails; None for a single run, which has no interval."""
    if point.repeats < 2:
        return None
    if not meets:
        return "fails"
    worst = [point.interval(limit.field) for limit in limits]
    if all(bounds is not None and limit.holds(bounds[1]) for limit, bounds in zip(limits, worst, strict=True)):
        return "within the interval"
    return "at the mean only"


def choose_batch(points: list[Point], limits: list[RunLimit], min_efficiency: float = 0.0,
                 metric: str = "output_throughput") -> BcaChoice:
    """B_opt over single-replica `points`: the largest measured batch meeting every limit (ties: more throughput)."""
    if not 0 <= min_efficiency < 1:
        raise AdviseError(f"--min-efficiency must be in [0, 1); got {min_efficiency:g}")
    points = sorted(points, key=lambda p: (p.batch, p.max_batch))
    ones = [p.throughput(metric) for p in points if p.batch == 1]
    t1 = max(ones) if ones else None
    if min_efficiency > 0 and t1 is None:
        raise AdviseError(f"--min-efficiency needs a measured point at batch 1; the sweep's smallest batch is "
                          f"{points[0].batch}")
    verdicts = [judge(p, limits, min_efficiency, t1, metric) for p in points]
    passing = [v for v in verdicts if v.meets]
    if not passing:
        first = verdicts[0]
        raise AdviseError(f"--slo: no measured batch meets {', '.join(map(str, limits)) or 'the limits'}"
                          f"{f' and --min-efficiency {min_efficiency:g}' if min_efficiency else ''}; at the "
                          f"smallest batch ({first.batch}): {'; '.join(first.reasons)}")
    chosen = max(passing, key=lambda v: (v.batch, v.throughput))
    best = max(v.throughput for v in verdicts)
    return BcaChoice(b_opt=chosen.batch, point_key=chosen.key, throughput_at_b_opt=chosen.throughput,
                     best_throughput=best,
                     throughput_fraction_at_b_opt=chosen.throughput / best if best > 0 else 0.0,
                     verdicts=verdicts, rejected=[v for v in verdicts if v.batch > chosen.batch])
