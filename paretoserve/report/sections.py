"""The report's sections as HTML fragments, each from the sweep, the recommendation and its plots."""

from __future__ import annotations

from html import escape

from paretoserve.advise import Advice
from paretoserve.advise.capacity import CapacityAdvice
from paretoserve.advise.pareto import Frontier
from paretoserve.report.html_page import Plot, fmt, gigabytes, image, paragraph, percent, preformatted, section, table
from paretoserve.report.plots_pareto import axis_label, frontier_label, frontier_title, shown
from paretoserve.report.sweep_data import SweepData, point_label
from paretoserve.results.point import Point


def overview(data: SweepData) -> str:
    """Where the data comes from: the sweep directory, the machine and the workload."""
    env = data.environment
    gpus = ", ".join(f"{g.get('name', '?')} ({gigabytes(g.get('memory_total_bytes'))})" for g in env.get("gpus") or [])
    rows = [["sweep directory", str(data.directory)],
            ["points", f"{len(data.points)} ok, {len(data.failed)} failed"],
            ["model", _text(data.spec.get("model"))],
            ["source", env.get("source") or "measured by paretoserve sweep"],
            ["CPU", f"{env.get('cpu_model') or '-'} ({env.get('cpu_cores') or '?'} cores)" if env.get("cpu_model")
             else "-"],
            ["GPU", gpus or "none recorded"],
            ["machine memory", gigabytes(env.get("memory_total_bytes"))]]
    workload = data.spec.get("workload") or {}
    if workload:
        rows.append(["workload", ", ".join(f"{k}={v}" for k, v in workload.items() if v not in (None, "None"))])
    return section("overview", "Sweep", table(None, rows, text_columns=(0, 1)))


def recommendation(advice: Advice | None, no_advice_reason: str) -> str:
    """B_opt, the SLO, why larger batches were rejected and the memory freed; or why there is none."""
    if advice is None:
        return section("recommendation", "Recommendation",
                       paragraph(f"No recommendation: {no_advice_reason}. The measurements below are complete.",
                                 "missing"))
    cap = f" (batch cap {advice.b_opt_max_batch})" if advice.b_opt_max_batch != advice.b_opt else ""
    sure = f" ({advice.b_opt_certainty})" if advice.b_opt_certainty else ""
    parts = [paragraph(f"Recommended batch B_opt = {advice.b_opt}{cap}{sure}, keeping "
                       f"{percent(advice.throughput_fraction_at_b_opt)} of the best measured "
                       f"{advice.throughput_metric} ({fmt(advice.throughput_at_b_opt)} of "
                       f"{fmt(advice.best_throughput)}).", "headline")]
    m = advice.memory
    parts.append(table(None, [
        ["SLO", advice.slo.text or "none"],
        ["batching efficiency floor", f"T(B) / (B x T(1)) > {advice.slo.min_efficiency:g}"],
        ["KV memory B_opt needs", f"{gigabytes(m.kv_need_bytes)} ({percent(m.kv_need_fraction)} of the default "
                                  f"KV allocation of {gigabytes(m.default_kv_bytes)}; {m.kv_need_source})"],
        ["memory freed", f"{gigabytes(m.freed_bytes)} ({percent(m.freed_fraction)} of "
                         f"{gigabytes(m.device_memory_bytes)} device memory)"],
        ["replica plan", _plan_text(advice)]], text_columns=(0, 1)))
    if advice.rejected:
        parts.append(paragraph("Larger batches and why they were rejected:"))
        parts.append(table(["batch", "batch cap", advice.throughput_metric, "efficiency", "reason"],
                           [[v.batch, v.max_batch, bracketed(v.throughput, v.throughput_ci95), v.efficiency,
                             "; ".join(v.reasons)]
                            for v in advice.rejected], text_columns=(4,)))
    else:
        parts.append(paragraph("No larger batch was measured: B_opt is the largest batch of the sweep."))
    return section("recommendation", "Recommendation", *parts)


def curves(throughput: Plot | None, latency: Plot | None) -> str:
    parts = [image(p) for p in (throughput, latency) if p is not None]
    return section("throughput-latency", "Throughput and latency vs batch cap",
                   *(parts or [paragraph("No point records throughput or latency.", "missing")]))


def frontiers(found: list[Frontier], plot: Plot | None, estimated_energy: bool) -> str:
    """The frontier plot and, per frontier, its non-dominated points with their configs."""
    if plot is None:
        return section("pareto", "Pareto frontiers", paragraph("No point has the fields a frontier needs.", "missing"))
    parts = [image(plot)]
    for f in (f for f in found if f.points):
        x_label, y_label = axis_label(f.x, estimated_energy), axis_label(f.y, estimated_energy)
        parts.append(f"<h3>{escape(frontier_title(f, estimated_energy))}</h3>")
        if f.note:
            parts.append(paragraph(f.note))
        parts.append(table(["config", "kv_tokens", "threads", x_label, y_label],
                           [[frontier_label(p), p.config.get("kv_tokens"), p.config.get("threads"), shown(f.x, p.x),
                             shown(f.y, p.y)] for p in f.points]))
    return section("pareto", "Pareto frontiers", *parts)


