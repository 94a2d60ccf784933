"""The report of real measurements: the Mind the Memory Gap subset (tests/data) imported from vLLM."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paretoserve.cli import main
from paretoserve.report import write_report
from tests.report.conftest import FAST

DATA = Path(__file__).parents[1] / "data"
RUNS = DATA / "mind-the-memory-gap" / "advisor" / "output_length" / "_390" / "opt-1.3b"


@pytest.fixture(scope="module")
def opt_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vllm") / "opt-1.3b"
    assert main(["import", "vllm", str(RUNS), "--out", str(out), "--model-config",
                 str(DATA / "model-configs" / "opt-1.3b.json"), "--gpu-name", "H100", "--gpu-memory-gb", "64"]) == 0
    return out


def test_report_of_imported_vllm_runs(opt_sweep, tmp_path):
    files = write_report(opt_sweep, tmp_path / "report.html", no_advice_reason="none asked for", config=FAST)
    html = files.html.read_text()
    assert {p.name for p in files.plots} == {"report_throughput_vs_batch.png", "report_latency_vs_batch.png",
                                             "report_pareto_frontiers.png"}
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == 3
    assert "H100 (64.00 GB)" in html
    for batch, throughput in ((32, "4,779"), (128, "7,879"), (256, "8,757")):  # output tok/s in the bench JSONs
        assert re.search(rf"<td class=\"text\">B={batch}</td>.*?<td>{throughput}</td>", html)
    assert "No energy was measured for this sweep (energy_source: none)" in html  # vLLM's JSON has no energy
    assert "KV cache used (peak) (GB)" in html  # the memory frontier uses the measured KV peak
