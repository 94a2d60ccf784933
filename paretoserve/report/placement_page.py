"""write_placement_report: a placement of several models on one device (`tune --model A --model B`'s OUT) -> one
self-contained HTML page, `OUT/report.html`, with its plots as PNGs beside it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from paretoserve.advise.placement_view import PlacedModel, PlacementView, read_placement_view
from paretoserve.report import placement_sections as sections
from paretoserve.report.build import ReportConfig, ReportFiles, make_directory, render, write_files
from paretoserve.report.figure import BOptMark
from paretoserve.report.html_page import Plot, page
from paretoserve.report.plots_placement import memory_map_figure, mix_throughput_figure, model_throughput_figure
from paretoserve.report.sweep_data import ReportError, load_sweep

PLACEMENT_PLOT_NAMES = ("memory_map", "mix_throughput")  # beside one `throughput_<model>` per model
REPORT_FILE = "report.html"


def write_placement_report(out: str | Path, out_html: str | Path | None = None, config: ReportConfig | None = None,
                           flag: str = "DIR") -> ReportFiles:
    """Write the page of the placement in `out` (placement.json or the directory holding it) to `out_html`
    (default: report.html beside placement.json) and `<stem>_<plot>.png` beside it; PlacementFileError or
    ReportError naming `flag` (or -o) where it cannot."""
    view, config = read_placement_view(out, flag), config or ReportConfig()
    out_html = Path(out_html) if out_html is not None else view.path.parent / REPORT_FILE
    make_directory(out_html.parent)  # before the plots: an unwritable -o fails at once
    curves, missing = model_curves(view.models, out_html.stem, config)
    plots = {name: render(fig, out_html.stem, name, description, config) for name, (fig, description) in {
        "memory_map": (memory_map_figure(view.memory, [m.name for m in view.models]),
                       "Memory map of the device: each model's weights and KV, and what stays free"),
        "mix_throughput": (mix_throughput_figure(view.colocation),
                           "Mix throughput: the placement, time-sharing and one device per model")}.items()}
    html = page(f"paretoserve report: {len(view.models)} models placed on one device ({view.path.parent.name})", [
        sections.overview(view, _model_reports(view, out_html)), sections.models(view, curves, missing),
        sections.memory_map(view, plots["memory_map"]), sections.arrangements(view, plots["mix_throughput"]),
        *([sections.mix_capacity(view.mix_capacity)] if view.mix_capacity else []), sections.serve(view)])
    shown = {name: plot for name, plot in plots.items() if plot is not None}
    shown |= {_curve_name(name): plot for name, plot in curves.items() if plot is not None}
    known = (*PLACEMENT_PLOT_NAMES, *(_curve_name(m.name) for m in view.models))
    return ReportFiles(out_html, write_files(out_html, html, shown, known), None)


def model_curves(models: tuple[PlacedModel, ...], stem: str,
                 config: ReportConfig) -> tuple[dict[str, Plot | None], dict[str, str]]:
    """Each model's throughput over the batch cap from its sweep directory, by name; where a sweep cannot be read,
    the reason instead, so one model's missing sweep does not hide the placement."""
    curves: dict[str, Plot | None] = {}
    missing: dict[str, str] = {}
    for m in models:
        try:
            points = load_sweep(m.sweep_dir).points
        except ReportError as exc:
            missing[m.name] = str(exc)
            continue
        fig = model_throughput_figure(m.name, points, BOptMark(m.advice.b_opt_max_batch, m.advice.b_opt))
        curves[m.name] = render(fig, stem, _curve_name(m.name),
                                f"{m.name}: output throughput vs batch cap, B_opt marked", config)
    return curves, missing


def _curve_name(model: str) -> str:
    """The plot's name for a model's curve: its served name, kept to characters safe in a file name."""
    return "throughput_" + re.sub(r"[^A-Za-z0-9_.-]+", "-", model)


def _model_reports(view: PlacementView, out_html: Path) -> dict[str, str]:
    """Each model's own report (its tune's report.html, beside its advice.json), relative to the page, where it is."""
    found = {m.name: m.advice_path.parent / REPORT_FILE for m in view.models}
    return {name: Path(os.path.relpath(path, out_html.parent)).as_posix() for name, path in found.items()
            if path.is_file()}
