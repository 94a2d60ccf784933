"""Plots over the batch cap: throughput, latency percentiles and energy per output token."""

from __future__ import annotations

from matplotlib.figure import Figure

from paretoserve.report.figure import BOptMark, batch_axis, colour, draw, new_figure, pairs
from paretoserve.report.sweep_data import Series
from paretoserve.results.point import Point

# (panel title, summary field prefix); each panel draws mean, median and p99 where measured.
LATENCY_PANELS = (("TPOT (time per output token)", "tpot_ms"), ("ITL (inter-token latency)", "itl_ms"),
                  ("TTFT (time to first token)", "ttft_ms"))
LATENCY_STATS = (("mean_", "-", "mean"), ("median_", "--", "p50"), ("p99_", ":", "p99"))


def throughput_vs_batch(series: list[Series], b_opt: BOptMark | None) -> Figure | None:
    """Output tokens per second over the batch cap, one line per series."""
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    drawn = []
    for i, s in enumerate(series):
        xs, _ = pairs(s.batches(), s.values("output_throughput"))
        if xs:
            draw(ax, s.batches(), s.values("output_throughput"), s.intervals("output_throughput"), marker="o",
                 color=colour(i), label=s.label)
            drawn.extend(xs)
    if not drawn:
        return None
    batch_axis(ax, drawn, b_opt)
    ax.set_ylabel("output throughput (tok/s)")
    ax.set_ylim(bottom=0)
    ax.set_title("Throughput vs batch cap", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")  # a fixed corner: "best" costs a search per legend
    return fig


def latency_vs_batch(series: list[Series], b_opt: BOptMark | None, slo_limits_ms: dict[str, float]) -> Figure | None:
    """One panel per latency metric measured (TPOT, ITL, TTFT): mean, p50 and p99 over the batch cap."""
    panels = [(title, name) for title, name in LATENCY_PANELS
              if any(p.figure(f"{stat}{name}") is not None for s in series for p in s.points for stat, _, _ in
                     LATENCY_STATS)]
    if not panels:
        return None
    fig = new_figure(3.4 * len(panels), 3.6 + 0.2 * len(series))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, name) in zip(axes, panels, strict=True):
        drawn = []
        for i, s in enumerate(series):
            for stat, style, stat_label in LATENCY_STATS:
                field = f"{stat}{name}"
                xs, _ = pairs(s.batches(), s.values(field))
                if xs:
                    draw(ax, s.batches(), s.values(field), s.intervals(field), marker="o", markersize=3,
                         linestyle=style, color=colour(i),
                         label=f"{stat_label}" if len(series) == 1 else f"{s.label} {stat_label}")
                    drawn.extend(xs)
        for field, limit in slo_limits_ms.items():
            if field.endswith(name):
                ax.axhline(limit, color="#d62728", linewidth=1, label=f"SLO {field} <= {limit:.4g} ms")
        batch_axis(ax, drawn, b_opt)
        ax.set_yscale("log" if name == "ttft_ms" else "linear")
        ax.set_ylabel("ms")
        ax.set_title(title, fontsize=9)
    handles = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(4, len(handles)), fontsize=7)
    return fig


def energy_per_token(series: list[Series], b_opt: BOptMark | None) -> Figure | None:
    """Joules per output token over the batch cap; estimated figures drawn hollow and named so."""
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    drawn, sources = [], set()
    for i, s in enumerate(series):
        by_source: dict[str, list[Point]] = {}
        for p in s.points:
            if p.energy_per_output_token_j is not None and p.energy_source not in (None, "none"):
                by_source.setdefault(p.energy_source, []).append(p)
        for source, points in by_source.items():
            xs = [p.max_batch for p in points]
            ys = [p.energy_per_output_token_j for p in points]
            intervals = [p.interval("energy_per_output_token_j") for p in points]
            estimated = source == "estimated"
            draw(ax, xs, ys, intervals, marker="o", color=colour(i), linestyle="--" if estimated else "-",
                 markerfacecolor="none" if estimated else colour(i),
                 label=f"{s.label} ({'ESTIMATED' if estimated else 'measured: ' + source})")
            drawn.extend(xs)
            sources.add(source)
    if not drawn:
        return None
    batch_axis(ax, drawn, b_opt)
    ax.set_yscale("log")
    ax.set_ylabel("energy per output token (J)")
    title = "Energy per output token"
    if "estimated" in sources:
        title += " (ESTIMATED, not measured)" if sources == {"estimated"} else " (partly ESTIMATED)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    return fig
