"""The placement page's sections as HTML fragments: the placement, each model's B_opt and curve, the memory map,
the placement against the alternatives and the mix's capacity."""

from __future__ import annotations

from html import escape

from paretoserve.advise.memory_map import MEMORY_CEILING
from paretoserve.advise.placement_view import PlacedModel, PlacementView
from paretoserve.report.html_page import Plot, fmt, gigabytes, image, paragraph, percent, preformatted, section, table
from paretoserve.results.placement import MixCapacityFigures


def overview(view: PlacementView, model_reports: dict[str, str]) -> str:
    """What was placed where: the file, the device, each model's share, and links to each model's own report."""
    c = view.colocation
    rows = [["placement", str(view.path)], ["models", ", ".join(m.name for m in view.models)],
            ["mix (share of the requests)", ", ".join(f"{m.name} {m.share:.2f}" for m in view.models)],
            ["device", f"{view.cores} cores, memory {gigabytes(view.memory.device_bytes)}"],
            ["mix throughput", f"{fmt(c.placement_rps)} req/s placed on one device; time-sharing "
                               f"{fmt(c.time_sharing_rps)}; one device per model {fmt(c.solo_rps)} on {c.devices} "
                               "devices"]]
    links = "".join(f'<li><a href="{escape(href)}">{escape(name)}: its own report</a></li>'
                    for name, href in model_reports.items())
    return section("placement", "Placement", table(None, rows, text_columns=(0, 1)),
                   *([f"<ul>{links}</ul>"] if links else []))


def models(view: PlacementView, curves: dict[str, Plot | None], missing: dict[str, str]) -> str:
    """Each model's B_opt from its own tune, as placed, and its throughput over the batch cap."""
    parts = []
    for m in view.models:
        parts += [f"<h3>{escape(m.name)}</h3>", paragraph(_b_opt_text(m), "headline")]
        plot = curves.get(m.name)
        parts.append(image(plot) if plot is not None else
                     paragraph(f"No curve: {missing.get(m.name, 'its sweep has no throughput')}.", "missing"))
    return section("models", "Each model: B_opt and its throughput vs batch cap", *parts)


def memory_map(view: PlacementView, plot: Plot | None) -> str:
    """The bar of the device and each model's figures: weights and KV per replica, its share, what stays free."""
    memory = view.memory
    rows = [[m.name, mm.replicas, mm.max_batch, gigabytes(mm.weights_bytes), gigabytes(mm.kv_bytes), mm.kv_tokens,
             percent(mm.mem_fraction), gigabytes(mm.total_bytes)]
            for m, mm in zip(view.models, memory.models, strict=True)]
    device = memory.device_bytes
    used = (f"Used {gigabytes(memory.used_bytes)} of {gigabytes(device)} ({percent(memory.used_bytes / device)}), "
            f"free {gigabytes(memory.free_bytes)}. Each engine's memory share (vLLM's --gpu-memory-utilization, "
            f"SGLang's --mem-fraction-static) is its need plus an equal part of what the needs leave below "
            f"{MEMORY_CEILING:.0%} of the device." if device else
            f"Used {gigabytes(memory.used_bytes)}; the device's memory is not known (give --device-memory).")
    parts = [image(plot)] if plot is not None else []
    return section("memory-map", "Memory map of the device", *parts, paragraph(used),
                   table(["model", "replicas", "cap", "weights per replica", "KV per replica", "KV tokens per replica",
                          "memory share", "total"], rows))


def arrangements(view: PlacementView, plot: Plot | None) -> str:
    """The mix throughput of each arrangement, and each model's rates and interference."""
    c = view.colocation
    rows = [["placement", 1, c.placement_rps, c.placement_rps, "-"],
            ["time-sharing", 1, c.time_sharing_rps, c.time_sharing_rps, _times(c.ratio(c.time_sharing_rps))],
            [f"one device per model (needs {c.devices} devices)", c.devices, c.solo_rps, c.solo_per_device_rps,
             _times(c.ratio(c.solo_per_device_rps))]]
    per_model = [[m.name, m.share, m.metric, m.placement_rps, m.time_sharing_rps, m.solo_rps, m.interference]
                 for m in c.models]
    parts = [image(plot)] if plot is not None else []
    parts += [paragraph("Mix throughput: the largest total request rate R at which every model i gets its share "
                        "share_i x R within the rate it sustained, min_i(rate_i / share_i), every model loaded at "
                        f"once at saturation ({c.runs} runs in {c.wall_s / 60:.1f} min)."),
              table(["arrangement", "devices", "mix req/s", "req/s per device", "placement / it, per device"], rows),
              paragraph("Each model's rate, requests/s (goodput where it has an SLO); interference is its placement "
                        "rate over its rate alone on the device."),
              table(["model", "share", "rate", "placement", "time-sharing", "solo", "placement / solo"], per_model,
                    text_columns=(0, 2))]
    parts += [paragraph(f"Warning: {w}", "estimated") for w in c.warnings]
    return section("arrangements", "The placement against the alternatives", *parts)


def mix_capacity(capacity: MixCapacityFigures) -> str:
    """The mix's capacity under every model's SLO, and every total rate tried with each model's figures there."""
    head = (f"Mix capacity: {fmt(capacity.capacity_rps)} req/s in all, every model keeping "
            f"{percent(capacity.attainment)} of its requests within its SLO." if capacity.capacity_rps is not None
            else f"No mix capacity found: even the lowest rate tried missed ({capacity.stop_reason or 'no reason'}).")
    names = [m.name for m in capacity.runs[0].models] if capacity.runs else []
    headers = ["total req/s", "verdict", *(f"{n} {what}" for n in names for what in ("req/s", "within its SLO"))]
    rows = [[run.rate_rps, "met" if run.met else "missed",
             *(v for m in run.models for v in (m.rate_rps, percent(m.attainment) + ("" if m.met else " (missed)")))]
            for run in capacity.runs]
    slos = {m.name: m.slo for run in capacity.runs for m in run.models if m.slo}
    parts = [paragraph(head, "headline"), table(headers, rows, text_columns=(1,))]
    if slos:
        parts.append(paragraph("SLOs: " + "; ".join(f"{n}: {s}" for n, s in slos.items()) + "."))
    if capacity.stop_reason and capacity.capacity_rps is not None:
        parts.append(paragraph(f"The search stopped: {capacity.stop_reason}."))
    return section("mix-capacity", "Mix capacity under the SLOs", *parts)


def serve(view: PlacementView) -> str:
    return section("serve", "Serve it", preformatted(view.serve))


def _b_opt_text(m: PlacedModel) -> str:
    a, plan = m.advice, m.advice.replica_plan
    cap = f" (batch cap {a.b_opt_max_batch})" if a.b_opt_max_batch != a.b_opt else ""
    kv = f", KV {m.kv_tokens:,} tokens" if m.kv_tokens is not None else ""
    return (f"B_opt = {a.b_opt}{cap} under {a.slo.text}: {fmt(a.throughput_at_b_opt)} {a.throughput_metric}. "
            f"Alone its plan is {plan.replicas} x B={plan.max_batch} ({plan.predicted_or_measured}); placed: "
            f"{m.replicas} x cap {m.max_batch} on {m.threads_per_replica} threads each{kv}, share {m.share:.2f} of "
            "the requests.")


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f} x"
