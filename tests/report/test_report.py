"""write_report on a small CPU-like sweep: sections, embedded plots, PNGs, energy labels, missing advice."""

from __future__ import annotations

import base64
import re

import pytest

from paretoserve.advise import AdviseConfig, advise
from paretoserve.report import write_report
from paretoserve.report.build import PLOT_NAMES
from paretoserve.report.sweep_data import batch_series
from paretoserve.results.point import to_point
from tests.report.sweeps import FAST, THROUGHPUT, make_point, write_sweep

pytestmark = pytest.mark.integration

SECTIONS = ("overview", "recommendation", "throughput-latency", "pareto", "memory", "energy", "replicas",
            "commands", "measurements")
EMBEDDED = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def section_text(html: str, anchor: str) -> str:
    return re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S).group(1)


def test_every_section_and_one_embedded_image_per_png(full_report):
    html = full_report.html.read_text()
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in html
    assert sorted(p.name for p in full_report.plots) == sorted(f"report_{name}.png" for name in PLOT_NAMES)
    embedded = EMBEDDED.findall(html)
    assert len(embedded) == len(full_report.plots) == 6
    for path in full_report.plots:
        png = path.read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and path.parent == full_report.html.parent
        assert base64.b64encode(png).decode() in embedded  # the page shows exactly the files beside it
    assert full_report.b_opt == 16


def test_nothing_is_fetched_from_the_network(full_report):
    html = full_report.html.read_text()
    assert not re.search(r"https?://", html)
    assert not re.search(r"<(link|iframe|object|embed)\b|<script\b|@import|url\(", html)
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', html))


def test_recommendation_memory_replicas_and_commands(full_report, advice):
    html = full_report.html.read_text()
    recommendation = section_text(html, "recommendation")
    assert "B_opt = 16, keeping 90.91% of the best measured output_throughput (250 of 275)" in recommendation
    assert "mean_tpot_ms&lt;=100 (--slo)" in recommendation
    assert "mean_tpot_ms 116.4 ms &gt; 100" in recommendation  # why B=32 was rejected
    assert f"{advice.memory.freed_bytes / 1e9:.2f} GB" in recommendation
    assert "1 x B=16 (measured)" in recommendation
    assert "measured: peak KV cache use at B_opt" in section_text(html, "memory")
    assert "measured: the sweep ran replica points" in section_text(html, "replicas")
    commands = section_text(html, "commands")
    assert advice.commands.engine in commands and "llama-server -m" in commands
    assert "--max-batch 16" in advice.commands.engine
    assert "engine exited with status 1" in section_text(html, "measurements")


def test_estimated_energy_is_marked_everywhere(full_report):
    html = full_report.html.read_text()
    energy = section_text(html, "energy")
    assert 'class="estimated"' in energy and "ESTIMATED energy" in energy
    assert "Energy per output token vs batch cap (ESTIMATED)" in energy  # the plot's caption
    assert html.count("(ESTIMATED)</td>") == 8  # each figure in the measurements table
    assert "J per output token (ESTIMATED)" in section_text(html, "pareto")


def test_no_energy_is_said_and_not_plotted(tmp_path):
    points = [{**make_point(b, t), "energy_per_output_token_j": None, "energy_source": "none"}
              for b, t in ((1, 80.0), (4, 120.0))]
    files = write_report(write_sweep(tmp_path / "sweep", points), tmp_path / "report.html", config=FAST)
    html = files.html.read_text()
    assert "No energy was measured for this sweep (energy_source: none)" in section_text(html, "energy")
    assert not (tmp_path / "report_energy_per_token.png").exists()
    assert "ESTIMATED" not in html


def test_without_advice_the_measurements_render_and_say_why(cpu_sweep, tmp_path):
    files = write_report(cpu_sweep, tmp_path / "report.html", no_advice_reason="no batch meets the SLO",
                         config=FAST)
    html = files.html.read_text()
    assert "No recommendation: no batch meets the SLO" in section_text(html, "recommendation")
    assert "No launch commands: no batch meets the SLO" in section_text(html, "commands")
    assert "No memory breakdown: no batch meets the SLO" in section_text(html, "memory")
    assert "2 measured replica configurations" in section_text(html, "replicas")
    names = {p.name for p in files.plots}
    assert names == {f"report_{n}.png" for n in PLOT_NAMES} - {"report_memory_breakdown.png"}
    assert len(EMBEDDED.findall(html)) == len(files.plots) and files.b_opt is None


