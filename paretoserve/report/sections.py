"""The report's sections as HTML fragments, each from the sweep, the recommendation and its plots."""

from __future__ import annotations

from html import escape

from paretoserve.report.html_page import (Plot, fmt, gigabytes, image, paragraph, percent, preformatted, section,
                                          table)
from paretoserve.report.plots_pareto import frontiers_for, non_dominated
from paretoserve.report.recommendation import Recommendation
from paretoserve.report.sweep_data import SweepData, point_label, replicas_of


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
    return section("overview", "Sweep", table(None, rows, text_columns=2))


def recommendation(rec: Recommendation | None, no_advice_reason: str) -> str:
    """B_opt, the SLO, why larger batches were rejected and the memory freed; or why there is none."""
    if rec is None:
        return section("recommendation", "Recommendation",
                       paragraph(f"No recommendation: {no_advice_reason}. The measurements below are complete.",
                                 "missing"))
    parts = []
    if rec.b_opt is None:
        parts.append(paragraph(f"No recommendation: no measured batch cap meets the SLO ({rec.slo_text}) and the "
                               "efficiency floor; the reasons for each batch are below.", "missing"))
    else:
        parts.append(paragraph(f"Recommended batch cap B_opt = {rec.b_opt}, keeping "
                               f"{percent(rec.throughput_fraction)} of the best measured throughput.", "headline"))
        parts.append(table(None, [
            ["SLO", rec.slo_text],
            ["KV memory needed at B_opt", f"{gigabytes(rec.kv_need_bytes)} ({percent(rec.kv_need_fraction)} of "
                                          "device memory)"],
            ["memory freed against the default allocation", f"{gigabytes(rec.freed_bytes)} "
                                                            f"({percent(rec.freed_fraction)} of device memory)"],
            ["replica plan", _plan_text(rec)]], text_columns=2))
    if rec.rejected:
        parts.append(paragraph("Larger batch caps and why they were rejected:" if rec.b_opt is not None
                               else "Every batch cap and why it was rejected:"))
        parts.append(table(["batch cap", "reason"], rec.rejected, text_columns=2))
    return section("recommendation", "Recommendation", *parts)


def curves(throughput: Plot | None, latency: Plot | None) -> str:
    parts = [image(p) for p in (throughput, latency) if p is not None]
    return section("throughput-latency", "Throughput and latency vs batch cap",
                   *(parts or [paragraph("No point records throughput or latency.", "missing")]))


def frontiers(data: SweepData, plot: Plot | None) -> str:
    """The frontier plot and, per frontier, its non-dominated points with their configs."""
    if plot is None:
        return section("pareto", "Pareto frontiers", paragraph("No point has the fields a frontier needs.", "missing"))
    parts = [image(plot)]
    points = list(data.points)
    for frontier in frontiers_for(points):
        rows = [[point_label(p), p["config"].get("kv_tokens"), p["config"].get("threads"),
                 frontier.shown(p, frontier.x_field), frontier.shown(p, frontier.y_field)]
                for p in non_dominated(points, frontier)]
        parts.append(f"<h3>{escape(frontier.title)}</h3>")
        parts.append(table(["config", "kv_tokens", "threads", frontier.x_label, frontier.y_label], rows))
    return section("pareto", "Pareto frontiers", *parts)


def memory(rec: Recommendation | None, plot: Plot | None, no_advice_reason: str) -> str:
    if plot is None or rec is None or rec.memory is None:
        why = no_advice_reason if rec is None else "the advice has no B_opt or no KV figures to break down"
        return section("memory", "Memory breakdown", paragraph(f"No memory breakdown: {why}.", "missing"))
    m = rec.memory
    text = (f"Of {gigabytes(m.device_bytes)} device memory, B_opt = {rec.b_opt} needs {gigabytes(m.kv_need_bytes)} "
            f"of KV cache; {gigabytes(m.kv_freed_bytes)} of the default KV allocation is freed.")
    if m.weights_bytes is None:
        text += " The advice does not give the weights' size: they are counted in 'rest'."
    return section("memory", "Memory breakdown", image(plot), paragraph(text))