def memory(advice: Advice | None, plot: Plot | None, no_advice_reason: str) -> str:
    """The breakdown bar and where each of its figures comes from."""
    if advice is None:
        return section("memory", "Memory breakdown", paragraph(f"No memory breakdown: {no_advice_reason}.",
                                                               "missing"))
    m = advice.memory
    rows = [["device memory", gigabytes(m.device_memory_bytes), m.device_memory_source],
            ["weights", gigabytes(m.weights_bytes), m.weights_source],
            ["KV needed at B_opt", gigabytes(m.kv_need_bytes), m.kv_need_source],
            ["default KV allocation", gigabytes(m.default_kv_bytes), m.default_kv_source],
            ["KV freed", gigabytes(m.freed_bytes), "default KV allocation - KV needed"]]
    parts = [image(plot)] if plot is not None else [paragraph(
        "No breakdown bar: the device memory is not known (give --device-memory).", "missing")]
    return section("memory", "Memory breakdown", *parts, table(["", "size", "from"], rows, text_columns=(0, 2)))


def energy(data: SweepData, plot: Plot | None) -> str:
    """The energy plot, marked when any figure is estimated; said plainly when nothing was measured."""
    sources = data.energy_sources()
    notes = sorted({p.energy_note for p in data.points if p.energy_note})
    parts = []
    if "estimated" in sources:
        parts.append(paragraph("ESTIMATED energy: the figures marked 'estimated' were not measured but derived "
                               "from engine CPU time x an assumed power per busy core.", "estimated"))
    if plot is None:
        parts.append(paragraph(f"No energy was measured for this sweep (energy_source: "
                               f"{', '.join(sorted(sources))}).", "missing"))
    else:
        parts.append(image(plot))
        counts = {source: sum(1 for p in data.points if (p.energy_source or "none") == source)
                  for source in sorted(sources)}
        parts.append(paragraph("Energy source: " + "; ".join(f"{source} ({n} of {len(data.points)} points)"
                                                            for source, n in counts.items()) + "."))
    parts += [paragraph(f"Note: {n}") for n in notes]
    return section("energy", "Energy per output token", *parts)


def replicas(data: SweepData, advice: Advice | None, plot: Plot | None) -> str:
    """The replica comparison with the plan's note; a predicted plan is said to be predicted."""
    if plot is None:
        why = "the sweep has no replica points" + ("" if advice else " and there is no advice to predict a plan")
        return section("replicas", "Replicas", paragraph(f"No replica comparison: {why}.", "missing"))
    if advice is None:
        return section("replicas", "Replicas", image(plot), paragraph(
            f"{len(data.replica_points())} measured replica configurations beside the best single engine."))
    plan = advice.replica_plan
    predicted = plan.predicted_or_measured == "predicted"
    rows = [[f"{o.replicas} x B={o.max_batch}", o.predicted_or_measured.upper() if o.predicted_or_measured ==
             "predicted" else o.predicted_or_measured, bracketed(o.throughput, o.throughput_ci95), o.throughput_low,
             o.latency_ms.get("mean_tpot_ms"), o.latency_ms.get("mean_itl_ms"),
             "yes" if o.meets_slo else "; ".join(o.reasons)] for o in plan.options if o.replicas > 1]
    roofline = f" The {advice.roofline.text()}." if advice.roofline else ""
    decision = f" {plan.decision[0].upper()}{plan.decision[1:]}." if plan.decision else ""
    parts = [image(plot), paragraph(f"Plan: {_plan_text(advice)}. {plan.note}.{decision}{roofline}",
                                    "estimated" if predicted else None)]
    if rows:
        parts.append(table(["replicas x cap", "kind", advice.throughput_metric, "pessimistic", "mean TPOT ms",
                            "mean ITL ms", "meets SLO"], rows, text_columns=(0, 1, 6)))
    return section("replicas", "Replicas", *parts)


