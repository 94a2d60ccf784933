"""write_report: a sweep directory and its advice -> one self-contained HTML file plus its plots as PNGs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from paretoserve.advise import Advice
from paretoserve.advise.pareto import Frontier
from paretoserve.report import sections
from paretoserve.report.figure import BOptMark, to_png
from paretoserve.report.html_page import Plot, page
from paretoserve.report.plots_batch import energy_per_token, latency_vs_batch, throughput_vs_batch
from paretoserve.report.plots_capacity import capacity_figures
from paretoserve.report.plots_pareto import frontiers_figure
from paretoserve.report.plots_plan import advice_bars, measured_bars, memory_breakdown_figure, replica_figure
from paretoserve.report.recommendation import as_advice, sweep_frontiers
from paretoserve.report.sweep_data import ReportError, SweepData, batch_series, load_sweep
from paretoserve.results.sweep import Sweep

PLOT_NAMES = ("throughput_vs_batch", "latency_vs_batch", "pareto_frontiers", "memory_breakdown", "energy_per_token",
              "replicas")
CAPACITY_PLOT_NAMES = ("capacity_latency", "capacity_attainment")  # only where the advice has a capacity


@dataclass(frozen=True)
class ReportConfig:
    """How the report is drawn."""

    dpi: int = 110  # PNG resolution: 110 keeps text sharp on screen at ~50-150 KB per plot

    def __post_init__(self) -> None:
        if not 30 <= self.dpi <= 600:
            raise ReportError(f"--dpi must be in [30, 600]; got {self.dpi}")


@dataclass(frozen=True)
class ReportFiles:
    """What write_report wrote: the HTML file and the PNGs beside it."""

    html: Path
    plots: tuple[Path, ...]
    b_opt: int | None


def write_report(sweep: str | Path | Sweep, out_html: str | Path, advice: Advice | dict | None = None,
                 no_advice_reason: str | None = None, config: ReportConfig = ReportConfig()) -> ReportFiles:
    """Write `out_html` and `<stem>_<plot>.png` beside it for `sweep` (read already, or its directory).

    `advice` is `advise()`'s result (or its `model_dump()`); without it the report shows the measurements
    and says `no_advice_reason` where the recommendation would be (see `compute_advice`).
    """
    data = load_sweep(sweep)
    advice = as_advice(advice)
    reason = no_advice_reason or "no advice was given"
    out_html = Path(out_html)
    make_directory(out_html.parent)  # before the plots: an unwritable -o fails at once
    frontiers = sweep_frontiers(data.points, advice)
    plots = make_plots(data, advice, frontiers, out_html.stem, config)
    estimated = "estimated" in data.energy_sources()
    capacity = advice.capacity if advice else None
    capacity_section = [sections.capacity(capacity, plots.get("capacity_latency"),
                                          plots.get("capacity_attainment"))] if capacity else []
    html = page(f"paretoserve report: {data.directory.name}", [
        sections.overview(data), sections.recommendation(advice, reason),
        sections.curves(plots.get("throughput_vs_batch"), plots.get("latency_vs_batch")),
        sections.frontiers(frontiers, plots.get("pareto_frontiers"), estimated),
        sections.memory(advice, plots.get("memory_breakdown"), reason),
        sections.energy(data, plots.get("energy_per_token")),
        sections.replicas(data, advice, plots.get("replicas")), *capacity_section,
        sections.commands(advice, reason), sections.measurements(data)])
    written = write_files(out_html, html, plots, (*PLOT_NAMES, *CAPACITY_PLOT_NAMES))
    return ReportFiles(out_html, written, advice.b_opt if advice else None)


def make_plots(data: SweepData, advice: Advice | None, frontiers: list[Frontier], stem: str,
               config: ReportConfig) -> dict[str, Plot]:
    """Every plot the data allows, keyed by its name in PLOT_NAMES or CAPACITY_PLOT_NAMES, rendered to PNG."""
    b_opt = BOptMark(advice.b_opt_max_batch, advice.b_opt) if advice else None
    limits = {limit.field: limit.bound_ms for limit in advice.slo.limits} if advice else {}
    series = batch_series(data.points)
    estimated = "estimated" in data.energy_sources()
    bars = advice_bars(advice) if advice else measured_bars(list(data.points))
    throughput_label = advice.throughput_metric if advice else "output_throughput"
    figures = {
        "throughput_vs_batch": (throughput_vs_batch(series, b_opt), "Output throughput vs batch cap"),
        "latency_vs_batch": (latency_vs_batch(series, b_opt, limits), "Latency (mean, p50, p99) vs batch cap"),
        "pareto_frontiers": (frontiers_figure(frontiers, list(data.points), advice.b_opt_key if advice else None,
                                              estimated), "Pareto frontiers"),
        "memory_breakdown": (memory_breakdown_figure(advice.memory) if advice else None,
                             "Device memory at B_opt: weights, KV needed, KV freed, rest"),
        "energy_per_token": (energy_per_token(series, b_opt), "Energy per output token vs batch cap"
                             + (" (ESTIMATED)" if estimated else "")),
        "replicas": (replica_figure(bars, throughput_label), "Replica comparison: total throughput per configuration"),
    }
    if advice and advice.capacity:
        figures |= capacity_figures(advice.capacity)
    plots = {name: render(fig, stem, name, description, config) for name, (fig, description) in figures.items()}
    return {name: plot for name, plot in plots.items() if plot is not None}


def render(fig: Figure | None, stem: str, name: str, description: str, config: ReportConfig) -> Plot | None:
    """A figure as the report's PNG `<stem>_<name>.png`; None where the data allowed no figure."""
    return None if fig is None else Plot(f"{stem}_{name}.png", to_png(fig, config.dpi), description)


def write_files(out_html: Path, html: str, plots: dict[str, Plot], names: tuple[str, ...]) -> tuple[Path, ...]:
    """Write the PNGs, then the HTML (atomically); remove PNGs of plots (of `names`) an earlier report had and this
    lacks."""
    directory = out_html.parent
    try:
        written = []
        for plot in plots.values():
            path = directory / plot.file_name
            path.write_bytes(plot.png)
            written.append(path)
        for name in names:
            stale = directory / f"{out_html.stem}_{name}.png"
            if name not in plots and stale.exists():
                stale.unlink()
        tmp = out_html.with_name(out_html.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out_html)
    except OSError as exc:
        raise ReportError(f"-o: cannot write {exc.filename or out_html}: {exc.strerror or exc}") from exc
    return tuple(written)


def make_directory(directory: Path) -> None:
    """Create the report's directory; ReportError naming -o where it cannot be."""
    if directory.exists() and not directory.is_dir():
        raise ReportError(f"-o: {directory} is not a directory; give a path whose parent is a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"-o: cannot create {exc.filename or directory}: {exc.strerror or exc}") from exc
