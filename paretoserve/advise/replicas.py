"""The replica plan: N engines of batch cap B on one device, the one with the most throughput within the SLO
(a plan with more replicas must beat the best with fewer by `min_gain`: a gain within noise is no reason
to run more engines).

Measured N x B points win where the sweep has them. Otherwise the plan is predicted for B_opt:
as many replicas as fit in memory (weights + KV for B_opt each, within the memory fraction) and
on the cores (threads per replica), each assumed to deliver what one engine delivered alone, an
upper bound that `sweep --replicas` or `tune` should confirm.
"""

from __future__ import annotations

from pydantic import BaseModel

from paretoserve.advise.bca import LatencyLimit
from paretoserve.advise.memory import MemoryAdvice, fits
from paretoserve.advise.table import Point, SweepTable

HEADROOM = 0.9  # share of device memory engines may fill, vLLM's default, where the sweep does not say


class PlanOption(BaseModel):
    """One N x B configuration, measured or predicted; throughput in units of `throughput_metric`."""

    replicas: int
    max_batch: int
    batch: int
    threads_per_replica: int
    predicted_or_measured: str  # "measured" | "predicted"
    key: str | None  # the sweep point it comes from
    throughput: float  # measured, or for predicted options the upper bound: replicas x one engine alone
    throughput_low: float | None = None  # predicted: one engine measured at no more than the same total batch
    latency_ms: dict[str, float]
    meets_slo: bool
    reasons: list[str]


class ReplicaPlan(BaseModel):
    replicas: int
    max_batch: int
    threads_per_replica: int
    predicted_or_measured: str
    throughput_metric: str
    expected_throughput: float
    expected_latency_ms: dict[str, float]
    baseline: PlanOption  # the single engine with the most throughput, within the SLO or not
    gain_vs_baseline: float  # expected_throughput / baseline throughput - 1
    memory_per_replica_bytes: float | None
    replicas_fit_memory: int | None
    replicas_fit_cores: int | None
    options: list[PlanOption]
    note: str


def option(point: Point, limits: list[LatencyLimit], metric: str, replicas: int | None = None) -> PlanOption:
    """A measured point (or, with `replicas`, that many copies of it: predicted) checked against the SLO."""
    reasons = [f"{lim.field} {point.latency_ms[lim.field]:.4g} ms > {lim.bound_ms:.4g}"
               for lim in limits if not lim.holds(point.latency_ms.get(lim.field, float("inf")))]
    if point.preemptions and (replicas or point.replicas) > 1:  # replicas each got a smaller cache: it did not fit
        reasons.append(f"{point.preemptions} preemptions: its KV cache was too small for the batch")
    n = replicas or point.replicas
    latency = {k: v for k, v in point.latency_ms.items() if k.startswith(("mean_", "median_", "p99_"))}
    return PlanOption(replicas=n, max_batch=point.max_batch, batch=point.batch, threads_per_replica=point.threads,
                      predicted_or_measured="predicted" if replicas else "measured", key=point.key,
                      throughput=point.throughput(metric) * (n if replicas else 1), latency_ms=latency,
                      meets_slo=not reasons, reasons=reasons)


def replica_plan(table: SweepTable, b_opt_point: Point, limits: list[LatencyLimit], metric: str,
                 memory: MemoryAdvice, max_replicas: int, min_gain: float = 0.0) -> ReplicaPlan:
    """The N x B plan with the most throughput within the SLO; see the module docstring for the rule."""
    measured = [option(p, limits, metric) for p in table.points]
    singles = [o for o in measured if o.replicas == 1]
    baseline = max(singles, key=lambda o: o.throughput)
    per_replica = memory.weights_bytes + memory.kv_need_bytes \
        if memory.weights_bytes is not None and memory.kv_need_bytes is not None else None
    if b_opt_point.memory_bytes and not table.on_gpu:
        per_replica = b_opt_point.memory_bytes  # the engine process as measured: weights, KV and buffers
    utilisation = b_opt_point.gpu_memory_utilization or HEADROOM
    n_memory = fits(per_replica, utilisation * memory.device_memory_bytes) \
        if per_replica and memory.device_memory_bytes else None
    threads = b_opt_point.threads or table.cores or 1  # 0 threads = every core
    n_cores = None if table.on_gpu else max(1, (table.cores or 1) // threads)
    if any(o.replicas > 1 for o in measured):
        options = measured
        note = "measured: the sweep ran replica points; the best one within the SLO"
    else:
        n_max = min(n for n in (n_memory, n_cores, max_replicas) if n is not None)
        options = measured + [option(b_opt_point, limits, metric, n) for n in range(2, n_max + 1)]
        for o in options[len(measured):]:
            same_total = [p.throughput(metric) for p in table.singles() if p.batch <= o.replicas * o.batch]
            o.throughput_low = max(same_total)
        note = ("predicted: replicas of B_opt assumed to each deliver the throughput one engine measured alone "
                "(an upper bound); confirm with `paretoserve sweep --replicas` or `paretoserve tune`")
    within = [o for o in options if o.meets_slo] or [baseline]
    best = None
    for n in sorted({o.replicas for o in within}):  # more replicas only for more than `min_gain` throughput
        top = max((o for o in within if o.replicas == n), key=lambda o: o.throughput)
        if best is None or top.throughput > best.throughput * (1 + min_gain):
            best = top
    return ReplicaPlan(
        replicas=best.replicas, max_batch=best.max_batch, threads_per_replica=best.threads_per_replica,
        predicted_or_measured=best.predicted_or_measured, throughput_metric=metric,
        expected_throughput=best.throughput, expected_latency_ms=best.latency_ms, baseline=baseline,
        gain_vs_baseline=best.throughput / baseline.throughput - 1 if baseline.throughput > 0 else 0.0,
        memory_per_replica_bytes=per_replica, replicas_fit_memory=n_memory, replicas_fit_cores=n_cores,
        options=sorted(options, key=lambda o: (o.replicas, o.batch)), note=note)
