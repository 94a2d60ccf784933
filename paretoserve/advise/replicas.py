"""The replica plan: N engines of batch cap B on one device, the one with the most throughput within the SLO
(a plan with more replicas must beat the best with fewer by `min_gain`: a gain within noise is no reason
to run more engines).

Three steps, one function each: `replica_capacity` (how many copies of B_opt fit in memory and on the
cores), `plan_options` (the N x B configurations to choose from) and `choose` (the best within the SLO).

Measured N x B points win where the sweep has them. Otherwise the plan is predicted for B_opt:
as many replicas as fit in memory (weights + KV for B_opt each, within the memory fraction) and
on the cores (threads per replica). With a calibrated roofline (`advise --hardware`) their throughput
and step time are the roofline's; without, each replica is assumed to deliver what one engine delivered
alone, an upper bound. `sweep --replicas` or `tune` should confirm either.
"""

from __future__ import annotations

from pydantic import BaseModel

from paretoserve.advise.bca import STEP_LATENCIES
from paretoserve.advise.calibrated_roofline import ReplicaScale
from paretoserve.advise.memory import MemoryAdvice, fits
from paretoserve.advise.table import Point, SweepTable
from paretoserve.bench.slo import RunLimit
from paretoserve.results.setup import ReplicaSetup

HEADROOM = 0.9  # share of device memory engines may fill, vLLM's default, where the sweep does not say
MEASURED_NOTE = "measured: the sweep ran replica points; the best one within the SLO"


class PlanOption(BaseModel):
    """One N x B configuration, measured or predicted; throughput in units of `throughput_metric`."""

    replicas: int  # engines on the one device
    max_batch: int  # batch cap of each replica
    batch: int  # measured peak batch per replica of the point it comes from
    threads_per_replica: int  # threads of each engine; 0 = not set (the embedded engine: every core)
    predicted_or_measured: str  # "measured" | "predicted"
    key: str | None  # the sweep point it comes from
    throughput: float  # measured; predicted: the roofline's, else the upper bound replicas x one engine alone
    throughput_low: float | None = None  # predicted: one engine measured at no more than the same total batch
    throughput_ci95: tuple[float, float] | None = None  # measured over repeats: the 95 % interval
    latency_ms: dict[str, float]  # mean_/median_/p99_ fields, ms; predicted by the roofline: only TPOT and ITL, scaled
    meets_slo: bool  # every limit holds (an unpredicted one fails), no preemptions with several replicas
    reasons: list[str]  # why it fails; empty when it meets the SLO


class ReplicaCapacity(BaseModel):
    """How many copies of B_opt the device holds; None where a bound is not known (or does not apply)."""

    memory_per_replica_bytes: float | None
    replicas_fit_memory: int | None
    replicas_fit_cores: int | None  # None on an accelerator: replicas there share its compute


class ReplicaPlan(BaseModel):
    """The advised N x B plan (`advise --json`'s `replica_plan`), with every option it was chosen from."""

    replicas: int  # engines on the one device
    max_batch: int  # batch cap of each replica
    threads_per_replica: int  # threads of each engine; 0 = not set (the embedded engine: every core)
    predicted_or_measured: str  # "measured" | "predicted"
    throughput_metric: str  # expected_throughput's unit, as the advice's
    expected_throughput: float  # all replicas together, in throughput_metric's unit
    expected_latency_ms: dict[str, float]  # the chosen option's latency_ms, ms
    baseline: PlanOption  # the single engine with the most throughput, within the SLO or not
    gain_vs_baseline: float  # expected_throughput / baseline throughput - 1
    memory_per_replica_bytes: float | None  # one copy of B_opt: on a CPU its measured peak, else weights + KV need
    replicas_fit_memory: int | None  # copies of B_opt in the memory fraction (0.9 if unset) of device memory
    replicas_fit_cores: int | None  # usable cores // B_opt's threads (at least 1); None on an accelerator
    options: list[PlanOption]  # every option it was chosen from, by replicas then batch
    note: str  # where the options come from, and how to confirm a predicted plan
    decision: str | None = None  # why a plan with more replicas was not taken, when noise decided it

    def setup(self) -> ReplicaSetup:
        """The plan as a sweep point (what `tune` measures to confirm it): the KV budget left to the engine."""
        return ReplicaSetup(self.max_batch, None, self.threads_per_replica, self.replicas)


