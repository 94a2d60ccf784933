"""Plots of the capacity runs over the offered request rate (req/s): TTFT and TPOT (p50, p99, ms) with the SLO's
bounds, and the share of requests within the SLO with its 95 % interval, the target and the knee; the traffic's
low, mean and peak rates drawn on both."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

# through advise, which judges by them: report may not import bench (ARCHITECTURE.md's layers)
from paretoserve.advise.capacity import CapacityAdvice
from paretoserve.report.figure import B_OPT_COLOUR, colour, draw, new_figure, pairs

SLO_COLOUR = "#d62728"
TRAFFIC_COLOUR = "#9467bd"
# (panel title, metric); each panel draws the median and the p99 of the metric over the rate
LATENCY_PANELS = (("TTFT (time to first token)", "ttft_ms"), ("TPOT (time per output token)", "tpot_ms"))
LATENCY_STATS = (("median_", "--", "p50"), ("p99_", ":", "p99"))
# (name, Traffic field, line style): the quietest window, the mean and the busiest window
TRAFFIC_LINES = (("low", "low_rps", (0, (1, 3))), ("mean", "mean_rps", "-"), ("peak", "peak_rps", "--"))


def capacity_figures(capacity: CapacityAdvice) -> dict[str, tuple[Figure | None, str]]:
    """The capacity section's plots keyed by their names in build.CAPACITY_PLOT_NAMES, each with its description."""
    return {"capacity_latency": (latency_vs_rate(capacity), "TTFT and TPOT (p50, p99) vs offered request rate"),
            "capacity_attainment": (attainment_vs_rate(capacity),
                                    "Share of requests within the SLO vs offered request rate (95 % intervals)")}


def latency_vs_rate(capacity: CapacityAdvice) -> Figure | None:
    """One panel per metric measured (TTFT, TPOT): p50 and p99 over the rate, the SLO's bounds, knee and traffic."""
    rates = [f.rate_rps for f in capacity.rates]
    panels = [(title, metric) for title, metric in LATENCY_PANELS
              if any(pairs(rates, _values(capacity, f"{stat}{metric}"))[0] for stat, _, _ in LATENCY_STATS)]
    if not panels:
        return None
    fig = new_figure(3.6 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, metric) in zip(axes, panels, strict=True):
        for i, (stat, style, label) in enumerate(LATENCY_STATS):
            values = _values(capacity, f"{stat}{metric}")
            draw(ax, rates, values, [None] * len(rates), marker="o", markersize=3, linestyle=style, color=colour(i),
                 label=label)
        for name, bound_ms, per_request in capacity.bounds(metric):
            ax.axhline(bound_ms, color=SLO_COLOUR, linewidth=1, linestyle="-" if per_request else "-.",
                       label=f"SLO {name}" + (" (each request)" if per_request else " (each run)"))
        _rate_axis(ax, capacity)
        ax.set_yscale("log" if metric == "ttft_ms" else "linear")  # TTFT grows by orders past the knee
        ax.set_ylabel("ms")
        ax.set_title(title, fontsize=9)
    handles = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(3, len(handles)), fontsize=7)
    return fig


def attainment_vs_rate(capacity: CapacityAdvice) -> Figure | None:
    """Attainment over the rate with its 95 % (Wilson) intervals; rates that met the target filled, others hollow."""
    if not capacity.rates:
        return None
    fig = new_figure(6.4, 4.4)
    ax = fig.add_subplot()
    rates = [f.rate_rps for f in capacity.rates]
    draw(ax, rates, [f.attainment for f in capacity.rates], [f.attainment_ci95 for f in capacity.rates],
         color=colour(0), linewidth=1, label="attainment (95 % interval)")
    for met in (True, False):
        shown = [f for f in capacity.rates if f.meets == met]
        ax.scatter([f.rate_rps for f in shown], [f.attainment for f in shown], s=22, zorder=3, edgecolors=colour(0),
                   facecolors=colour(0) if met else "white", label="meets the target" if met else "misses it")
    ax.axhline(capacity.attainment_target, color=SLO_COLOUR, linewidth=1,
               label=f"target {capacity.attainment_target:.0%}")
    ax.scatter([capacity.knee.rate_rps], [capacity.knee.attainment], s=120, zorder=4, facecolors="none",
               edgecolors=B_OPT_COLOUR, linewidths=2, label="knee")
    _rate_axis(ax, capacity)
    low = min(min(f.attainment_ci95[0] for f in capacity.rates), capacity.attainment_target)
    ax.set_ylim(max(0.0, low - 0.05), 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("requests within the SLO")
    ax.set_title(f"SLO attainment vs request rate ({capacity.slo})", fontsize=9)
    fig.legend(loc="outside lower center", ncols=4, fontsize=7)  # below the axes: no corner is clear of data
    return fig


def _values(capacity: CapacityAdvice, field: str) -> list[float | None]:
    return [getattr(f, field) for f in capacity.rates]


def _rate_axis(ax: Axes, capacity: CapacityAdvice) -> None:
    """The rate axis from 0, the knee (the capacity, and the span up to the first failing rate) and the traffic."""
    ax.axvline(capacity.capacity_rps, color=B_OPT_COLOUR, linestyle=":", linewidth=1.5,
               label=f"capacity {capacity.capacity_rps:.3g} req/s")
    if capacity.failing_rps is not None:
        ax.axvspan(capacity.capacity_rps, capacity.failing_rps, color=B_OPT_COLOUR, alpha=0.12,
                   label="knee lies here")
    if capacity.traffic is not None:
        for name, field, style in TRAFFIC_LINES:
            rate = getattr(capacity.traffic, field)
            if rate is not None:
                ax.axvline(rate, color=TRAFFIC_COLOUR, linestyle=style, linewidth=1,
                           label=f"traffic {name} {rate:.3g} req/s")
    ax.set_xlim(left=0)
    ax.set_xlabel("offered request rate (req/s)")
    ax.grid(True, alpha=0.3)
