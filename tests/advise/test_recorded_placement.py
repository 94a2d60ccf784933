"""A real placement of two models (tests/data/tune-placement: Gemma 3 270M and SmolLM2 135M tuned, placed on one
2-core device, measured and their mix's capacity searched) read by advise, the report and serve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from paretoserve.advise.console import print_placement
from paretoserve.advise.placement_view import read_placement_view
from paretoserve.cli import build_parser
from paretoserve.cli.serve_cmd import plans_from_args
from paretoserve.report import write_placement_report

RECORDED = Path(__file__).parents[1] / "data" / "tune-placement"


@pytest.fixture
def placement(tmp_path) -> Path:
    """A copy in a directory of its own: placement.json names its models' files relative to itself."""
    return Path(shutil.copytree(RECORDED, tmp_path / "placement"))


def test_the_view_reads_the_real_figures(placement):
    view = read_placement_view(placement)
    assert [m.model for m in view.models] == ["default", "smollm2"]
    assert [m.advice.b_opt for m in view.models] == [64, 64] and view.cores == 2
    assert [m.sweep_dir for m in view.models] == [placement / "default" / "sweep", placement / "smollm2" / "sweep"]
    assert round(view.memory.used_bytes / 2**20) == 486 and view.memory.device_bytes > 20 * 2**30
    c = view.colocation
    # the placement served the 50/50 mix at 3.30 x time-sharing's rate, on one device
    assert c.placement_rps == pytest.approx(4.845, abs=0.01) and c.ratio(c.time_sharing_rps) == pytest.approx(3.30,
                                                                                                             abs=0.01)
    assert view.mix_capacity is not None and view.mix_capacity.capacity_rps == pytest.approx(4.467)
    assert all(run.met for run in view.mix_capacity.runs)


def test_advise_prints_the_memory_map_and_the_arrangements(placement):
    console = Console(record=True, width=200)
    print_placement(read_placement_view(placement), console)
    text = console.export_text()
    for expected in ("gemma-3-270m-q4_k_m", "SmolLM2-135M-Instruct.Q4_1", "4.85", "1.47", "4.47"):
        assert expected in text


def test_the_report_draws_the_real_placement(placement):
    files = write_placement_report(placement)
    html = files.html.read_text()
    assert files.html == placement / "report.html" and html.count("<img") >= 4
    assert "gemma-3-270m-q4_k_m" in html and "SmolLM2-135M-Instruct.Q4_1" in html


def test_serve_takes_the_real_placement_with_each_models_kv_and_memory_share(placement, monkeypatch):
    argv = ["serve", "--plan", str(placement / "placement.json"), "--engine-cmd", "engine --port {port}"]
    monkeypatch.chdir(placement.parent)  # placement.json's own paths do not depend on the working directory
    plans = plans_from_args(build_parser(argv).parse_args(argv))
    kept = json.loads((placement / "placement.json").read_text())["models"]
    assert [(p.model, p.max_batch, p.kv_tokens, p.threads_per_replica, p.mem_fraction) for p in plans] == [
        (m["model"], m["max_batch"], m["kv_tokens"], 1, m["mem_fraction"]) for m in kept]