def energy(data: SweepData, plot: Plot | None) -> str:
    """The energy plot, marked when any figure is estimated; said plainly when nothing was measured."""
    sources = data.energy_sources()
    notes = sorted({p["energy_note"] for p in data.points if p.get("energy_note")})
    parts = []
    if "estimated" in sources:
        parts.append(paragraph("ESTIMATED energy: the figures marked 'estimated' were not measured but derived "
                               "from engine CPU time x an assumed power per busy core.", "estimated"))
    if plot is None:
        parts.append(paragraph(f"No energy was measured for this sweep (energy_source: "
                               f"{', '.join(sorted(sources))}).", "missing"))
    else:
        parts.append(image(plot))
    parts += [paragraph(f"Note: {n}") for n in notes]
    return section("energy", "Energy per output token", *parts)


def replicas(data: SweepData, rec: Recommendation | None, plot: Plot | None) -> str:
    if plot is None:
        return section("replicas", "Replicas", paragraph(
            "No replica comparison: the sweep has no replica points and there is no replica plan.", "missing"))
    measured = data.replica_points()
    text = (f"{len(measured)} measured replica configurations beside the single engine." if measured else
            "The sweep has no replica points: the plan shown is PREDICTED by the advice, not measured.")
    return section("replicas", "Replicas", image(plot), paragraph(text, None if measured else "estimated"))


def commands(rec: Recommendation | None, no_advice_reason: str) -> str:
    if rec is None or not rec.commands:
        why = no_advice_reason if rec is None else "the advice gives no launch commands (no B_opt)"
        return section("commands", "Launch commands", paragraph(f"No launch commands: {why}.", "missing"))
    parts = []
    for name, line in rec.commands:
        if name:
            parts.append(f"<h3>{escape(name)}</h3>")
        parts.append(preformatted(line))
    return section("commands", "Launch commands", *parts)


def measurements(data: SweepData) -> str:
    """Every point as measured, then the failed points with their reasons."""
    headers = ["point", "kv_tokens", "threads", "output tok/s", "req/s", "mean TPOT ms", "p99 TPOT ms",
               "mean ITL ms", "p99 ITL ms", "mean TTFT ms", "J per output token", "KV peak"]
    rows = [[point_label(p), p["config"].get("kv_tokens"), p["config"].get("threads"), p.get("output_throughput"),
             p.get("request_throughput"), p.get("mean_tpot_ms"), p.get("p99_tpot_ms"), p.get("mean_itl_ms"),
             p.get("p99_itl_ms"), p.get("mean_ttft_ms"), _energy_cell(p), percent(p.get("kv_peak_fraction"))]
            for p in sorted(data.points, key=lambda p: (replicas_of(p), p["config"]["max_batch"]))]
    parts = [table(headers, rows)]
    if data.failed:
        parts.append(paragraph(f"{len(data.failed)} failed points:"))
        parts.append(table(["point", "reason"], [[r.get("key", "?"), r.get("reason", "?")] for r in data.failed],
                           text_columns=2))
    return section("measurements", "Measurements", *parts)


def _energy_cell(point: dict) -> str:
    value, source = point.get("energy_per_output_token_j"), point.get("energy_source") or "none"
    if value is None or source == "none":
        return "-"
    return f"{fmt(value)} ({'ESTIMATED' if source == 'estimated' else source})"


def _plan_text(rec: Recommendation) -> str:
    plan = rec.replica_plan
    if plan is None:
        return "-"
    throughput = f", {fmt(plan.output_throughput)} tok/s" if plan.output_throughput is not None else ""
    return f"{plan.replicas} x B={plan.max_batch} ({'measured' if plan.measured else 'PREDICTED'}{throughput})"


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "-"
    return "-" if value is None else str(value)