def option(point: Point, limits: list[RunLimit], metric: str, replicas: int | None = None,
           scale: tuple[float, float] | None = None, throughput_low: float | None = None) -> PlanOption:
    """A measured point (or, with `replicas`, that many copies of it: predicted) checked against the SLO.

    `scale` is the roofline's (throughput, step time) of the copies relative to the point; without it each
    copy is assumed to run as the point ran alone. Latencies the roofline does not predict are left out.
    """
    n = replicas or point.replicas
    throughput, latency = point.throughput(metric) * (n if replicas else 1), point.latency_ms
    if scale is not None:
        throughput = point.throughput(metric) * scale[0]
        latency = {k: v * scale[1] for k, v in latency.items() if k.endswith(STEP_LATENCIES)}
    reasons = [f"{lim.field} {latency[lim.field]:.4g} ms > {lim.bound_ms:.4g}" if lim.field in latency
               else f"{lim.field} is not predicted" for lim in limits
               if not lim.holds(latency.get(lim.field, float("inf")))]
    if point.preemptions and n > 1:  # replicas each got a smaller cache: it did not fit
        reasons.append(f"{point.preemptions} preemptions: its KV cache was too small for the batch")
    return PlanOption(replicas=n, max_batch=point.max_batch, batch=point.batch, threads_per_replica=point.threads,
                      predicted_or_measured="predicted" if replicas else "measured", key=point.key,
                      throughput=throughput, throughput_low=throughput_low,
                      throughput_ci95=None if replicas else point.interval(metric), meets_slo=not reasons,
                      reasons=reasons,
                      latency_ms={k: v for k, v in latency.items() if k.startswith(("mean_", "median_", "p99_"))})


def replica_capacity(table: SweepTable, b_opt_point: Point, memory: MemoryAdvice) -> ReplicaCapacity:
    """Copies of B_opt that fit: memory (on a CPU the engine process as measured, else weights + KV for
    B_opt, within the memory fraction) and cores (threads per replica; 0 threads = every core)."""
    if b_opt_point.memory_bytes and not table.on_gpu:
        per_replica: float | None = b_opt_point.memory_bytes  # weights, KV and buffers, as the process held them
    elif memory.weights_bytes is not None and memory.kv_need_bytes is not None:
        per_replica = memory.weights_bytes + memory.kv_need_bytes
    else:
        per_replica = None
    utilisation = b_opt_point.gpu_memory_utilization or HEADROOM
    n_memory = fits(per_replica, utilisation * memory.device_memory_bytes) \
        if per_replica and memory.device_memory_bytes else None
    threads = b_opt_point.threads or table.cores or 1
    n_cores = None if table.on_gpu else max(1, (table.cores or 1) // threads)
    return ReplicaCapacity(memory_per_replica_bytes=per_replica, replicas_fit_memory=n_memory,
                           replicas_fit_cores=n_cores)


def plan_options(table: SweepTable, b_opt_point: Point, limits: list[RunLimit], metric: str,
                 capacity: ReplicaCapacity, max_replicas: int, roofline: ReplicaScale | None
                 ) -> tuple[list[PlanOption], str]:
    """The options to choose from and a note on where they come from: the sweep's own points, plus, where
    it ran no replica points, predicted copies of B_opt up to the capacity and `max_replicas`."""
    measured = [option(p, limits, metric) for p in table.points]
    if any(o.replicas > 1 for o in measured):
        return measured, MEASURED_NOTE
    bounds = (capacity.replicas_fit_memory, capacity.replicas_fit_cores, max_replicas)
    n_max = min(n for n in bounds if n is not None)
    predicted = [_predicted(table, b_opt_point, limits, metric, n, roofline) for n in range(2, n_max + 1)]
    how = ("by the roofline calibrated on the sweep's single engines (`advise --hardware`), at the largest "
           "batch up to B_opt whose copies stay within the SLO" if roofline else
           "assuming each replica of B_opt delivers what one engine measured alone (an upper bound)")
    return measured + predicted, f"predicted {how}; confirm with `paretoserve sweep --replicas` or `paretoserve tune`"


def choose(options: list[PlanOption], baseline: PlanOption, min_gain: float) -> tuple[PlanOption, str | None]:
    """The option with the most throughput within the SLO, taking more replicas only for more than `min_gain`
    more throughput than the best with fewer and, where both were measured over repeats, only when the low
    end of its 95 % interval beats the high end of theirs; the baseline when no option meets the SLO.
    Returns it and, when noise kept a plan with more replicas out, why."""
    within = [o for o in options if o.meets_slo] or [baseline]
    best, decision = None, None
    for n in sorted({o.replicas for o in within}):
        top = max((o for o in within if o.replicas == n), key=lambda o: o.throughput)
        if best is None:
            best = top
        elif top.throughput > best.throughput * (1 + min_gain):
            if top.throughput_ci95 and best.throughput_ci95 and top.throughput_ci95[0] <= best.throughput_ci95[1]:
                decision = (f"{top.replicas} x {top.max_batch} ties {best.replicas} x {best.max_batch} within noise "
                            f"(95 % intervals {_shown(top.throughput_ci95)} and {_shown(best.throughput_ci95)} "
                            f"overlap): keep {best.replicas} engine{'s' if best.replicas > 1 else ''}")
            else:
                best, decision = top, None
    assert best is not None  # `within` is never empty
    return best, decision


def _shown(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:.4g}, {bounds[1]:.4g}]"