def test_predicted_plan_is_labelled_and_a_rerun_removes_stale_plots(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", [make_point(b, t, threads=1) for b, t in ((1, 60.0), (16, 150.0))])
    advice = advise(sweep, AdviseConfig())
    assert advice.replica_plan.predicted_or_measured == "predicted"
    files = write_report(sweep, tmp_path / "report.html", advice=advice.model_dump(), config=FAST)
    replicas = section_text(files.html.read_text(), "replicas")
    assert "(PREDICTED)" in replicas and "predicted assuming each replica of B_opt" in replicas
    assert (tmp_path / "report_memory_breakdown.png").exists()
    write_report(sweep, tmp_path / "report.html", config=FAST)
    assert not (tmp_path / "report_memory_breakdown.png").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_series_split_by_kv_budget_only_where_one_cap_has_several():
    def at(batch: int, kv: int, replicas: int = 1):
        return to_point({"key": f"b{batch}-kv{kv}-t2-r{replicas}",
                         "config": {"max_batch": batch, "kv_tokens": kv, "threads": 2, "replicas": replicas}})

    one_budget_per_cap = batch_series([at(1, 512), at(4, 2048), at(2, 1024)])
    assert [(s.label, s.batches()) for s in one_budget_per_cap] == [("1 engine", [1, 2, 4])]
    several = batch_series([at(1, 512), at(1, 4096), at(4, 512), at(4, 4096), at(2, 512, replicas=2)])
    assert [(s.label, s.batches()) for s in several] == [
        ("1 engine, 2 threads, KV 512 tokens", [1, 4]), ("1 engine, 2 threads, KV 4096 tokens", [1, 4]),
        ("2 replicas (batch cap per replica), 2 threads", [2])]


def test_repeated_points_get_error_bars_and_single_runs_none():
    from matplotlib.container import ErrorbarContainer

    from paretoserve.report.plots_batch import latency_vs_batch, throughput_vs_batch

    repeated = [to_point({**make_point(b, 100.0 * b), "repeats": 3,
                          "ci95": {"output_throughput": [90.0 * b, 110.0 * b], "mean_tpot_ms": [9.0, 11.0]}})
                for b in (1, 2)]
    fig = throughput_vs_batch(batch_series(repeated), None)
    bars = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    segments = bars[0].lines[2][0].get_segments()  # one vertical bar per point, from low to high
    assert [(seg[0][1], seg[1][1]) for seg in segments] == [(90.0, 110.0), (180.0, 220.0)]
    assert sum(isinstance(c, ErrorbarContainer) for ax in latency_vs_batch(batch_series(repeated), None, {}).axes
               for c in ax.containers) == 1  # mean TPOT only: the other latencies have no interval
    once = throughput_vs_batch(batch_series([to_point(make_point(b, 100.0 * b)) for b in (1, 2)]), None)
    assert not once.axes[0].containers


def test_repeated_points_show_intervals_in_the_rejected_and_replica_tables(tmp_path):
    def repeated(p: dict) -> dict:
        t = p["output_throughput"]
        return {**p, "repeats": 3, "ci95": {"output_throughput": [0.9 * t, 1.1 * t]}}

    points = [repeated(make_point(b, t)) for b, t in THROUGHPUT.items()]
    points.append(repeated(make_point(8, 160.0, replicas=2, threads=1)))
    files = write_report(write_sweep(tmp_path / "sweep", points), tmp_path / "report.html",
                         advice=advise(tmp_path / "sweep", AdviseConfig(slo="tpot_ms<=100")), config=FAST)
    html = files.html.read_text()
    assert "<td>275 [247.5, 302.5]</td>" in section_text(html, "recommendation")  # B=32, rejected by the SLO
    assert "<td>160 [144, 176]</td>" in section_text(html, "replicas")  # 2 x 8, measured three times


def test_repeated_points_get_error_bars_on_the_energy_replica_and_pareto_plots():
    from matplotlib.container import ErrorbarContainer

    from paretoserve.advise.pareto import Frontier, FrontierPoint
    from paretoserve.report.plots_batch import energy_per_token
    from paretoserve.report.plots_pareto import frontiers_figure
    from paretoserve.report.plots_plan import measured_bars, replica_figure

    def bars_of(fig):
        return [c for ax in fig.axes for c in ax.containers if isinstance(c, ErrorbarContainer)]

    repeated = [to_point({**make_point(b, 100.0 * b), "repeats": 3, "ci95": {
        "output_throughput": [90.0 * b, 110.0 * b], "energy_per_output_token_j": [0.1, 0.3]}}) for b in (1, 2)]
    assert len(bars_of(energy_per_token(batch_series(repeated), None))) == 1
    replicated = [*repeated, to_point({**make_point(2, 300.0, replicas=2),
                                       "ci95": {"output_throughput": [280.0, 320.0]}})]
    fig = replica_figure(measured_bars(replicated), "output tok/s")
    segments = [tuple(seg[:, 1]) for ax in fig.axes for c in ax.containers if getattr(c, "errorbar", None)
                for line in c.errorbar.lines[2] for seg in line.get_segments()]
    assert segments == [(180.0, 220.0), (280.0, 320.0)]  # the best single engine (B=2) and 2 x B=2
    frontier = Frontier(name="t", x="output_throughput", y="mean_tpot_ms", x_better="max", y_better="min",
                        points=[FrontierPoint(key=p.key, config=p.config(), x=p.output_throughput,
                                              y=p.latency_ms["mean_tpot_ms"]) for p in repeated])
    assert len(bars_of(frontiers_figure([frontier], repeated, None, False))) == 1  # x intervals; y has none
    single = [to_point(make_point(b, 100.0 * b)) for b in (1, 2)]
    assert not bars_of(energy_per_token(batch_series(single), None))
