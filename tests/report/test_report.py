"""write_report on a small CPU-like sweep: sections, embedded plots, PNGs, energy labels, missing advice."""

from __future__ import annotations

import base64
import re
from paretoserve.report import write_report
from paretoserve.report.recommendation import as_advice_dict
from paretoserve.report.sweep_data import batch_series
from paretoserve.report.build import PLOT_NAMES
from tests.report.conftest import FAST, make_point, write_sweep

SECTIONS = ("overview", "recommendation", "throughput-latency", "pareto", "memory", "energy", "replicas",
            "commands", "measurements")
EMBEDDED = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def section_text(html: str, anchor: str) -> str:
    return re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S).group(1)


def test_every_section_and_one_embedded_image_per_png(full_report):
    files = full_report
    html = files.html.read_text()
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in html
    assert sorted(p.name for p in files.plots) == sorted(f"report_{name}.png" for name in PLOT_NAMES)
    embedded = EMBEDDED.findall(html)
    assert len(embedded) == len(files.plots) == 6
    for path in files.plots:
        png = path.read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and path.parent == files.html.parent
        assert base64.b64encode(png).decode() in embedded  # the page shows exactly the files beside it
    assert files.b_opt == 16


def test_nothing_is_fetched_from_the_network(full_report):
    html = full_report.html.read_text()
    assert not re.search(r"https?://", html)
    assert not re.search(r"<(link|iframe|object|embed)\b|<script\b|@import|url\(", html)
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', html))


def test_recommendation_memory_replicas_and_commands(full_report):
    html = full_report.html.read_text()
    recommendation = section_text(html, "recommendation")
    assert "B_opt = 16" in recommendation and "90.91%" in recommendation
    assert "efficiency 0.10 &lt; 0.2" in recommendation and "0.56 GB (2.33% of device memory)" in recommendation
    assert "2 x B=16 (PREDICTED, 300 tok/s)" in recommendation
    assert "0.04 GB of KV cache" in section_text(html, "memory")
    assert "2 measured replica configurations" in section_text(html, "replicas")
    commands = section_text(html, "commands")
    assert "paretoserve engine --max-batch 16 --kv-tokens 2576" in commands and "llama-server -m" in commands
    assert "engine exited with status 1" in section_text(html, "measurements")


def test_estimated_energy_is_marked_everywhere(full_report):
    html = full_report.html.read_text()
    energy = section_text(html, "energy")
    assert 'class="estimated"' in energy and "ESTIMATED energy" in energy
    assert "Energy per output token vs batch cap (ESTIMATED)" in energy  # the plot's caption
    assert "(ESTIMATED)</td>" in section_text(html, "measurements")  # each figure in the table
    assert "J per output token (ESTIMATED)" in section_text(html, "pareto")


def test_no_energy_is_said_and_not_plotted(tmp_path):
    points = [{**make_point(b, t), "energy_per_output_token_j": None, "energy_source": "none"}
              for b, t in ((1, 80.0), (4, 120.0))]
    sweep = write_sweep(tmp_path / "sweep", points)
    files = write_report(sweep, tmp_path / "report.html", config=FAST)
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
    assert "No memory breakdown" in section_text(html, "memory")
    names = {p.name for p in files.plots}
    assert {"report_throughput_vs_batch.png", "report_latency_vs_batch.png", "report_replicas.png"} <= names
    assert "report_memory_breakdown.png" not in names and files.b_opt is None
    assert len(EMBEDDED.findall(html)) == len(files.plots)


def test_advice_without_b_opt_lists_every_rejection(cpu_sweep, advice, tmp_path):
    rejected = [{"max_batch": b, "reason": f"mean_tpot_ms over the SLO at B={b}"} for b in (1, 2, 4)]
    no_b_opt = {**advice, "b_opt": None, "rejected": rejected, "commands": {}, "replica_plan": None}
    html = write_report(cpu_sweep, tmp_path / "report.html", advice=no_b_opt, config=FAST).html.read_text()
    recommendation = section_text(html, "recommendation")
    assert "No recommendation: no measured batch cap meets the SLO" in recommendation
    assert "mean_tpot_ms over the SLO at B=4" in recommendation
    assert "No launch commands" in section_text(html, "commands")


def test_predicted_plan_when_the_sweep_has_no_replica_points(tmp_path, advice):
    sweep = write_sweep(tmp_path / "sweep", [make_point(b, t) for b, t in ((1, 85.0), (16, 250.0), (32, 275.0))])
    files = write_report(sweep, tmp_path / "report.html", advice=advice, config=FAST)
    assert "PREDICTED by the advice" in section_text(files.html.read_text(), "replicas")
    assert (tmp_path / "report_replicas.png").exists()


def test_a_rerun_removes_plots_the_new_report_lacks(tmp_path, advice):
    sweep = write_sweep(tmp_path / "sweep", [make_point(b, t) for b, t in ((1, 85.0), (16, 250.0))])
    write_report(sweep, tmp_path / "report.html", advice=advice, config=FAST)
    assert (tmp_path / "report_memory_breakdown.png").exists()
    write_report(sweep, tmp_path / "report.html", config=FAST)
    assert not (tmp_path / "report_memory_breakdown.png").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_advice_object_with_model_dump_is_read_as_its_json(advice):
    class Advice:
        def model_dump(self, mode: str = "python") -> dict:
            assert mode == "json"
            return advice

    assert as_advice_dict(Advice()) is advice and as_advice_dict(advice) is advice and as_advice_dict(None) is None


def test_series_split_by_kv_budget_only_where_one_cap_has_several():
    def at(batch: int, kv: int, replicas: int = 1) -> dict:
        return {"config": {"max_batch": batch, "kv_tokens": kv, "threads": 2, "replicas": replicas}}

    one_budget_per_cap = batch_series([at(1, 512), at(4, 2048), at(2, 1024)])
    assert [(s.label, s.batches()) for s in one_budget_per_cap] == [("1 engine", [1, 2, 4])]
    several = batch_series([at(1, 512), at(1, 4096), at(4, 512), at(4, 4096), at(2, 512, replicas=2)])
    assert [(s.label, s.batches()) for s in several] == [
        ("1 engine, 2 threads, KV 512 tokens", [1, 4]), ("1 engine, 2 threads, KV 4096 tokens", [1, 4]),
        ("2 replicas (batch cap per replica), 2 threads", [2])]
