"""The page of a placement of several models (report/placement_page.py) and its plots (report/plots_placement.py),
from a placement tune wrote on simulated engines."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from paretoserve.advise.memory_map import MemoryMap, ModelMemory
from paretoserve.advise.placement_view import read_placement_view
from paretoserve.report import ReportFiles, write_placement_report
from paretoserve.report.plots_placement import memory_map_figure, mix_throughput_figure
from tests.report.sweeps import FAST


@pytest.fixture
def out(placement_out) -> Path:
    return placement_out


@pytest.fixture
def page(placement_page) -> ReportFiles:
    return placement_page


def section(html: str, anchor: str) -> str:
    found = re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S)
    assert found, anchor
    return found.group(1)


def test_the_page_lands_beside_placement_json_with_its_plots(out, page):
    assert page.html == out / "report.html" and page.b_opt is None
    assert sorted(p.name for p in page.plots) == ["report_memory_map.png", "report_mix_throughput.png",
                                                  "report_throughput_a.png", "report_throughput_b.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in page.plots)
    html = page.html.read_text()
    assert html.count('<img src="data:image/png;base64,') == 4  # self-contained: every plot inline
    assert 'href="a/report.html"' in html and 'href="b/report.html"' in html  # each model's own report


def test_the_memory_map_shows_each_models_weights_kv_and_the_free_part(out, page):
    view = read_placement_view(out)
    html = section(page.html.read_text(), "memory-map")
    assert 'alt="Memory map of the device' in html
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows[1:]]
    assert [row[0] for row in cells] == ["a", "b"]
    assert [row[5] for row in cells] == [f"{m.kv_tokens:,}" for m in view.memory.models]  # KV tokens per replica
    assert [row[4] for row in cells] == [f"{m.kv_bytes / 1e9:.2f} GB" for m in view.memory.models]
    assert f"free {(view.memory.free_bytes or 0) / 1e9:.2f} GB" in html


def test_the_memory_bar_spans_the_device_and_enlarges_the_models_small_part(out):
    view = read_placement_view(out)
    memory = view.memory
    fig = memory_map_figure(memory, ["a", "b"])
    assert fig is not None
    device_bar, enlarged = fig.axes[:2]
    widths = [p.get_width() for p in device_bar.patches]
    assert len(widths) == 5  # a's weights and KV, b's, then free
    assert sum(widths) == pytest.approx(memory.device_bytes / 1e9)
    assert widths[-1] == pytest.approx(memory.free_bytes / 1e9)
    # the models use 0.2 % of the device: drawn again in MB, their KV side by side
    assert [p.get_width() for p in enlarged.patches][1::2] == pytest.approx([m.kv_bytes / 1e6
                                                                             for m in memory.models])
    labels = fig.legends[0].get_texts()
    assert any(t.get_text().startswith("b: KV at cap 24") for t in labels)


def test_each_model_has_its_curve_with_its_b_opt(out, page):
    html = section(page.html.read_text(), "models")
    for name, b_opt in (("a", 12), ("b", 24)):
        assert html.count(f'alt="{name}: output throughput vs batch cap, B_opt marked"') == 1
        assert f"B_opt = {b_opt} under mean_tpot_ms&lt;=150" in html


def test_the_placement_is_compared_with_time_sharing_and_one_device_per_model(out, page):
    html = section(page.html.read_text(), "arrangements")
    assert 'alt="Mix throughput: the placement, time-sharing and one device per model"' in html
    assert "<td>1.333 x</td>" not in html and "<td>1.33 x</td>" in html  # placement over time-sharing
    assert "one device per model (needs 2 devices)</td><td>2</td><td>10</td><td>5</td><td>1.60 x" in html
    rows = {cells[0]: cells for cells in (re.findall(r"<td[^>]*>(.*?)</td>", row)
                                          for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)) if cells}
    assert rows["a"][3:] == ["4", "3", "5", "0.8"]  # placement, time-sharing, solo, interference
    fig = mix_throughput_figure(read_placement_view(out).colocation)
    assert [p.get_height() for p in fig.axes[0].patches] == [8.0, 6.0, 5.0, 10.0]


def test_the_mix_capacity_is_shown_where_it_was_measured(out, page, tmp_path):
    view = read_placement_view(out)
    html = section(page.html.read_text(), "mix-capacity")
    assert f"Mix capacity: {view.mix_capacity.capacity_rps:.4g} req/s in all" in html
    verdicts = re.findall(r'<td class="text">(met|missed)</td>', html)
    assert verdicts == ["met" if r.met else "missed" for r in view.mix_capacity.runs]
    assert "met" in verdicts and "missed" in verdicts

    copy = Path(shutil.copytree(out, tmp_path / "copy"))
    data = json.loads((copy / "placement.json").read_text())
    data.pop("mix_capacity")
    (copy / "placement.json").write_text(json.dumps(data))
    without = write_placement_report(copy / "placement.json", tmp_path / "elsewhere" / "page.html", FAST)
    assert without.html == tmp_path / "elsewhere" / "page.html"
    assert 'id="mix-capacity"' not in without.html.read_text() and 'id="arrangements"' in without.html.read_text()


def test_a_models_missing_sweep_leaves_the_rest_of_the_page(out, tmp_path):
    copy = Path(shutil.copytree(out, tmp_path / "copy"))  # its advice paths are relative to placement.json
    advice = copy / "b" / "advice.json"  # naming the copy's own sweep, which then goes
    advice.write_text(json.dumps({**json.loads(advice.read_text()), "sweep_dir": str(copy / "b" / "sweep")}))
    shutil.rmtree(copy / "b" / "sweep")
    files = write_placement_report(copy, config=FAST)
    html = section(files.html.read_text(), "models")
    assert html.count('alt="a: output throughput vs batch cap') == 1 and 'alt="b: output' not in html
    assert "No curve: " in html and len(files.plots) == 3


def test_a_large_part_is_drawn_once_and_an_unknown_device_without_free_space():
    models = (ModelMemory("x", 2, 32, 4096, 4e9, 1e9), ModelMemory("y", 1, 16, 2048, 6e9, 2e9))  # 10 + 8 GB
    fig = memory_map_figure(MemoryMap(models, 80_000_000_000), ["x", "y"])
    assert fig is not None and len(fig.axes) == 1  # 22 % of the device: nothing to enlarge
    assert [p.get_width() for p in fig.axes[0].patches] == pytest.approx([8.0, 2.0, 6.0, 2.0, 62.0])
    unknown = memory_map_figure(MemoryMap(models, None), ["x", "y"])
    assert unknown is not None and len(unknown.axes) == 1 and len(unknown.axes[0].patches) == 4
    assert unknown.axes[0].get_xlim()[1] == pytest.approx(18.0)