def replica_plan(table: SweepTable, b_opt_point: Point, limits: list[RunLimit], metric: str,
                 memory: MemoryAdvice, max_replicas: int, min_gain: float = 0.0,
                 roofline: ReplicaScale | None = None) -> ReplicaPlan:
    """The N x B plan with the most throughput within the SLO; see the module docstring for the rule."""
    capacity = replica_capacity(table, b_opt_point, memory)
    options, note = plan_options(table, b_opt_point, limits, metric, capacity, max_replicas, roofline)
    baseline = max((o for o in options if o.replicas == 1), key=lambda o: o.throughput)
    best, decision = choose(options, baseline, min_gain)
    return ReplicaPlan(
        replicas=best.replicas, max_batch=best.max_batch, threads_per_replica=best.threads_per_replica,
        predicted_or_measured=best.predicted_or_measured, throughput_metric=metric,
        expected_throughput=best.throughput, expected_latency_ms=best.latency_ms, baseline=baseline,
        gain_vs_baseline=best.throughput / baseline.throughput - 1 if baseline.throughput > 0 else 0.0,
        **capacity.model_dump(), options=sorted(options, key=lambda o: (o.replicas, o.batch)), note=note,
        decision=decision)


def _predicted(table: SweepTable, b_opt_point: Point, limits: list[RunLimit], metric: str, replicas: int,
               roofline: ReplicaScale | None) -> PlanOption:
    """Copies of B_opt; with a roofline, copies of the largest measured batch up to B_opt that it predicts
    within the SLO (replicas share the device, so each may need a smaller batch than one engine alone)."""
    if roofline is not None:
        smaller = [p for p in reversed(table.singles()) if p.batch <= b_opt_point.batch and p.key != b_opt_point.key]
        candidates = [option(p, limits, metric, replicas, scale, _one_engine(table, metric, replicas * p.batch))
                      for p in [b_opt_point, *smaller] if (scale := roofline(p, replicas)) is not None]
        if candidates:  # else the roofline knows none of them: the upper bound, as without it
            return next((o for o in candidates if o.meets_slo), candidates[0])
    return option(b_opt_point, limits, metric, replicas,
                  throughput_low=_one_engine(table, metric, replicas * b_opt_point.batch))


def _one_engine(table: SweepTable, metric: str, total_batch: int) -> float:
    """The most one engine measured at no more than `total_batch`: the low end of a predicted option."""
    return max(p.throughput(metric) for p in table.singles() if p.batch <= total_batch)
