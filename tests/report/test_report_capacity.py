"""The capacity section: the recorded tune's report (tests/data/tune-sweep) with the capacity advice of a directory
of rate runs written here; a report without capacity has no such section and no capacity plots."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import pytest

from paretoserve.advise import Advice
from paretoserve.advise.capacity import CapacityAdvice, capacity_advice
from paretoserve.advise.traffic import Traffic
from paretoserve.report import ReportFiles, write_report
from paretoserve.report.build import CAPACITY_PLOT_NAMES
from paretoserve.report.plots_capacity import attainment_vs_rate, latency_vs_rate
from paretoserve.results.store import CAPACITY_KIND, SweepStore
from tests.report.chromium_check import CHROMIUM, check_page, needs_chromium
from tests.report.sweeps import FAST

RECORDED = Path(__file__).parents[1] / "data" / "tune-sweep"
SLO = "ttft_ms<=2000,tpot_ms<=100,p99_tpot_ms<=150"
# offered req/s -> (requests within the SLO, requests sent): 99 % met up to 3 req/s, not at 4
RUNS = {1.0: (200, 200), 2.0: (199, 200), 3.0: (198, 200), 4.0: (150, 200)}
TRAFFIC = Traffic(mean_rps=5.0, peak_rps=12.0, low_rps=1.0, window_s=60.0, source="trace:day.jsonl")
CAPACITY_PLOTS = ("report_capacity_latency.png", "report_capacity_attainment.png")


def write_rate_runs(directory: Path) -> str:
    """A directory of capacity runs as `paretoserve capacity` writes it (the records' figures, no requests)."""
    store = SweepStore(directory)
    store.open({"kind": CAPACITY_KIND, "url": "http://127.0.0.1:8000", "workload": {"slo": SLO},
                "capacity": {"attainment": 0.99}}, {}, resume=False)
    for rate, (good, total) in RUNS.items():
        store.append({"key": f"rate-{rate:.4g}", "kind": CAPACITY_KIND, "status": "ok",
                      "config": {"request_rate": rate}, "slo_good": good, "slo_requests": total, "slo_met": True,
                      "completed": total, "failed": 0, "request_throughput": min(rate, 3.2),
                      "median_ttft_ms": 150.0 * rate, "p99_ttft_ms": 400.0 * rate ** 2,
                      "median_tpot_ms": 20.0 + 5 * rate, "p99_tpot_ms": 40.0 + 20 * rate})
    return str(directory)


def recorded_advice() -> Advice:
    return Advice.model_validate_json((RECORDED / "advice.json").read_text())


@pytest.fixture(scope="module")
def capacity(tmp_path_factory) -> CapacityAdvice:
    """The recorded plan (1 x cap 32) sustains 3 req/s; the traffic needs 1, 2 and 5 replicas at low, mean, peak."""
    runs = write_rate_runs(tmp_path_factory.mktemp("cap") / "capacity")
    return capacity_advice(runs, replicas=1, max_batch=32, traffic=TRAFFIC)


@pytest.fixture(scope="module")
def report(capacity, tmp_path_factory) -> ReportFiles:
    advice = recorded_advice().model_copy(update={"capacity": capacity})
    return write_report(RECORDED / "sweep", tmp_path_factory.mktemp("report") / "report.html", advice=advice,
                        config=FAST)


def test_the_capacity_section_shows_the_knee_the_replicas_and_their_arithmetic(report, capacity):
    html = report.html.read_text()
    assert capacity.capacity_rps == 3.0 and capacity.failing_rps == 4.0
    assert (capacity.replicas_at_low, capacity.replicas_at_mean, capacity.replicas_at_peak) == (1, 2, 5)
    section = html[html.index('<section id="capacity">'):]
    section = section[:section.index("</section>")]
    assert escape(capacity.summary) in section and "sustains 3 req/s" in section
    for line in capacity.arithmetic:
        assert escape(line) in section
    assert "mean 5 req/s x (1 + 0.1 headroom) / 3 = 1.83 -&gt; 2 replicas" in section
    for name, rate, replicas, devices in (("low", 1, 1, "-"), ("mean", 5, 2, 2), ("peak", 12, 5, 5)):
        assert (f'<tr><td class="text">{name}</td><td>{rate}</td><td>{replicas}</td><td>{devices}</td></tr>'
                in section)
    assert "The knee lies between 3 and 4 req/s" in section and escape(SLO) in section
    assert "<td>3</td><td>99.00% [96.43%, 99.73%]</td><td>200</td>" in section  # the knee's rate run
    assert section.count("<img ") == 2
    assert html.index('id="replicas"') < html.index('id="capacity"') < html.index('id="commands"')


def test_the_capacity_plots_are_written_beside_the_report(report):
    names = {p.name for p in report.plots}
    assert set(CAPACITY_PLOTS) <= names and set(CAPACITY_PLOTS) == {f"report_{n}.png" for n in CAPACITY_PLOT_NAMES}
    for name in CAPACITY_PLOTS:
        assert (report.html.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_report_without_capacity_has_no_section_and_removes_the_old_plots(report, tmp_path):
    out = tmp_path / "report.html"
    for name in CAPACITY_PLOTS:  # what an earlier report with capacity left here
        (tmp_path / name).write_bytes((report.html.parent / name).read_bytes())
    files = write_report(RECORDED / "sweep", out, advice=recorded_advice(), config=FAST)
    html = out.read_text()
    assert 'id="capacity"' not in html and "offered req/s" not in html
    assert not any("capacity" in p.name for p in files.plots)
    assert not any((tmp_path / name).exists() for name in CAPACITY_PLOTS)


def test_the_latency_plot_draws_the_slo_bounds_the_knee_and_the_traffic(capacity):
    fig = latency_vs_rate(capacity)
    assert fig is not None and len(fig.axes) == 2
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"p50", "p99", "SLO ttft_ms<=2000 (each request)", "SLO tpot_ms<=100 (each request)",
            "SLO p99_tpot_ms<=150 (each run)", "capacity 3 req/s",
            "knee lies here", "traffic low 1 req/s", "traffic mean 5 req/s", "traffic peak 12 req/s"} == labels
    ttft, tpot = fig.axes
    assert ttft.get_yscale() == "log" and {line.get_ydata()[0] for line in tpot.lines} >= {100.0, 150.0}


def test_the_attainment_plot_draws_the_target_the_knee_and_every_interval(capacity):
    fig = attainment_vs_rate(capacity)
    assert fig is not None
    ax = fig.axes[0]
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"target 99%", "knee", "meets the target", "misses it", "attainment (95 % interval)"} <= labels
    assert ax.containers and len(ax.containers[0].lines[2][0].get_segments()) == len(RUNS)  # one error bar a rate


def test_a_capacity_without_traffic_shows_no_replica_table_and_comes_through_advice_json(capacity, tmp_path):
    bare = capacity.model_copy(update={"traffic": None, "replicas_at_low": None, "replicas_at_mean": None,
                                       "replicas_at_peak": None, "devices_at_mean": None, "devices_at_peak": None})
    dumped = json.loads(recorded_advice().model_copy(update={"capacity": bare}).model_dump_json())  # --advice
    files = write_report(RECORDED / "sweep", tmp_path / "r.html", advice=dumped, config=FAST)
    html = (tmp_path / "r.html").read_text()
    assert 'id="capacity"' in html and "<th>replicas</th>" not in html and "traffic mean" not in html
    assert {p.name for p in files.plots} >= {"r_capacity_latency.png", "r_capacity_attainment.png"}


@pytest.mark.integration
@needs_chromium
def test_the_capacity_plots_render_in_chromium(report):
    check = check_page(report.html, CHROMIUM)
    assert check.page_errors == [] and check.console_lines == [] and len(check.images) == len(report.plots)
    for image in check.images:
        assert image["complete"] and image["naturalWidth"] > 0 and image["shownWidth"] > 100, image