def capacity(found: CapacityAdvice, latency: Plot | None, attainment: Plot | None) -> str:
    """The rate the plan sustains within the SLO, its plots, the replicas and devices the traffic needs with
    their arithmetic, and every rate run."""
    parts = [paragraph(f"{found.summary}.", "headline")]
    parts += [image(p) for p in (attainment, latency) if p is not None]
    knee = f"between {fmt(found.capacity_rps)} and {fmt(found.failing_rps)} req/s" \
        if found.failing_rps is not None else f"at or above {fmt(found.capacity_rps)} req/s (no rate run failed)"
    parts.append(paragraph(f"SLO: {found.slo or 'none'} (a bare limit judges each request, a prefixed one each "
                           f"run); target: {found.attainment_target * 100:g} % of requests within it. The knee lies "
                           f"{knee}. Runs: {found.directory}."))
    traffic = found.traffic
    if traffic is not None:
        rows = [[name, rate, replicas, devices] for name, rate, replicas, devices in (
            ("low", traffic.low_rps, found.replicas_at_low, None),
            ("mean", traffic.mean_rps, found.replicas_at_mean, found.devices_at_mean),
            ("peak", traffic.peak_rps, found.replicas_at_peak, found.devices_at_peak)) if rate is not None]
        parts += [paragraph(f"Traffic ({traffic.source}) with {found.headroom * 100:g} % headroom, on devices like "
                            f"the measured one ({found.replicas} x cap {found.max_batch} each):"),
                  table(["traffic", "req/s", "replicas", "devices"], rows)]
    parts.append(preformatted("\n".join(found.arithmetic)))
    parts.append(table(["offered req/s", "within the SLO [95 %]", "requests", "failed", "completed req/s",
                        "p50 TTFT ms", "p99 TTFT ms", "p50 TPOT ms", "p99 TPOT ms", "meets target"],
                       [[f.rate_rps, f"{percent(f.attainment)} [{percent(f.attainment_ci95[0])}, "
                                     f"{percent(f.attainment_ci95[1])}]", f.requests, f.failed, f.request_throughput,
                         f.median_ttft_ms, f.p99_ttft_ms, f.median_tpot_ms, f.p99_tpot_ms, "yes" if f.meets else "no"]
                        for f in found.rates], text_columns=(9,)))
    return section("capacity", "Capacity under the SLO", *parts)


def commands(advice: Advice | None, no_advice_reason: str) -> str:
    if advice is None:
        return section("commands", "Launch commands",
                       paragraph(f"No launch commands: {no_advice_reason}.", "missing"))
    c = advice.commands
    lines = [("embedded engine", c.engine), ("replica plan behind paretoserve serve", c.serve),
             ("llama-server", c.llama_server), ("vLLM", c.vllm), ("vLLM, KV cache sized in bytes", c.vllm_kv_bytes)]
    parts = [paragraph(f"KV budget per engine: {c.kv_tokens} tokens ({c.ctx_per_seq} tokens of context per "
                       "sequence x the batch cap).")]
    for name, line in lines:
        if line:
            parts += [f"<h3>{escape(name)}</h3>", preformatted(line)]
    return section("commands", "Launch commands", *parts)


def measurements(data: SweepData) -> str:
    """Every point as measured, then the failed points with their reasons."""
    headers = ["point", "kv_tokens", "threads", "output tok/s", "req/s", "mean TPOT ms", "p99 TPOT ms",
               "mean ITL ms", "p99 ITL ms", "mean TTFT ms", "J per output token", "KV peak"]
    fields = ("output_throughput", "request_throughput", "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms",
              "mean_ttft_ms")
    rows = [[point_label(p), p.kv_tokens, p.threads, *(_with_interval(p, f) for f in fields), _energy_cell(p),
             percent(p.kv_peak_fraction)] for p in sorted(data.points, key=lambda p: (p.replicas, p.max_batch))]
    repeated = max((p.repeats for p in data.points), default=1)
    parts = [table(headers, rows)]
    if repeated > 1:
        parts.insert(0, paragraph(f"Figures are means over up to {repeated} repeats of each point, with their "
                                  "95 % interval in brackets (Student's t over the repeats)."))
    if data.failed:
        parts.append(paragraph(f"{len(data.failed)} failed points:"))
        parts.append(table(["point", "reason"], [[r.get("key", "?"), r.get("reason", "?")] for r in data.failed],
                           text_columns=(0, 1)))
    return section("measurements", "Measurements", *parts)


def _with_interval(point: Point, field: str):
    """A point's figure, with its 95 % interval over repeats in brackets where it has one."""
    return bracketed(point.figure(field), point.interval(field))


def bracketed(value, bounds):
    """`value` with its 95 % interval in brackets after it; `value` as it is without one."""
    return f"{fmt(value)} [{fmt(bounds[0])}, {fmt(bounds[1])}]" if bounds and value is not None else value


def _energy_cell(point: Point) -> str:
    value, source = point.energy_per_output_token_j, point.energy_source or "none"
    if value is None or source == "none":
        return "-"
    return f"{fmt(value)} ({'ESTIMATED' if source == 'estimated' else source})"


def _plan_text(advice: Advice) -> str:
    plan = advice.replica_plan
    kind = "PREDICTED" if plan.predicted_or_measured == "predicted" else "measured"
    return (f"{plan.replicas} x B={plan.max_batch} ({kind}), {fmt(plan.expected_throughput)} "
            f"{advice.throughput_metric}, {plan.gain_vs_baseline:+.1%} against the best single engine")


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "-"
    return "-" if value is None else str(value)
